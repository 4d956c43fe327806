// What the shell's NTP client (src/net/ntp-client.ts, src/ntp/selection.ts) tells the core about
// the upstream: one estimate after each new sample, or null while selection yields none. Pure data,
// so the simulator can feed modelled upstreams through the same path.
import { UPSTREAM_ROOT_DISTANCE_NS_MAX, UPSTREAM_STRATUM_MAX } from '../limits.ts';

export interface UpstreamEstimate {
  /** Monotonic ms when the newest sample behind it was taken: the health counts each once. */
  sampledMs: number;
  /**
   * Monotonic ms of the system peer's sample behind it: the master steers on each once (ntpd's
   * clock update on a new sample of the system peer), so that N servers polled together make one
   * correction a poll, not N at uneven intervals (see UpstreamReference.steer).
   */
  peerSampledMs: number;
  /**
   * Upstream time minus this node's clock, ns, as of now: the client shifts its kept samples by
   * every correction this clock takes, so it is current, not as of the sample.
   */
  offsetNs: number;
  /** |offsetNs - the true offset| is at most this (Marzullo's interval, root distances included). */
  errorBoundNs: number;
  /** The system peer's root distance to its reference clock, ns (NTP's root delay / 2 + dispersion). */
  rootDistanceNs: number;
  /** The system peer's stratum (we are one below it). */
  stratum: number;
  /** The system peer's leap indicator (0 none, 1 insert, 2 delete, 3 alarm). */
  leap: 0 | 1 | 2 | 3;
  /** The system peer, as configured (host:port), and how many servers agree with it (truechimers). */
  systemPeer: string;
  truechimers: number;
}

/** Why an estimate cannot be followed, or null when it can. */
export function unusableReason(estimate: UpstreamEstimate): string | null {
  if (!Number.isFinite(estimate.offsetNs) || !Number.isFinite(estimate.errorBoundNs)) return 'offset not finite';
  if (estimate.leap === 3) return 'leap indicator 3 (the server is not synchronized)';
  if (estimate.stratum < 1 || estimate.stratum > UPSTREAM_STRATUM_MAX) return `stratum ${estimate.stratum}`;
  if (!(estimate.rootDistanceNs <= UPSTREAM_ROOT_DISTANCE_NS_MAX)) return `root distance ${Math.round(estimate.rootDistanceNs / 1e6)} ms beyond ${UPSTREAM_ROOT_DISTANCE_NS_MAX / 1e6} ms`;
  return null;
}
