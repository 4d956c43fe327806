// What the NTP server answers a client request: pure, from the request, the arrival stamp, a
// snapshot of this agent's clock state and a callback that reads the transmit stamp.
//
// Unsynchronized: leap indicator 3 (alarm), stratum 0 on the wire, refid 0, reference time 0 and
// root delay and dispersion of 1 s, as chrony answers when it has no reference (reference.c,
// REF_GetReferenceParams; ntp_core.c sends stratum 16 and above as 0, "unspecified or invalid").
// Clients do not select such a server.
//
// Synchronized: the cluster's own time, announced the way ntpd's orphan mode announces time that
// has no upstream. The master sits at a local stratum (default 10, NTP_LOCAL_STRATUM_DEFAULT) and
// every member one below it (local + 1), as orphan children sit below the orphan parent. Refids:
// - a member names its upstream the way RFC 5905 says a stratum-2+ server does: the master's IPv4
//   address. A client that is itself that master then sees a loop and will not follow the member.
// - the master has no upstream. ntpd's orphan parent says 127.0.0.1, but chrony refuses a server
//   whose refid is the client's own address (its loop test), and the recipe "chrony follows the
//   local agent" reaches the agent at 127.0.0.1: the master would be refused by its own box's
//   chrony. So the master says "BRKL" (berkeley-agent) in ASCII, which no client has as its
//   address in practice (read as IPv4 it is 66.82.75.76, a public address, never a LAN box).
// Following an upstream (issue 18): while the cluster's time comes from an upstream NTP server,
// the agent is part of the NTP hierarchy below it, as ntpd and chrony would be: the master one
// stratum below the upstream it follows (its stratum + 1), with that server's IPv4 address as
// refid (RFC 5905's convention for a server followed, which also lets the upstream's own clients
// see the loop); a member one further (+ 2), its refid still its master's address; and both pass
// on the upstream's leap indicator, so a leap second announced upstream reaches every client.
// Root delay is the round trip of the measurement the last correction rests on and root
// dispersion the rest of the error bound, so that a client's root distance
// (delay / 2 + dispersion, RFC 5905) is our error bound.
import { NTP_LOCAL_STRATUM_DEFAULT, NTP_PRECISION_LOG2_DEFAULT, NTP_STRATUM_MAX } from '../core/limits.ts';
import {
  asciiRefid, ipv4Refid, NTP_HEADER_BYTES, NtpLeap, NtpMode, nsToNtpShort, unixNsToNtp, writeHeader,
  type NtpLeapIndicator, type NtpRequest,
} from './packet.ts';

/** The master's refid: ASCII "BRKL" (see above for why not 127.0.0.1). */
export const REFID_CLUSTER_MASTER = asciiRefid('BRKL');
/** Stratum 16 and up mean unsynchronized; on the wire they are sent as 0. */
const STRATUM_UNSYNCHRONIZED_WIRE = 0;
/** chrony's root delay and dispersion while unsynchronized: 1 s each. */
const UNSYNCHRONIZED_ROOT_NS = 1e9;

/** What the NTP server needs to know of this agent's clock, read once per request. */
export interface ClockSnapshot {
  /** The clock counts as synchronized to the cluster (status clock.synchronized). */
  synchronized: boolean;
  /**
   * A leap warning to pass on while synchronized (0 none, 1 insert, 2 delete); 3 forces the alarm
   * even when synchronized (e.g. a member in holdover that wants no clients). Default 0.
   */
  leap?: NtpLeapIndicator;
  /** Stratum to announce while synchronized (see clusterIdentity). */
  stratum: number;
  /** Refid to announce while synchronized (see clusterIdentity). */
  refid: number;
  /** Bound on |this clock - the master's| now, ns (error-bound.ts); null = not synchronized. */
  errorBoundNs: number | null;
  /** Round trip of the measurement the last correction rests on, ns (0 on the master). */
  rootDelayNs: number;
  /** When this clock was last corrected (or the master last confirmed its own time), this clock's Unix ns; null if never. */
  referenceTimeNs: bigint | null;
  /** Precision of reading this clock, log2 s (NTP_PRECISION_LOG2_DEFAULT). */
  precisionLog2: number;
}

/** What the cluster follows while it follows an upstream (the node's timeSource().upstream). */
export interface FollowedUpstream {
  stratum: number;
  leap: number;
  /** The master's system peer's IPv4 address (its refid); null when unknown. */
  peerAddress?: string | null;
}

/** Stratum and refid that say what the cluster's time is (see the comment at the top). */
export function clusterIdentity(role: 'master' | 'member', masterAddress: string | null, localStratum = NTP_LOCAL_STRATUM_DEFAULT, upstream: FollowedUpstream | null = null): { stratum: number; refid: number } {
  if (upstream !== null) {
    const stratum = Math.min(upstream.stratum + (role === 'master' ? 1 : 2), NTP_STRATUM_MAX);
    const address = role === 'master' ? (upstream.peerAddress ?? null) : masterAddress;
    return { stratum, refid: (address === null ? null : ipv4Refid(address)) ?? REFID_CLUSTER_MASTER };
  }
  if (role === 'master') return { stratum: Math.min(localStratum, NTP_STRATUM_MAX), refid: REFID_CLUSTER_MASTER };
  const refid = masterAddress === null ? null : ipv4Refid(masterAddress);
  return { stratum: Math.min(localStratum + 1, NTP_STRATUM_MAX), refid: refid ?? REFID_CLUSTER_MASTER };
}

/** Whether a reply from this snapshot tells clients to follow us. */
export function servesSynchronized(clock: ClockSnapshot): boolean {
  return clock.synchronized && clock.errorBoundNs !== null && clock.leap !== NtpLeap.alarm
    && clock.stratum >= 1 && clock.stratum <= NTP_STRATUM_MAX;
}

/**
 * The 48-byte server reply to `request` (mode 4, the request's version and poll, its transmit
 * stamp as origin), whatever the request's length: extension fields and MACs are not echoed, so a
 * reply is never larger than its request (a request shorter than 48 bytes never gets here).
 * `rxNs`: when the request arrived, on the clock served. `transmitNs` is called last, right before
 * the bytes are final, and should read the same clock.
 */
export function buildServerReply(request: NtpRequest, rxNs: bigint, clock: ClockSnapshot, transmitNs: () => bigint): Uint8Array {
  const synchronized = servesSynchronized(clock);
  const rootDelayNs = synchronized ? Math.max(0, clock.rootDelayNs) : UNSYNCHRONIZED_ROOT_NS;
  // Client's root distance = delay / 2 + dispersion = our error bound (never below the precision).
  const precisionNs = 2 ** clock.precisionLog2 * 1e9;
  const rootDispersionNs = synchronized ? Math.max((clock.errorBoundNs as number) - rootDelayNs / 2, precisionNs) : UNSYNCHRONIZED_ROOT_NS;
  const bytes = writeHeader({
    leap: synchronized ? (clock.leap ?? NtpLeap.none) : NtpLeap.alarm,
    version: request.header.version,
    mode: NtpMode.server,
    stratum: synchronized ? clock.stratum : STRATUM_UNSYNCHRONIZED_WIRE,
    poll: request.header.poll,
    precision: clock.precisionLog2,
    rootDelay: nsToNtpShort(rootDelayNs),
    rootDispersion: nsToNtpShort(rootDispersionNs),
    refid: synchronized ? clock.refid : 0,
    referenceTs: synchronized && clock.referenceTimeNs !== null ? unixNsToNtp(clock.referenceTimeNs) : 0n,
    // Copied bit for bit: the client matches it against what it sent.
    originTs: request.header.transmitTs,
    receiveTs: unixNsToNtp(rxNs),
    transmitTs: 0n,
  });
  new DataView(bytes.buffer).setBigUint64(NTP_HEADER_BYTES - 8, unixNsToNtp(transmitNs()));
  return bytes;
}

/** What the agent knows, in its own terms; ntpClockSnapshot turns it into what the server announces. */
export interface AgentTimeState {
  /** status clock.synchronized. */
  synchronized: boolean;
  /** status role: an electing node keeps serving as the member it was (its bound keeps growing). */
  role: 'master' | 'slave' | 'electing';
  /** The master's (or last master's) IPv4 address, for a member's refid; null if unknown. */
  masterAddress: string | null;
  /** ErrorBoundTracker.boundNs(now): null while unsynchronized. */
  errorBoundNs: number | null;
  /** ErrorBoundTracker.measurementDelayNs: the last measurement's round trip (0 on the master). */
  measurementDelayNs: number;
  /** This clock's Unix ns at the last correction (master: the last round); null if never. */
  lastCorrectionNs: bigint | null;
  /** The upstream the cluster follows through this agent, or null/absent: the cluster's own time. */
  upstream?: FollowedUpstream | null;
  /** Defaults: NTP_LOCAL_STRATUM_DEFAULT and NTP_PRECISION_LOG2_DEFAULT. */
  localStratum?: number;
  precisionLog2?: number;
}

export function ntpClockSnapshot(state: AgentTimeState): ClockSnapshot {
  const upstream = state.upstream ?? null;
  const identity = clusterIdentity(state.role === 'master' ? 'master' : 'member', state.masterAddress, state.localStratum, upstream);
  return {
    synchronized: state.synchronized,
    // The upstream's leap warning (insert or delete); its alarm (3) is never followed, so never passed on.
    ...(upstream !== null && (upstream.leap === 1 || upstream.leap === 2) ? { leap: upstream.leap } : {}),
    stratum: identity.stratum,
    refid: identity.refid,
    errorBoundNs: state.errorBoundNs,
    rootDelayNs: state.role === 'master' ? 0 : state.measurementDelayNs,
    referenceTimeNs: state.lastCorrectionNs,
    precisionLog2: state.precisionLog2 ?? NTP_PRECISION_LOG2_DEFAULT,
  };
}
