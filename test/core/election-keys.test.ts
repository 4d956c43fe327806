// The election's pure rules, each alone: the election key order (core/types.ts compareKeys), the
// ring's successor order and best candidate (election/ring.ts), the bully's higher keys
// (election/bully.ts) and the terms a winner may claim (election/terms.ts).
import { describe, expect, it } from 'vitest';
import { higherKeyed } from '../../src/core/election/bully.ts';
import { bestCandidate, ringSuccessors } from '../../src/core/election/ring.ts';
import { claimTerm, slotOfTerm, termSlot } from '../../src/core/election/terms.ts';
import { TERM_SLOT_BITS } from '../../src/core/limits.ts';
import { compareKeys, type ElectionKey } from '../../src/core/types.ts';

describe('compareKeys', () => {
  it('priority beats node id', () => {
    expect(compareKeys({ priority: 200, nodeId: 'a' }, { priority: 100, nodeId: 'zzz' })).toBeGreaterThan(0);
    expect(compareKeys({ priority: 0, nodeId: 'zzz' }, { priority: 1, nodeId: 'a' })).toBeLessThan(0);
  });

  it('the clock class comes first (a healthy upstream beats any priority); absent counts as 0', () => {
    expect(compareKeys({ clockClass: 1, priority: 0, nodeId: 'a' }, { priority: 255, nodeId: 'zzz' })).toBeGreaterThan(0);
    expect(compareKeys({ clockClass: 0, priority: 255, nodeId: 'zzz' }, { clockClass: 1, priority: 0, nodeId: 'a' })).toBeLessThan(0);
    expect(compareKeys({ clockClass: 0, priority: 5, nodeId: 'a' }, { priority: 5, nodeId: 'a' })).toBe(0);
    expect(compareKeys({ clockClass: 1, priority: 7, nodeId: 'a' }, { clockClass: 1, priority: 5, nodeId: 'z' })).toBeGreaterThan(0);
  });

  it('equal priorities compare the ids as byte strings', () => {
    expect(compareKeys({ priority: 5, nodeId: 'b' }, { priority: 5, nodeId: 'a' })).toBeGreaterThan(0);
    expect(compareKeys({ priority: 5, nodeId: 'node' }, { priority: 5, nodeId: 'node1' })).toBeLessThan(0);
    expect(compareKeys({ priority: 5, nodeId: 'same' }, { priority: 5, nodeId: 'same' })).toBe(0);
    // Bytes, not locale: upper case sorts before lower case, digits before letters.
    expect(compareKeys({ priority: 5, nodeId: 'Zeta' }, { priority: 5, nodeId: 'alpha' })).toBeLessThan(0);
    expect(compareKeys({ priority: 5, nodeId: 'node-10' }, { priority: 5, nodeId: 'node-9' })).toBeLessThan(0);
  });

  it('orders by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF21 is EF BC A1 in UTF-8 and 0xFF21 in UTF-16; U+1F600 is F0 9F 98 80 and 0xD83D 0xDE00.
    // UTF-16 order would put U+FF21 above the emoji; byte order puts it below.
    const fullwidthA = { priority: 1, nodeId: '\uFF21' };
    const emoji = { priority: 1, nodeId: '\u{1F600}' };
    expect('\uFF21' > '\u{1F600}').toBe(true);
    expect(compareKeys(fullwidthA, emoji)).toBeLessThan(0);
    expect(compareKeys(emoji, fullwidthA)).toBeGreaterThan(0);
  });

  it('is antisymmetric over a mixed set', () => {
    const keys: ElectionKey[] = ['a', 'b', 'B', 'node-1', 'node-10', 'n\u00e9', ''].flatMap((nodeId) => [1, 2].map((priority) => ({ priority, nodeId })));
    for (const a of keys) for (const b of keys) expect(Math.sign(compareKeys(a, b)) + Math.sign(compareKeys(b, a))).toBe(0);
    // And the sort it induces is total: priority groups, then ids by bytes.
    expect([...keys].sort(compareKeys).map((key) => `${key.priority}:${key.nodeId}`).slice(0, 4)).toEqual(['1:', '1:B', '1:a', '1:b']);
  });
});

describe('ring and bully helpers', () => {
  const members = [
    { nodeId: 'c', priority: 100 },
    { nodeId: 'a', priority: 100 },
    { nodeId: 'e', priority: 100 },
    { nodeId: 'b', priority: 100 },
    { nodeId: 'd', priority: 100 },
  ];
  const ids = (list: ElectionKey[]) => list.map((member) => member.nodeId);

  it('ringSuccessors starts at the next higher key and wraps, excluding self', () => {
    expect(ids(ringSuccessors({ nodeId: 'c', priority: 100 }, members))).toEqual(['d', 'e', 'a', 'b']);
    expect(ids(ringSuccessors({ nodeId: 'a', priority: 100 }, members))).toEqual(['b', 'c', 'd', 'e']);
    // The highest wraps to the lowest.
    expect(ids(ringSuccessors({ nodeId: 'e', priority: 100 }, members))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('ringSuccessors works for a node not in the list and orders by priority first', () => {
    expect(ids(ringSuccessors({ nodeId: 'bb', priority: 100 }, members))).toEqual(['c', 'd', 'e', 'a', 'b']);
    const mixed = [...members, { nodeId: 'a-boss', priority: 500 }];
    expect(ids(ringSuccessors({ nodeId: 'e', priority: 100 }, mixed))).toEqual(['a-boss', 'a', 'b', 'c', 'd']);
    expect(ids(ringSuccessors({ nodeId: 'x', priority: 100 }, []))).toEqual([]);
  });

  it('ringSuccessors does not reorder its input', () => {
    const copy = members.map((member) => ({ ...member }));
    ringSuccessors({ nodeId: 'c', priority: 100 }, copy);
    expect(copy).toEqual(members);
  });

  it('bestCandidate picks the higher key', () => {
    expect(bestCandidate({ nodeId: 'a', priority: 2 }, { nodeId: 'z', priority: 1 }).nodeId).toBe('a');
    expect(bestCandidate({ nodeId: 'a', priority: 1 }, { nodeId: 'z', priority: 1 }).nodeId).toBe('z');
  });

  it('higherKeyed lists exactly the higher keys', () => {
    expect(ids(higherKeyed({ nodeId: 'c', priority: 100 }, members)).sort()).toEqual(['d', 'e']);
    expect(ids(higherKeyed({ nodeId: 'e', priority: 100 }, members))).toEqual([]);
    expect(ids(higherKeyed({ nodeId: 'z', priority: 1 }, members)).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });
});

describe('terms owned by their winner', () => {
  const slots = 2 ** TERM_SLOT_BITS;

  it('claimTerm is the smallest term at or above the minimum in the node\'s slot', () => {
    for (const nodeId of ['a', 'node-1', 'node-2', '\u{1F600}']) {
      for (const minTerm of [0, 1, slots - 1, slots, 5 * slots + 3, 2 ** 40 + 7]) {
        const term = claimTerm(nodeId, minTerm);
        expect(term).toBeGreaterThanOrEqual(minTerm);
        expect(term - minTerm).toBeLessThan(slots);
        expect(slotOfTerm(term)).toBe(termSlot(nodeId));
      }
    }
  });

  it('a term already in the slot is claimed as it is', () => {
    const term = claimTerm('n1', 1000);
    expect(claimTerm('n1', term)).toBe(term);
    expect(claimTerm('n1', term + 1)).toBe(term + slots);
  });

  it('termSlot is stable and within the slots', () => {
    expect(termSlot('node-1')).toBe(termSlot('node-1'));
    for (const nodeId of ['', 'a', 'b', 'x'.repeat(200)]) {
      expect(termSlot(nodeId)).toBeGreaterThanOrEqual(0);
      expect(termSlot(nodeId)).toBeLessThan(slots);
      expect(Number.isInteger(termSlot(nodeId))).toBe(true);
    }
    // Different ids land in different slots (FNV-1a; a collision here would be 1 in 2^24).
    expect(termSlot('node-1')).not.toBe(termSlot('node-2'));
  });
});
