// An upstream section for status, table and metrics tests: three servers, one a falseticker,
// a master following the other two (the node's report as it is at NOW_MS).
import type { UpstreamReport } from '../../src/core/upstream/reference.ts';
import type { UpstreamServerStatus } from '../../src/net/ntp-client.ts';
import type { UpstreamCandidate } from '../../src/ntp/client.ts';
import { selectUpstreams } from '../../src/ntp/selection.ts';
import { upstreamStatus, type StatusInputs, type StatusReport, type UpstreamStatusReport } from '../../src/daemon/status.ts';

export const UPSTREAM_NOW_MS = 100_000;

function server(id: string, address: string | null, offsetNs: number | null, stratum: number | null, change: Partial<UpstreamServerStatus> = {}): UpstreamServerStatus {
  const [host = '', port = '123'] = id.split(':');
  return {
    id, host, port: Number(port), address, state: 'polling', reachable: offsetNs !== null, reach: offsetNs !== null ? 0o377 : 0,
    stratum, leap: stratum === null ? null : 0, offsetNs, delayNs: offsetNs === null ? null : 101_400.6, jitterNs: offsetNs === null ? null : 3_000.2,
    rootDelayNs: 0, rootDispersionNs: 0, rootDistanceNs: offsetNs === null ? null : 60_000.4, lastSampleAgoMs: offsetNs === null ? null : 1_500.3,
    pollIntervalMs: 16_000, lastRejectReason: null, kissCode: null, resolveError: null, requests: 10, replies: 10, samples: 10, ...change,
  };
}

/** The NTP client's side: 198.18.0.10 and .11 agree, .12 is 2 s off; ntp.invalid does not resolve. */
export function upstreamClient(): NonNullable<StatusInputs['upstreams']> {
  const servers = [
    server('198.18.0.10:123', '198.18.0.10', 12_345.4, 1),
    server('198.18.0.11:123', '198.18.0.11', 20_000, 2),
    server('198.18.0.12:123', '198.18.0.12', 2e9, 1),
    server('ntp.invalid:123', null, null, null, { state: 'resolving', resolveError: 'ENOTFOUND: getaddrinfo ENOTFOUND ntp.invalid' }),
  ];
  const candidates: UpstreamCandidate[] = servers.map((each) => each.offsetNs === null
    ? { id: each.id, usable: false, exclusion: 'unreachable', reason: 'the name does not resolve (ENOTFOUND)' }
    : { id: each.id, usable: true, offsetNs: each.offsetNs, rootDistanceNs: each.rootDistanceNs as number, stratum: each.stratum as number, leap: 0 });
  return { servers, selection: selectUpstreams(candidates), pollIntervalMs: 16_000, refusals: 1 };
}

/** The node's side: a master following its healthy upstream. */
export function upstreamCore(change: Partial<UpstreamReport> = {}): UpstreamReport {
  return {
    healthy: true, clockClass: 1, changedMs: UPSTREAM_NOW_MS - 40_000, usableInRow: 9, lastUsableMs: UPSTREAM_NOW_MS - 1_500,
    lastUnusable: null, recentLosses: 1, holdDownUntilMs: null, acquired: 2, lost: 1,
    mode: 'following',
    estimate: { sampledMs: UPSTREAM_NOW_MS - 1_500, peerSampledMs: UPSTREAM_NOW_MS - 1_500, offsetNs: 14_999.7, errorBoundNs: 52_000.2, rootDistanceNs: 60_000.4, stratum: 1, leap: 0, systemPeer: '198.18.0.10:123', truechimers: 2, atMs: UPSTREAM_NOW_MS - 1_500 },
    corrections: 7, lastFollowedMs: UPSTREAM_NOW_MS - 1_500,
    refused: { offsetNs: 3e9, limitNs: 600e9, atMs: UPSTREAM_NOW_MS - 90_000 },
    ...change,
  };
}

export function upstreamSection(core: UpstreamReport = upstreamCore()): UpstreamStatusReport {
  return upstreamStatus(core, upstreamClient(), UPSTREAM_NOW_MS);
}

/** `base` (a status report) as an agent following its upstream as master. */
export function followingStatus(base: StatusReport, core: UpstreamReport = upstreamCore()): StatusReport {
  const copy = structuredClone(base);
  copy.clockClass = 1;
  copy.clock.reference = core.mode === 'following' ? 'upstream' : 'cluster';
  copy.upstream = upstreamSection(core);
  return copy;
}
