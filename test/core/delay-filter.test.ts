// The delay filter alone (src/core/sync/delay-filter.ts): which round samples are discarded as
// queued, that a streak of them is not, and that the history stays bounded.
import { describe, expect, it } from 'vitest';
import { DELAY_HISTORY_ROUNDS, POOR_DELAY_FACTOR, POOR_DELAY_MARGIN_NS, POOR_SAMPLE_STREAK_MAX } from '../../src/core/limits.ts';
import { fileRoundDelay, isPoorSample, type DelayHistory } from '../../src/core/sync/delay-filter.ts';

const floorNs = 100_000;
const poorNs = floorNs * POOR_DELAY_FACTOR + POOR_DELAY_MARGIN_NS + 1;

function history(...delaysNs: number[]): DelayHistory {
  return { recentDelaysNs: [...delaysNs], discardStreak: 0 };
}

describe('delay filter', () => {
  it('judges nothing poor without three rounds of history', () => {
    expect(isPoorSample(10 * poorNs, [floorNs, floorNs])).toBe(false);
    expect(isPoorSample(poorNs, [floorNs, 2 * floorNs, floorNs])).toBe(true);
    expect(isPoorSample(poorNs - 1, [floorNs, 2 * floorNs, floorNs])).toBe(false);
  });

  it('discards a queued sample and files its delay anyway', () => {
    const member = history(floorNs, floorNs, floorNs);
    expect(fileRoundDelay(member, poorNs)).toBe(true);
    expect(member.discardStreak).toBe(1);
    expect(member.recentDelaysNs.at(-1)).toBe(poorNs);
    expect(fileRoundDelay(member, floorNs)).toBe(false);
    expect(member.discardStreak).toBe(0);
  });

  it('uses a sample after a streak of discarded ones (a member is never starved)', () => {
    const member = history(floorNs, floorNs, floorNs);
    for (let round = 0; round < POOR_SAMPLE_STREAK_MAX; round += 1) expect(fileRoundDelay(member, poorNs)).toBe(true);
    expect(fileRoundDelay(member, poorNs)).toBe(false);
    expect(member.discardStreak).toBe(0);
  });

  it('keeps DELAY_HISTORY_ROUNDS rounds, newest last', () => {
    const member = history();
    for (let round = 1; round <= DELAY_HISTORY_ROUNDS + 3; round += 1) fileRoundDelay(member, round * 1000);
    expect(member.recentDelaysNs).toHaveLength(DELAY_HISTORY_ROUNDS);
    expect(member.recentDelaysNs.at(-1)).toBe((DELAY_HISTORY_ROUNDS + 3) * 1000);
    expect(member.recentDelaysNs[0]).toBe(4000);
  });
});
