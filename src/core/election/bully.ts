// Bully algorithm helpers: a node challenges every node with a higher key; if none answers it
// wins, otherwise it waits for the announcement of whoever does.
import { compareKeys, type ElectionKey } from '../types.ts';

export function higherKeyed<T extends ElectionKey>(self: ElectionKey, members: readonly T[]): T[] {
  return members.filter((member) => compareKeys(member, self) > 0);
}
