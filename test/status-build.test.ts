// The status report built from a plain snapshot (src/daemon/status.ts buildStatus), without an
// agent, sockets or clocks: every field of the contract present, times turned into "ago" from the
// snapshot's instant, nanoseconds rounded, peers sorted, counters summed, and the verdict included.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeConfig } from '../src/core/defaults.ts';
import { PROTOCOL_VERSION } from '../src/core/limits.ts';
import { ProtocolNode, type NodeStatus, type PeerState } from '../src/core/node.ts';
import { Discipline } from '../src/core/sync/discipline.ts';
import { buildStatus, verdictOf, type StatusInputs, type StatusReport } from '../src/daemon/status.ts';
import { upstreamClient, upstreamCore } from './support/upstream-status.ts';

const NOW_MS = 100_000;

function peer(nodeId: string, lastHeardMs: number | null, sample: { offsetNs: number; delayNs: number } | null): PeerState {
  return {
    nodeId,
    priority: 100,
    endpoint: { address: `198.18.0.${nodeId.length}`, port: 7412 },
    lastHeardMs,
    suspect: lastHeardMs === null,
    excluded: false,
    correctionUnsendable: false,
    lastSample: sample === null ? null : { ...sample, round: 4, atMs: NOW_MS - 500, discarded: false },
  } as unknown as PeerState;
}

/** A master at NOW_MS with two members (out of order), a round 800 ms ago and a disabled panic threshold. */
function inputs(change: (inputs: StatusInputs) => void = () => {}): StatusInputs {
  const node = new ProtocolNode(nodeConfig({ nodeId: 'node-m', random: () => 0.5 }), 0, null);
  const core: NodeStatus = {
    ...node.status(),
    role: 'master',
    masterId: 'node-m',
    term: 9,
    election: { ...node.status().election, last: { term: 9, algorithm: 'ring', winner: 'node-m', durationMs: 12.34567, endedMs: NOW_MS - 30_000 } },
    lastRound: { round: 4, term: 9, atMs: NOW_MS - 800, members: 2, answered: 2, averageNs: 1234.6, medianNs: -0.4, boundNs: 99_999.5, excluded: [], reference: 'majority' },
    lastCorrection: null,
    peers: [peer('node-b', NOW_MS - 250.4, { offsetNs: 10.6, delayNs: 90_000.2 }), peer('node-a', null, null)],
  };
  const discipline = new Discipline({ stepThresholdNs: 128e6, slewPpmMax: 5000, correctionNsMax: Number.POSITIVE_INFINITY, driverPpmMax: 100_000, pollIntervalMs: 1000, provisionalWindowMs: 60_000 });
  const made: StatusInputs = {
    nowMs: NOW_MS,
    startedMonoMs: 40_000.4,
    pid: 4242,
    version: '9.9.9',
    listen: { address: '0.0.0.0', port: 7412 },
    interfaceName: 'eth0',
    pollIntervalMs: 1000,
    node: core,
    barriers: node.barrierReport(NOW_MS),
    clock: { mode: 'virtual', hostOffsetNs: 5, frequencyPpm: 0, slewRemainingNs: 0, slewRatePpm: 0, kernel: null, virtualBase: 'monotonic-raw' },
    errorBoundNs: 0,
    ntp: {
      port: 10123, serving: true, addresses: ['127.0.0.1:10123'], why: null, rxTimestamps: 'kernel',
      counters: { requests: 5, replies: 4, repliesUnsynchronized: 1, rateLimited: 1, rateLimitLeaked: 0, dropped: 1, droppedByReason: { rateLimited: 1 }, rxStampedByKernel: 5, rxStampedByUser: 0 },
    },
    upstreams: null,
    virtualDriftPpm: 20,
    hostClock: { anchorErrorNs: 812.7, reanchors: 1, refinements: 2 },
    discipline: { ...discipline.state(), synchronized: true, lastUpdateMs: NOW_MS - 2500, frequencyPpm: 1.23456, updates: 5 },
    policy: discipline.policy,
    slewRatePpmMax: discipline.slewRatePpm(),
    transport: { rxTimestamps: 'kernel', rxTimestampsWhyNot: null, rxStampedByKernel: 10, rxStampedByUser: 1, sendErrors: 3 },
    auth: null,
    keyFile: null,
    frames: { received: 20, sent: 30, rejectedByReason: { malformed: 2, 'bad-tag': 5 } },
  };
  change(made);
  return made;
}

/** Every key path of a JSON value (arrays by their first element), to compare shapes. */
function keyPaths(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.length === 0 ? [] : keyPaths(value[0], `${prefix}[]`);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, child]) => [`${prefix}${key}`, ...keyPaths(child, `${prefix}${key}.`)]);
}

describe('buildStatus', () => {
  it('fills every field of the contract (every key of the example report in test/fixtures)', () => {
    const report = buildStatus(inputs());
    const example = JSON.parse(readFileSync(new URL('./fixtures/status-master.json', import.meta.url), 'utf8')) as StatusReport;
    // Keys whose children vary by content (reason names, kernel state of a system clock) are compared at their own level.
    const open = (path: string) => !/^counters\.framesRejectedByReason\.|^ntp\.counters\.droppedByReason\.|^barriers\.counters\.rejected\.|^clock\.kernel\.|^election\.byAlgorithm\.|^lastCorrection\.|^barriers\.(waiting|open)\[\]/.test(path);
    const built = new Set(keyPaths(JSON.parse(JSON.stringify(report))));
    const missing = keyPaths(example).filter(open).filter((path) => !built.has(path));
    expect(missing).toEqual([]);
    // And nothing the contract type does not have (the example predates lastRound.reference).
    const extra = [...built].filter(open).filter((path) => !keyPaths(example).includes(path) && path !== 'lastRound.reference');
    expect(extra).toEqual([]);
  });

  it('turns monotonic instants into ages at the snapshot, rounds nanoseconds, sorts peers by id', () => {
    const report = buildStatus(inputs());
    expect(report.uptimeMs).toBe(60_000);
    expect(report.protocolVersion).toBe(PROTOCOL_VERSION);
    expect(report.lastRound).toMatchObject({ agoMs: 800, averageNs: 1235, medianNs: -0, boundNs: 100_000 });
    expect(report.peers.map((p) => p.nodeId)).toEqual(['node-a', 'node-b']);
    expect(report.peers[0]).toMatchObject({ lastHeardAgoMs: null, offsetNs: null, delayNs: null, sampleDiscarded: false });
    expect(report.peers[1]).toMatchObject({ lastHeardAgoMs: 250, offsetNs: 11, delayNs: 90_000 });
    expect(report.clock.host.anchorErrorNs).toBe(813);
    expect(report.tracking.frequencyPpm).toBe(1.235);
    expect(report.tracking.lastUpdateAgoMs).toBe(2500);
    expect(report.election.last).toEqual({ term: 9, algorithm: 'ring', winner: 'node-m', durationMs: 12.346, agoMs: 30_000 });
  });

  it('a peer whose last correction could not be sent says so, and the counter is reported', () => {
    const report = buildStatus(
      inputs((input) => {
        (input.node.peers[0] as PeerState).correctionUnsendable = true;
        input.node.counters.correctionsUnsendable = 3;
      }),
    );
    expect(report.peers.find((p) => p.nodeId === 'node-b')?.correctionUnsendable).toBe(true);
    expect(report.peers.find((p) => p.nodeId === 'node-a')?.correctionUnsendable).toBe(false);
    expect(report.counters.correctionsUnsendable).toBe(3);
  });

  it('clock.provisional follows the discipline: true while its time is provisional, false once locked', () => {
    const base = inputs();
    expect(buildStatus({ ...base, discipline: { ...base.discipline, provisionalNs: -1800e9 } }).clock.provisional).toBe(true);
    expect(buildStatus({ ...base, discipline: { ...base.discipline, provisionalNs: null } }).clock.provisional).toBe(false);
  });

  it('holdover after two poll intervals without a correction; no panic threshold is null', () => {
    expect(buildStatus(inputs()).tracking.holdover).toBe(true);
    expect(buildStatus(inputs((i) => (i.discipline = { ...i.discipline, lastUpdateMs: NOW_MS - 1500 }))).tracking.holdover).toBe(false);
    expect(buildStatus(inputs()).tracking.correctionNsMax).toBeNull();
    const capped = inputs((i) => (i.policy = { ...i.policy, correctionNsMax: 600e9 }));
    expect(buildStatus(capped).tracking.correctionNsMax).toBe(600e9);
  });

  it('sums the rejected frames and copies the counters it is given', () => {
    const made = inputs();
    const report = buildStatus(made);
    expect(report.counters).toMatchObject({ framesReceived: 20, framesSent: 30, framesRejected: 7, sendErrors: 3 });
    made.frames.rejectedByReason.malformed = 100;
    expect(report.counters.framesRejectedByReason.malformed).toBe(2);
  });

  it('clock.errorBoundNs: rounded to ns, null passed on as null (not synchronized); the ntp section as given', () => {
    expect(buildStatus(inputs((i) => (i.errorBoundNs = 37_511.6))).clock.errorBoundNs).toBe(37_512);
    expect(buildStatus(inputs((i) => (i.errorBoundNs = null))).clock.errorBoundNs).toBeNull();
    const report = buildStatus(inputs());
    expect(report.clock.errorBoundNs).toBe(0);
    expect(report.ntp).toMatchObject({ port: 10123, serving: true, addresses: ['127.0.0.1:10123'], why: null, counters: { requests: 5, rateLimited: 1 } });
  });

  it('without --upstream: clock.reference cluster, class 0, upstream null', () => {
    const report = buildStatus(inputs());
    expect(report.clock.reference).toBe('cluster');
    expect(report.clockClass).toBe(0);
    expect(report.upstream).toBeNull();
  });

  it('with --upstream: the node\'s report with times as ago/remaining, every server with its verdict, the selection', () => {
    const report = buildStatus(inputs((i) => {
      i.node = { ...i.node, clockClass: 1, reference: 'upstream', upstream: upstreamCore({ holdDownUntilMs: NOW_MS + 12_000.4 }) };
      i.upstreams = upstreamClient();
    }));
    expect(report.clock.reference).toBe('upstream');
    expect(report.clockClass).toBe(1);
    const upstream = report.upstream;
    if (upstream === null) throw new Error('expected an upstream section');
    expect(upstream).toMatchObject({
      mode: 'following', healthy: true, clockClass: 1, changedAgoMs: 40_000, usableInRow: 9, lastUsableAgoMs: 1_500, lastUnusable: null,
      recentLosses: 1, holdDownRemainingMs: 12_000, acquired: 2, lost: 1, corrections: 7, lastFollowedAgoMs: 1_500, refusals: 1, pollIntervalMs: 16_000,
      estimate: { agoMs: 1_500, offsetNs: 15_000, errorBoundNs: 52_000, rootDistanceNs: 60_000, stratum: 1, leap: 0, systemPeer: '198.18.0.10:123', truechimers: 2 },
      refused: { offsetNs: 3e9, limitNs: 600e9, agoMs: 90_000 },
    });
    expect(upstream.servers.map((server) => [server.host, server.port, server.address, server.verdict])).toEqual([
      ['198.18.0.10', 123, '198.18.0.10', 'truechimer'],
      ['198.18.0.11', 123, '198.18.0.11', 'truechimer'],
      ['198.18.0.12', 123, '198.18.0.12', 'falseticker'],
      ['ntp.invalid', 123, null, 'unreachable'],
    ]);
    expect(upstream.servers[0]).toMatchObject({ state: 'polling', reachable: true, reach: 255, stratum: 1, leap: 0, offsetNs: 12_345, delayNs: 101_401, jitterNs: 3_000, rootDistanceNs: 60_000, lastSampleAgoMs: 1_500 });
    expect(upstream.servers[2]?.reason).toMatch(/misses the intersection/);
    expect(upstream.servers[3]).toMatchObject({ state: 'resolving', reachable: false, offsetNs: null, reason: expect.stringMatching(/does not resolve/) });
    expect(upstream.selection).toMatchObject({ ok: true, systemPeer: '198.18.0.10:123', stratum: 1, leap: 0, truechimers: ['198.18.0.10:123', '198.18.0.11:123'] });
    // JSON-safe: no Infinity, no undefined.
    expect(JSON.parse(JSON.stringify(upstream))).toEqual(upstream);
  });

  it('with --upstream: a selection without a result says its code and reason; an infinite panic threshold is null', () => {
    const report = buildStatus(inputs((i) => {
      i.node = { ...i.node, upstream: upstreamCore({ mode: 'acquiring', healthy: false, clockClass: 0, refused: { offsetNs: 1, limitNs: Number.POSITIVE_INFINITY, atMs: NOW_MS } }) };
      const client = upstreamClient();
      i.upstreams = { ...client, selection: { ok: false, code: 'noMajority', reason: 'no majority of the 2 usable servers agrees', servers: client.selection.servers } };
    }));
    expect(report.upstream?.selection).toEqual({ ok: false, code: 'noMajority', reason: 'no majority of the 2 usable servers agrees' });
    expect(report.upstream?.refused?.limitNs).toBeNull();
    expect(report.upstream?.mode).toBe('acquiring');
  });

  it('auth: open cluster, or the keys in use', () => {
    expect(buildStatus(inputs()).auth).toEqual({ enabled: false, keyFile: null, sendKeyId: null, keyIds: [] });
    const keyed = inputs((i) => ((i.auth = { sendKeyId: 2, keyIds: [2, 1] }), (i.keyFile = '/etc/berkeley-agent/key')));
    expect(buildStatus(keyed).auth).toEqual({ enabled: true, keyFile: '/etc/berkeley-agent/key', sendKeyId: 2, keyIds: [2, 1] });
  });

  it('includes the verdict of the report it built', () => {
    const report = buildStatus(inputs());
    expect(verdictOf(report)).toEqual({ verdict: report.verdict, verdictReason: report.verdictReason });
    // Synchronized, a round with answers, but no correction for 2.5 s at a 1 s poll: still within VERDICT_HOLDOVER_POLLS.
    expect(report.verdict).toBe('synchronized');
    const alone = buildStatus(inputs((i) => (i.node = { ...i.node, lastRound: null })));
    expect(alone.verdict).toBe('alone');
  });

  it('barriers: no table on an agent that is not serving any', () => {
    const report = buildStatus(inputs());
    expect(report.barriers.waiting).toEqual([]);
    expect(report.barriers.counters).toMatchObject({ released: 0, joinsSent: 0, releasesReceived: 0 });
  });
});
