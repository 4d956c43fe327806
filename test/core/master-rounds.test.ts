// The master's rounds alone (src/core/sync/master.ts), over a real peer table and view server but
// no node: the round cadence and its stored deadline, corrections to every member and to the
// master itself, and members that stop answering.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame, type FrameBody } from '../../src/core/frames.ts';
import type { Correction, NodeEvent } from '../../src/core/events.ts';
import { PeerTable } from '../../src/core/membership/peers.ts';
import type { Outbox } from '../../src/core/outbox.ts';
import { correctionSendable, MasterRounds, type MasterConfig } from '../../src/core/sync/master.ts';
import { CORRECTION_NS_MAX } from '../../src/core/limits.ts';
import { ClusterViewServer } from '../../src/core/view/cluster-view.ts';
import type { Endpoint, NodeId } from '../../src/core/types.ts';

const CONFIG: MasterConfig = { nodeId: 'm', pollIntervalMs: 1000, outlierThresholdNs: 1e9, probesPerRound: 1, probesMin: 1, probeSpacingMs: 10, replyWaitMs: 200 };

function setup(memberIds: NodeId[], config: MasterConfig = CONFIG, clock: { synchronized: boolean; provisionalNs: number | null } = { synchronized: true, provisionalNs: null }) {
  const sent: { to: NodeId; body: FrameBody }[] = [];
  const events: NodeEvent[] = [];
  const own: Correction[] = [];
  const outbox: Outbox = {
    send: () => {},
    sendTo: (to, body) => sent.push({ to, body }),
    emit: (event) => events.push(event),
  };
  const counters = { roundsCompleted: 0, samplesDiscarded: 0, probesSent: 0, correctionsUnsendable: 0, peersRefused: 0, peersExpired: 0, greetingsDeferred: 0 };
  const peers = new PeerTable({ nodeId: 'm', bootId: 1, peersMax: 10, pollIntervalMs: 1000, replayProtection: false }, { masterId: 'm', sendHello: () => {} }, outbox, counters);
  memberIds.forEach((nodeId, index) => peers.heard({ type: FrameType.hello, from: nodeId, prio: 0, boot: 1, seq: 1, to: 'm', toBoot: 1 } as unknown as Frame, { address: '198.18.0.3', port: index + 1 } as Endpoint, 0));
  events.length = 0;
  const host = { term: 3, clockSynchronized: clock.synchronized, clockProvisionalNs: clock.provisionalNs, ownErrorBoundNs: 0, referencesRounds: false, upstreamPassedOn: null, applyCorrection: (correction: Correction) => own.push(correction) };
  const rounds = new MasterRounds(config, host, peers, new ClusterViewServer(outbox), outbox, counters);
  return { rounds, peers, sent, events, own, counters };
}

/** A REPLY to probe 0 of `round` giving exactly this offset, with a 1 ms round trip. */
function reply(from: NodeId, round: number, offsetNs: number): Frame & { type: typeof FrameType.reply } {
  const t2 = BigInt(500_000 + offsetNs);
  return { type: FrameType.reply, from, term: 3, round, probe: 0, pollTxNs: 0n, rxNs: t2, txNs: t2, synced: true } as Frame & { type: typeof FrameType.reply };
}

describe('master rounds', () => {
  it('reads provisional times from its own clock and the replies: a pair that met at +1800 s follows three later boxes back', () => {
    // The master (moved +1800 s) and w (moved -1800 s) met half-way; a, b, c booted later at the
    // good time, 1800 s behind them. Raw, the master and a, b, c agree: everyone goes back 1800 s.
    const config = { ...CONFIG, outlierThresholdNs: 20e6 };
    const { rounds, sent, own } = setup(['w', 'a', 'b', 'c'], config, { synchronized: true, provisionalNs: 1800e9 });
    rounds.pollNow(0);
    rounds.tick(0);
    sent.length = 0;
    rounds.onReply({ ...reply('w', 1, 0), provisionalNs: -1800e9 }, 1_000_000n, 5);
    for (const id of ['a', 'b', 'c']) rounds.onReply({ ...reply(id, 1, -1800e9), synced: false, provisionalNs: 0 }, 1_000_000n, 6);
    expect(own).toHaveLength(1);
    expect(Math.abs((own[0] as Correction).correctionNs + 1800e9)).toBeLessThan(1e6);
    const toW = sent.find(({ to }) => to === 'w')?.body as { correctionNs: number };
    expect(Math.abs(toW.correctionNs + 1800e9)).toBeLessThan(1e6);
    expect(rounds.lastRound?.reference).toBe('majority');
  });

  it('a 1970 member is sent its whole 56-year correction: the CORRECT carries it', () => {
    // m, a, b at the master's time; old's clock at the epoch while the master reads 2026.
    const config = { ...CONFIG, outlierThresholdNs: 20e6 };
    const { rounds, sent, events, counters } = setup(['a', 'b', 'old'], config, { synchronized: false, provisionalNs: 0 });
    const masterNs = 1_767_225_600_000_000_000n;
    rounds.pollNow(0);
    rounds.tick(0);
    sent.length = 0;
    const replyAt = (from: string, memberNs: bigint) =>
      ({ type: FrameType.reply, from, term: 3, round: 1, probe: 0, pollTxNs: masterNs, rxNs: memberNs, txNs: memberNs, synced: false, provisionalNs: 0 }) as Frame & { type: typeof FrameType.reply };
    rounds.onReply(replyAt('a', masterNs + 500_000n), masterNs + 1_000_000n, 5);
    rounds.onReply(replyAt('b', masterNs + 500_000n), masterNs + 1_000_000n, 5);
    rounds.onReply(replyAt('old', 3_000_000_000n), masterNs + 1_000_000n, 6);
    const toOld = sent.find(({ to }) => to === 'old')?.body as { type: number; correctionNs: number };
    expect(toOld.type).toBe(FrameType.correct);
    // The master read masterNs + 0.5 ms when old read 3 s (mid round trip); within the float64 resolution there (256 ns).
    expect(Math.abs(toOld.correctionNs - Number(masterNs + 500_000n - 3_000_000_000n))).toBeLessThan(1000);
    expect(counters.correctionsUnsendable).toBe(0);
    expect(events.filter((event) => event.kind === 'correction-unsendable')).toEqual([]);
    expect(rounds.lastRound?.reference).toBe('majority');
  });

  it('a correction no frame can carry is not sent: counted, reported as an event and on the peer, never a silent drop', () => {
    // a, b, c claim raw times (clock minus provisionalNs) ~1.8e19 ns ahead, past the end of the
    // timestamp range (a broken or lying member), and agree there while their clocks do not: the
    // cluster would follow them, and the master's and d's corrections exceed what a frame carries.
    const config = { ...CONFIG, outlierThresholdNs: 20e6 };
    const { rounds, peers, sent, events, own, counters } = setup(['a', 'b', 'c', 'd'], config, { synchronized: false, provisionalNs: 0 });
    rounds.pollNow(0);
    rounds.tick(0);
    sent.length = 0;
    const nowOffsets = { a: 9.0e18, b: 9.1e18, c: 9.2e18 };
    for (const [id, offsetNs] of Object.entries(nowOffsets)) {
      rounds.onReply({ ...reply(id, 1, offsetNs), synced: false, provisionalNs: offsetNs - 1.8e19 }, 1_000_000n, 5);
    }
    rounds.onReply({ ...reply('d', 1, 0), synced: false, provisionalNs: 0 }, 1_000_000n, 6);
    expect(sent.map(({ to }) => to)).not.toContain('d');
    expect(own).toEqual([]);
    const unsendable = events.filter((event) => event.kind === 'correction-unsendable');
    expect(unsendable.map((event) => event.kind === 'correction-unsendable' && event.nodeId).sort()).toEqual(['d', 'm']);
    for (const event of unsendable) expect(event.kind === 'correction-unsendable' && event.correctionNs).toBeGreaterThan(CORRECTION_NS_MAX);
    expect(counters.correctionsUnsendable).toBe(2);
    expect(peers.get('d')?.correctionUnsendable).toBe(true);
    expect(peers.get('a')?.correctionUnsendable).toBe(false);
    // Those that can be corrected still are.
    expect(sent.filter(({ body }) => body.type === FrameType.correct).map(({ to }) => to).sort()).toEqual(['a', 'b', 'c']);
    expect(correctionSendable(Number.NaN)).toBe(false);
    expect(correctionSendable(Number.POSITIVE_INFINITY)).toBe(false);
    expect(correctionSendable(-CORRECTION_NS_MAX)).toBe(true);
  });

  it('runs nothing until told to poll, then one round every pollIntervalMs', () => {
    const { rounds, sent } = setup(['a']);
    expect(rounds.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY);
    rounds.pollNow(100);
    expect(rounds.nextDeadlineMs()).toBe(100);
    rounds.tick(100);
    expect(sent.map(({ to, body }) => [to, body.type])).toEqual([['a', FrameType.poll]]);
    // The probe's reply wait is the round's deadline now, not the next round.
    expect(rounds.nextDeadlineMs()).toBe(300);
    rounds.tick(300);
    expect(rounds.nextDeadlineMs()).toBe(1100);
    rounds.stop();
    expect(rounds.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY);
  });

  it('sends each member its correction to the average and applies the master its own', () => {
    const { rounds, sent, events, own, counters } = setup(['a', 'b']);
    rounds.pollNow(0);
    rounds.tick(0);
    sent.length = 0;
    rounds.onReply(reply('a', 1, 3_000_000), 1_000_000n, 5);
    rounds.onReply(reply('b', 1, 6_000_000), 1_000_000n, 6);
    // Average of 0 (master), 3 ms and 6 ms: 3 ms. Each moves by average - its own offset.
    const corrections = Object.fromEntries(sent.map(({ to, body }) => [to, (body as { correctionNs: number }).correctionNs]));
    expect(corrections).toEqual({ a: 0, b: -3_000_000 });
    expect(own).toEqual([{ correctionNs: 3_000_000, term: 3, round: 1, masterId: 'm' }]);
    expect(rounds.lastRound).toMatchObject({ round: 1, term: 3, members: 2, answered: 2, averageNs: 3_000_000 });
    expect(events.map((event) => event.kind)).toEqual(['round']);
    expect(counters.roundsCompleted).toBe(1);
  });

  it('ignores replies of another term or round, and marks a member suspect after three silent rounds', () => {
    const { rounds, peers, own } = setup(['a']);
    rounds.pollNow(0);
    for (let round = 1; round <= 3; round += 1) {
      const startMs = (round - 1) * 1000;
      rounds.tick(startMs);
      rounds.onReply({ ...reply('a', round, 0), term: 2 }, 1_000_000n, startMs + 1);
      rounds.onReply(reply('a', round + 1, 0), 1_000_000n, startMs + 1);
      rounds.tick(startMs + 200);
    }
    expect(peers.get('a')).toMatchObject({ missedRounds: 3, suspect: true });
    // Nobody answered: the master's clock is left alone.
    expect(own).toEqual([]);
  });

  it('a member leaving mid-round is not waited for', () => {
    const { rounds, own } = setup(['a', 'b']);
    rounds.pollNow(0);
    rounds.tick(0);
    rounds.onReply(reply('a', 1, 2_000_000), 1_000_000n, 1);
    rounds.memberLeft('b', 2);
    expect(rounds.lastRound).toMatchObject({ round: 1, members: 1, answered: 1 });
    expect(own).toHaveLength(1);
  });
});
