// Chang-Roberts ring order: live members sorted by election key, each node's successor is the
// next higher key, wrapping to the lowest. Membership views may differ between nodes; the ring
// only needs each node to know some live successor, and the winner announces itself to all.
import { compareKeys, type ElectionKey } from '../types.ts';

/** Members in the order a message leaving `self` visits them (self excluded). */
export function ringSuccessors<T extends ElectionKey>(self: ElectionKey, members: readonly T[]): T[] {
  const others = members.filter((member) => member.nodeId !== self.nodeId).sort(compareKeys);
  const firstHigher = others.findIndex((member) => compareKeys(member, self) > 0);
  if (firstHigher <= 0) return others;
  return [...others.slice(firstHigher), ...others.slice(0, firstHigher)];
}

/** The better of two candidates (the higher key). */
export function bestCandidate(a: ElectionKey, b: ElectionKey): ElectionKey {
  return compareKeys(a, b) >= 0 ? a : b;
}
