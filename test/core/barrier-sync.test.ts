// Synchronized barrier releases (issue 19), in the core: the master gives a synchronized generation
// one release instant on its clock, a margin past the last arrival that covers the slowest
// participant's measured delay; every release and retransmission carries that same instant; a plain
// generation carries none (older agents keep decoding it); and a master that dies between the
// release and the instant does not lose it: the agents that got the release know it, and a new
// master releases the participants the old one did not reach with the same instant.
import { describe, expect, it } from 'vitest';
import { BarrierClient } from '../../src/core/barrier/client.ts';
import { BarrierFrameType, type BarrierBody, type BarrierSend } from '../../src/core/barrier/frames.ts';
import { BarrierTable, syncReleaseMarginNs } from '../../src/core/barrier/table.ts';
import {
  BARRIER_RETRY_MS,
  BARRIER_SYNC_DELAY_FACTOR,
  BARRIER_SYNC_DELAY_UNKNOWN_NS,
  BARRIER_SYNC_MARGIN_FLOOR_NS,
  BARRIER_SYNC_MARGIN_MAX_NS,
  FRAME_BYTES_MAX,
} from '../../src/core/limits.ts';
import { SeededRandom } from '../../src/sim/random.ts';
import { acksIn, decodeBarrier, encodeBarrier, joinBody, releasesIn } from '../support/barrier.ts';

const CLOCK_START_NS = 1_700_000_000_000_000_000n;

/** A table whose master clock and delay filters the test sets. */
function syncTable(delays: Record<string, number | null> = {}) {
  const random = new SeededRandom(7);
  const state = { clockNs: CLOCK_START_NS, nowMs: 1000 };
  const table = new BarrierTable({ random: () => random.next(), clockNowNs: () => state.clockNs, delayNsOf: (nodeId) => delays[nodeId] ?? null });
  const deliver = (from: string, body: BarrierBody): BarrierSend[] => {
    table.deliver(from, body, state.nowMs);
    return table.drain();
  };
  /** Join and confirm, as a BarrierClient does. */
  const participate = (from: string, name: string, requestId: number, options: { count?: number | null; synchronized?: boolean } = {}): BarrierSend[] => {
    const extra = options.synchronized ? { synchronized: true as const } : {};
    const first = deliver(from, { ...joinBody(name, requestId, { count: options.count ?? null }), ...extra });
    const ack = acksIn(first).find((a) => a.requestId === requestId && a.to === from);
    if (ack === undefined || ack.generation === null) return first;
    return [...first, ...deliver(from, { ...joinBody(name, requestId, { count: options.count ?? null, generation: ack.generation }), ...extra })];
  };
  return { table, state, deliver, participate };
}

describe('the release margin', () => {
  it('is at least the floor, and covers the slowest agent by the factor', () => {
    expect(syncReleaseMarginNs([0])).toBe(BARRIER_SYNC_MARGIN_FLOOR_NS);
    expect(syncReleaseMarginNs([100_000, 2_000_000, 50_000])).toBe(2_000_000 * BARRIER_SYNC_DELAY_FACTOR + BARRIER_SYNC_MARGIN_FLOOR_NS);
  });

  it('assumes a default delay for an agent not measured yet, and is capped', () => {
    expect(syncReleaseMarginNs([0, null])).toBe(BARRIER_SYNC_DELAY_UNKNOWN_NS * BARRIER_SYNC_DELAY_FACTOR + BARRIER_SYNC_MARGIN_FLOOR_NS);
    expect(syncReleaseMarginNs([60e9])).toBe(BARRIER_SYNC_MARGIN_MAX_NS);
  });
});

describe('the master releases a synchronized generation at one instant', () => {
  it('past the last arrival by the margin of the slowest participant, the same for everyone', () => {
    const t = syncTable({ m: 0, a: 300_000, b: 1_500_000 });
    t.participate('a', 'go', 1, { synchronized: true });
    t.state.clockNs += 7_000_000n;
    t.participate('b', 'go', 2, { synchronized: true });
    t.state.clockNs += 3_000_000n;
    const lastArrivalNs = t.state.clockNs;
    const sends = t.participate('m', 'go', 3, { count: 2, synchronized: true });
    const releases = releasesIn(sends);
    expect(releases.map((release) => release.to).sort()).toEqual(['a', 'b', 'm']);
    const instants = new Set(releases.map((release) => release.releaseAtNs));
    expect(instants.size).toBe(1);
    const releaseAtNs = releases[0]?.releaseAtNs as bigint;
    expect(releaseAtNs - lastArrivalNs).toBe(BigInt(syncReleaseMarginNs([0, 300_000, 1_500_000])));
    expect(releaseAtNs - lastArrivalNs).toBeGreaterThanOrEqual(BigInt(1_500_000 * BARRIER_SYNC_DELAY_FACTOR + BARRIER_SYNC_MARGIN_FLOOR_NS));
    expect(t.table.counters.generationsReleasedSynchronized).toBe(1);
  });

  it('one synchronized participant is enough; plain participants get the instant too (they may ignore it)', () => {
    const t = syncTable({ a: 100_000, m: 0 });
    t.participate('a', 'mixed', 1);
    const releases = releasesIn(t.participate('m', 'mixed', 2, { count: 1, synchronized: true }));
    expect(releases).toHaveLength(2);
    expect(releases.every((release) => typeof release.releaseAtNs === 'bigint')).toBe(true);
  });

  it('a plain generation carries no instant (the field is left out, as older agents expect)', () => {
    const t = syncTable({ a: 100_000, m: 0 });
    t.participate('a', 'plain', 1);
    const releases = releasesIn(t.participate('m', 'plain', 2, { count: 1 }));
    expect(releases).toHaveLength(2);
    for (const release of releases) expect('releaseAtNs' in release).toBe(false);
    expect(t.table.counters.generationsReleasedSynchronized).toBe(0);
  });

  it('retransmissions and answers to repeated joins carry the same instant, however late', () => {
    const t = syncTable({ a: 100_000, m: 0 });
    t.participate('a', 'again', 1, { synchronized: true });
    const first = releasesIn(t.participate('m', 'again', 2, { count: 1, synchronized: true }));
    const releaseAtNs = first[0]?.releaseAtNs;
    t.state.clockNs += 10_000_000_000n;
    t.state.nowMs += BARRIER_RETRY_MS;
    t.table.tick(t.state.nowMs);
    const retransmitted = releasesIn(t.table.drain());
    expect(retransmitted.length).toBeGreaterThan(0);
    for (const release of retransmitted) expect(release.releaseAtNs).toBe(releaseAtNs);
    // The agent's release was lost and it asks again (a refresh join): the same instant.
    const answered = releasesIn(t.deliver('a', { ...joinBody('again', 1, { generation: first[0]?.generation ?? null }), synchronized: true }));
    expect(answered.map((release) => release.releaseAtNs)).toEqual([releaseAtNs]);
  });
});

describe('a master failure between the release and the instant', () => {
  it('the agents that got the release keep the instant; a new master releases the others at the same instant', () => {
    // Old master M releases generation G; its release reaches agent A but not agent B, then M dies.
    const old = syncTable({ a: 200_000, b: 200_000, m: 0 });
    const clientA = new BarrierClient({ nodeId: 'a', requestIdBase: 100 });
    const clientB = new BarrierClient({ nodeId: 'b', requestIdBase: 200 });
    clientA.masterChanged('m', 0);
    clientB.masterChanged('m', 0);
    const exchange = (client: BarrierClient, table: BarrierTable, masterId: string, nowMs: number, lose = false): BarrierSend[] => {
      // One round trip agent -> table -> agent; returns what the table sent to this agent.
      const toTable = client.drain().sends.filter((send) => send.to === masterId);
      for (const send of toTable) table.deliver(client.nodeId, send.body, nowMs);
      const fromTable = table.drain();
      if (!lose) for (const send of fromTable) if (send.to === client.nodeId) client.receive(send.body, masterId, nowMs);
      return fromTable;
    };
    const a = clientA.join({ name: 'phase', count: null, errorCode: 0, synchronized: true }, 0);
    const b = clientB.join({ name: 'phase', count: 1, errorCode: 0, synchronized: true }, 0);
    expect(a.ok && b.ok).toBe(true);
    // Join, ack, confirming join (twice each, so both are confirmed); B's confirmation releases.
    exchange(clientA, old.table, 'm', 0);
    exchange(clientB, old.table, 'm', 0);
    exchange(clientA, old.table, 'm', 0);
    const fromOld = exchange(clientB, old.table, 'm', 0, true);
    const releases = releasesIn([...fromOld, ...old.table.drain()]);
    expect(releases.length).toBeGreaterThan(0);
    const releaseAtNs = releases[0]?.releaseAtNs as bigint;
    expect(typeof releaseAtNs).toBe('bigint');
    // A's release arrived; B's was lost. Deliver A's (B's is dropped), then M dies.
    for (const send of fromOld) if (send.to === 'a') clientA.receive(send.body, 'm', 0);
    const outcomeA = clientA.drain().outcomes.find((outcome) => outcome.kind === 'released');
    expect(outcomeA).toMatchObject({ kind: 'released', releaseAtNs });
    expect(clientB.drain().outcomes.some((outcome) => outcome.kind === 'released')).toBe(false);

    // New master N (its clock later than the instant would not matter: the instant is carried).
    const fresh = syncTable({ a: 200_000, b: 200_000 });
    fresh.state.clockNs = CLOCK_START_NS + 1_000_000n;
    clientA.masterChanged('n', 10);
    clientB.masterChanged('n', 10);
    // A reports G released, with its instant; B re-registers with G.
    exchange(clientA, fresh.table, 'n', 10);
    const toB = exchange(clientB, fresh.table, 'n', 10);
    const bReleases = releasesIn([...toB, ...fresh.table.drain()]).filter((release) => release.to === 'b');
    expect(bReleases.length).toBeGreaterThan(0);
    for (const release of bReleases) expect(release.releaseAtNs).toBe(releaseAtNs);
    const outcomeB = clientB.drain().outcomes.find((outcome) => outcome.kind === 'released');
    expect(outcomeB).toMatchObject({ kind: 'released', releaseAtNs });
  });
});

describe('the wire', () => {
  it('the optional fields encode within the frame limit and decode back; absent ones stay absent', () => {
    const release: BarrierBody = {
      type: BarrierFrameType.barrierRelease,
      name: 'x'.repeat(64),
      generation: Number.MAX_SAFE_INTEGER,
      exitCode: 239,
      requestIds: Array.from({ length: 64 }, (_, index) => Number.MAX_SAFE_INTEGER - index),
      releaseAtNs: (1n << 63n) - 1n,
    };
    const join: BarrierBody = { ...joinBody('x'.repeat(64), Number.MAX_SAFE_INTEGER, { count: 4096, generation: Number.MAX_SAFE_INTEGER }), synchronized: true };
    const notice: BarrierBody = { type: BarrierFrameType.barrierReleased, name: 'n', generation: 5, exitCode: 0, releaseAtNs: CLOCK_START_NS };
    for (const body of [release, join, notice]) {
      const bytes = encodeBarrier(body);
      expect(bytes.length).toBeLessThan(FRAME_BYTES_MAX);
      expect(decodeBarrier(bytes)).toEqual({ ok: true, body });
    }
    const plain = decodeBarrier(encodeBarrier(joinBody('p', 1)));
    expect(plain.ok && 'synchronized' in plain.body).toBe(false);
  });

  it('bad values of the new fields are refused', () => {
    const base = { type: BarrierFrameType.barrierRelease, name: 'x', generation: 1, exitCode: 0, requestIds: [1] };
    expect(decodeBarrier(encodeBarrier({ ...base, releaseAtNs: -1n } as unknown as BarrierBody)).ok).toBe(false);
    expect(decodeBarrier(encodeBarrier({ ...base, releaseAtNs: 'soon' } as unknown as BarrierBody)).ok).toBe(false);
    expect(decodeBarrier(encodeBarrier({ ...joinBody('x', 1), synchronized: false } as unknown as BarrierBody)).ok).toBe(false);
  });
});
