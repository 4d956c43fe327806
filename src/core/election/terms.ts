// Terms owned by their winner. Sides of a partition elect independently, and all start from the
// same "term + 1"; without a quorum (which would leave the minority side without a master) the
// only way to keep two masters out of one term is to let the winner claim a term that only it can
// claim: the next term whose low TERM_SLOT_BITS bits are its slot (a hash of its node id). Terms
// still grow with every election; two winners collide only if their ids hash to the same slot
// (odds 1 in 2^24 per pair) *and* they win the same round of elections in separate islands.
import { TERM_SLOT_BITS } from '../limits.ts';

const TERM_SLOTS = 2 ** TERM_SLOT_BITS;
const utf8 = new TextEncoder();

/** FNV-1a over the UTF-8 bytes of the node id, folded to TERM_SLOT_BITS. */
export function termSlot(nodeId: string): number {
  let hash = 0x811c9dc5;
  for (const byte of utf8.encode(nodeId)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % TERM_SLOTS;
}

/** The smallest term >= minTerm that `nodeId` may claim as master. */
export function claimTerm(nodeId: string, minTerm: number): number {
  const slot = termSlot(nodeId);
  const base = minTerm - (minTerm % TERM_SLOTS) + slot;
  return base >= minTerm ? base : base + TERM_SLOTS;
}

/** Which slot a term belongs to (for status and logs). */
export function slotOfTerm(term: number): number {
  return term % TERM_SLOTS;
}
