// The delay filter: a member's round sample whose round-trip delay is far above its recent minimum
// was queued somewhere on the way, and its offset is off by up to half the excess. Such a sample is
// discarded (a streak of them is not, so a member whose path got slower for good is not starved),
// and a probe whose delay is already near the minimum ends the member's probing early.
import {
  DELAY_HISTORY_ROUNDS,
  POOR_DELAY_FACTOR,
  POOR_DELAY_MARGIN_NS,
  POOR_SAMPLE_STREAK_MAX,
  PROBE_GOOD_DELAY_FACTOR,
  PROBE_GOOD_DELAY_MARGIN_NS,
} from '../limits.ts';

/** What the filter keeps per member (the peer table holds it; status shows it). */
export interface DelayHistory {
  /** Best-probe delay of recent rounds (newest last). */
  recentDelaysNs: number[];
  /** Rounds in a row whose sample the filter discarded. */
  discardStreak: number;
}

/** Whether a sample's delay is far above the member's recent minimum (needs a little history). */
export function isPoorSample(delayNs: number, recentDelaysNs: readonly number[]): boolean {
  if (recentDelaysNs.length < 3) return false;
  return delayNs > Math.min(...recentDelaysNs) * POOR_DELAY_FACTOR + POOR_DELAY_MARGIN_NS;
}

/**
 * Whether a delay is as good as more probes could make it: within max(PROBE_GOOD_DELAY_MARGIN_NS,
 * PROBE_GOOD_DELAY_FACTOR x minimum) of the recent minimum (never without a history).
 */
export function isNearMinimumDelay(delayNs: number, recentDelaysNs: readonly number[]): boolean {
  if (recentDelaysNs.length === 0) return false;
  const floorNs = Math.min(...recentDelaysNs);
  return delayNs <= floorNs + Math.max(PROBE_GOOD_DELAY_MARGIN_NS, PROBE_GOOD_DELAY_FACTOR * floorNs);
}

/**
 * Files a round's best delay in the member's history and says whether its sample is discarded.
 * Never starves a member: after POOR_SAMPLE_STREAK_MAX poor rounds in a row the next sample is used anyway.
 */
export function fileRoundDelay(history: DelayHistory, delayNs: number): boolean {
  const discarded = history.discardStreak < POOR_SAMPLE_STREAK_MAX && isPoorSample(delayNs, history.recentDelaysNs);
  history.discardStreak = discarded ? history.discardStreak + 1 : 0;
  history.recentDelaysNs.push(delayNs);
  if (history.recentDelaysNs.length > DELAY_HISTORY_ROUNDS) history.recentDelaysNs.shift();
  return discarded;
}
