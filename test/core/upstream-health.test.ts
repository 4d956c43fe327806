// The upstream's health, the clock class it gives (core/upstream/health.ts), and what the master
// does with an estimate (core/upstream/reference.ts), each alone with made-up estimates.
import { describe, expect, it } from 'vitest';
import { UpstreamHealth } from '../../src/core/upstream/health.ts';
import { UpstreamReference } from '../../src/core/upstream/reference.ts';
import type { UpstreamEstimate } from '../../src/core/upstream/estimate.ts';
import { UPSTREAM_HEALTHY_SAMPLES, UPSTREAM_HOLDDOWN_MS, UPSTREAM_LOST_AFTER_MS_MIN, UPSTREAM_LOST_AFTER_POLLS, UPSTREAM_STEER_STALL_POLLS } from '../../src/core/limits.ts';

const POLL_MS = 16_000;
const LOST_AFTER_MS = Math.max(UPSTREAM_LOST_AFTER_MS_MIN, UPSTREAM_LOST_AFTER_POLLS * POLL_MS);

function estimate(sampledMs: number, patch: Partial<UpstreamEstimate> = {}): UpstreamEstimate {
  return { sampledMs, peerSampledMs: sampledMs, offsetNs: 1_000, errorBoundNs: 50_000, rootDistanceNs: 100_000, stratum: 1, leap: 0, systemPeer: 'u1:123', truechimers: 1, ...patch };
}

/** Feeds usable estimates every `everyMs` from `fromMs` to `toMs`; returns the last time fed. */
function feed(health: UpstreamHealth, fromMs: number, toMs: number, everyMs = 2_000): number {
  let atMs = fromMs;
  for (; atMs <= toMs; atMs += everyMs) health.update(atMs, estimate(atMs));
  return atMs - everyMs;
}

describe('upstream health (the clock class)', () => {
  it('is healthy after UPSTREAM_HEALTHY_SAMPLES usable estimates in a row, counting each sample once', () => {
    const health = new UpstreamHealth(POLL_MS);
    for (let i = 0; i < UPSTREAM_HEALTHY_SAMPLES - 1; i += 1) expect(health.update(i * 2_000, estimate(i * 2_000))).toBe(false);
    // The same sample again is not a new one.
    health.update(5_000, estimate((UPSTREAM_HEALTHY_SAMPLES - 2) * 2_000));
    expect(health.isHealthy).toBe(false);
    expect(health.update(6_000, estimate(6_000))).toBe(true);
    expect(health.clockClass).toBe(1);
  });

  it('an unusable estimate (leap alarm, stratum 16, too far) or none breaks the row and says why', () => {
    const health = new UpstreamHealth(POLL_MS);
    health.update(0, estimate(0));
    health.update(2_000, estimate(2_000, { leap: 3 }));
    expect(health.report(2_000).lastUnusable).toMatch(/leap indicator 3/);
    health.update(4_000, estimate(4_000));
    health.update(6_000, null, 'no majority of the 2 usable servers agrees');
    expect(health.report(6_000)).toMatchObject({ usableInRow: 0, lastUnusable: 'no majority of the 2 usable servers agrees', healthy: false });
    health.update(8_000, estimate(8_000, { stratum: 16 }));
    expect(health.isHealthy).toBe(false);
  });

  it('is lost only after no usable estimate for UPSTREAM_LOST_AFTER_POLLS polls (a deadline tick() reads), then held down, the hold-down doubling with each loss', () => {
    const health = new UpstreamHealth(POLL_MS);
    const lastMs = feed(health, 0, 10_000);
    expect(health.isHealthy).toBe(true);
    expect(health.nextDeadlineMs()).toBe(lastMs + LOST_AFTER_MS);
    expect(health.tick(lastMs + LOST_AFTER_MS - 1)).toBe(false);
    expect(health.tick(lastMs + LOST_AFTER_MS)).toBe(true);
    expect(health.report(lastMs + LOST_AFTER_MS)).toMatchObject({ healthy: false, lost: 1, recentLosses: 1, holdDownUntilMs: lastMs + LOST_AFTER_MS + UPSTREAM_HOLDDOWN_MS });
    // Back at once, but healthy only when the hold-down ends (a deadline too).
    const backMs = lastMs + LOST_AFTER_MS + 1_000;
    feed(health, backMs, backMs + 10_000);
    expect(health.isHealthy).toBe(false);
    const holdDownEndMs = lastMs + LOST_AFTER_MS + UPSTREAM_HOLDDOWN_MS;
    expect(health.nextDeadlineMs()).toBeLessThanOrEqual(holdDownEndMs + LOST_AFTER_MS);
    const fedUntil = feed(health, backMs + 12_000, holdDownEndMs + 2_000);
    expect(health.isHealthy).toBe(true);
    // Lost again: the hold-down doubles.
    const lostAgainMs = fedUntil + LOST_AFTER_MS;
    health.tick(lostAgainMs);
    expect(health.report(lostAgainMs).holdDownUntilMs).toBe(lostAgainMs + 2 * UPSTREAM_HOLDDOWN_MS);
  });

  it('never becomes healthy on stale estimates when the hold-down ends after the server went quiet', () => {
    const health = new UpstreamHealth(POLL_MS);
    const lastMs = feed(health, 0, 10_000);
    health.tick(lastMs + LOST_AFTER_MS);
    // Three usable estimates during the hold-down, then nothing at all.
    const quietFromMs = feed(health, lastMs + LOST_AFTER_MS + 1_000, lastMs + LOST_AFTER_MS + 5_000);
    health.tick(quietFromMs + UPSTREAM_HOLDDOWN_MS + LOST_AFTER_MS);
    expect(health.isHealthy).toBe(false);
  });
});

describe('the master and its upstream (reference)', () => {
  function healthy(reference: UpstreamReference): number {
    let atMs = 0;
    for (; atMs < UPSTREAM_HEALTHY_SAMPLES * 2_000; atMs += 2_000) reference.update(atMs, estimate(atMs, { offsetNs: 5e6 }));
    return atMs;
  }

  it('as master, each new estimate is one correction; slew only once the cluster is established; members only stand by', () => {
    const reference = new UpstreamReference({ upstreamPollIntervalMs: POLL_MS, correctionNsMax: 600e9 });
    const atMs = healthy(reference);
    expect(reference.mode(false)).toBe('standby');
    expect(reference.steer(atMs, false)).toEqual({ kind: 'correct', correctionNs: 5e6, slewOnly: false, count: 1 });
    expect(reference.steer(atMs + 1, true)).toBeNull(); // the same sample: once
    reference.update(atMs + 2_000, estimate(atMs + 2_000, { offsetNs: 3e6 }));
    expect(reference.steer(atMs + 2_000, true)).toEqual({ kind: 'correct', correctionNs: 3e6, slewOnly: true, count: 2 });
    expect(reference.mode(true)).toBe('following');
    expect(reference.referencesRounds(true)).toBe(true);
    expect(reference.passedOn(true)).toEqual({ stratum: 1, leap: 0 });
    // Its own bound: the last offset and error bound, grown at 15 ppm.
    expect(reference.ownBoundNs(atMs + 2_000 + 10_000, true)).toBe(3e6 + 50_000 + 15 * 10_000);
  });

  it('steers once per sample of the system peer, not on each other server\'s reply; a silent system peer does not stall it', () => {
    const reference = new UpstreamReference({ upstreamPollIntervalMs: POLL_MS, correctionNsMax: 600e9 });
    const atMs = healthy(reference);
    expect(reference.steer(atMs, true)?.kind).toBe('correct');
    // Another truechimer's reply 5 ms later: a new sample behind the estimate, but not the peer's.
    reference.update(atMs + 5, estimate(atMs + 5, { peerSampledMs: atMs - 2_000, offsetNs: 4e6 }));
    expect(reference.steer(atMs + 5, true)).toBeNull();
    // The system peer's next reply, a poll later: steered.
    reference.update(atMs + POLL_MS, estimate(atMs + POLL_MS, { offsetNs: 2e6 }));
    expect(reference.steer(atMs + POLL_MS, true)).toMatchObject({ kind: 'correct', correctionNs: 2e6, count: 2 });
    // The peer falls silent (still selected): the others' samples are steered on once
    // UPSTREAM_STEER_STALL_POLLS poll intervals passed without a correction, then once a poll.
    let nowMs = atMs + POLL_MS;
    const steered: number[] = [];
    for (let poll = 1; poll <= 5; poll += 1) {
      nowMs += POLL_MS;
      reference.update(nowMs, estimate(nowMs, { peerSampledMs: atMs + POLL_MS, offsetNs: 1e6 }));
      if (reference.steer(nowMs, true) !== null) steered.push(poll);
    }
    expect(steered).toEqual(Array.from({ length: Math.floor(5 / UPSTREAM_STEER_STALL_POLLS) }, (_, index) => (index + 1) * UPSTREAM_STEER_STALL_POLLS));
  });

  it('beyond the panic threshold from an established cluster: refused, and the cluster stays the reference', () => {
    const reference = new UpstreamReference({ upstreamPollIntervalMs: POLL_MS, correctionNsMax: 1e9 });
    let atMs = 0;
    for (; atMs < UPSTREAM_HEALTHY_SAMPLES * 2_000; atMs += 2_000) reference.update(atMs, estimate(atMs, { offsetNs: 5e9 }));
    expect(reference.steer(atMs, true)).toEqual({ kind: 'refuse', offsetNs: 5e9, limitNs: 1e9 });
    expect(reference.mode(true)).toBe('refused');
    expect(reference.referencesRounds(true)).toBe(false);
    expect(reference.report(atMs, true).refused).toEqual({ offsetNs: 5e9, limitNs: 1e9, atMs });
    // A cluster still forming may step there instead.
    reference.update(atMs + 2_000, estimate(atMs + 2_000, { offsetNs: 5e9 }));
    expect(reference.steer(atMs + 2_000, false)).toEqual({ kind: 'correct', correctionNs: 5e9, slewOnly: false, count: 1 });
  });

  it('lost after following: holdover (the rounds still reference the master, its bound grows); a new mastership starts over', () => {
    const reference = new UpstreamReference({ upstreamPollIntervalMs: POLL_MS, correctionNsMax: 600e9 });
    const atMs = healthy(reference);
    reference.steer(atMs, false);
    reference.tick(atMs + LOST_AFTER_MS + 1);
    expect(reference.mode(true)).toBe('holdover');
    expect(reference.referencesRounds(true)).toBe(true);
    expect(reference.passedOn(true)).toBeNull();
    expect(reference.ownBoundNs(atMs + 3_600_000, true)).toBeGreaterThan(50e6);
    reference.roleChanged(false);
    reference.roleChanged(true);
    expect(reference.mode(true)).toBe('acquiring');
    expect(reference.ownBoundNs(atMs + 3_600_000, true)).toBe(0);
  });
});
