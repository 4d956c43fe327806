// Selection among upstream servers (issue 18), pure: which servers tell the truth, and the offset
// to follow. RFC 5905 section 11.2.1 (Marzullo's algorithm as NTP uses it), then a combination.
//
// Each usable server (client.ts's candidate(): reachable, synchronized, root distance below the
// maximum) stands for the interval [offset - rootDistance, offset + rootDistance]: its
// correctness interval, which contains the true offset if the server tells the truth. With n
// candidates, the intersection algorithm looks for the smallest number of falsetickers f
// (0, 1, ... while f < n / 2) for which some interval [low, high] lies in at least n - f of the
// candidates' intervals reach from below and from above. No such f below n / 2: no
// majority agrees, and nothing is selected (two servers that disagree by seconds end here: the
// agent says so instead of following either blindly).
//
// Truechimers are the candidates whose interval contains the midpoint of [low, high]; the others
// are falsetickers. Fewer truechimers than a majority (possible when intervals only chain
// together) also means no selection.
//
// Combining: the offset followed is the average of the truechimers' offsets weighted by
// 1 / rootDistance (RFC 5905's clock_combine). With a handful of servers (at most UPSTREAMS_MAX)
// NTP's clustering step, which prunes truechimers down to the least jittery three, buys little;
// an average of independent truechimers is less noisy than any one of them, and the weights let
// a close, low-delay server count most. Its error bound is from Marzullo: the true offset lies in
// [low, high] (it lies in every truechimer's interval, and a majority of those overlap only
// there), so |combined - true| <= max(combined - low, high - combined).
//
// The system peer, whose stratum and leap indicator the agent passes on, is the truechimer with
// the lowest stratum, then the least root distance (RFC 5905 orders survivors so).
import type { NtpLeapIndicator } from './packet.ts';
import type { CandidateExclusion, UpstreamCandidate } from './client.ts';

export type ServerVerdict = 'truechimer' | 'falseticker' | CandidateExclusion;

export interface ServerSelection {
  id: string;
  verdict: ServerVerdict;
  /** Why, in words (for status and logs). */
  reason: string;
  /** Offset and root distance, when it was a candidate. */
  offsetNs: number | null;
  rootDistanceNs: number | null;
}

export type SelectionResult =
  | {
    ok: true;
    /** Truechimers, in input order. */
    selected: string[];
    /** The truechimer whose stratum and leap the agent announces (lowest stratum, then root distance). */
    systemPeer: string;
    stratum: number;
    leap: NtpLeapIndicator;
    /** Upstream time minus our clock, ns: the 1/rootDistance-weighted average of the truechimers'. */
    offsetNs: number;
    /** |offsetNs - the true offset| is at most this (see the top of the file). */
    errorBoundNs: number;
    /** The intersection interval [low, high], ns. */
    lowNs: number;
    highNs: number;
    servers: ServerSelection[];
  }
  | {
    ok: false;
    /** `noCandidates`: no server is usable; `noMajority`: usable servers disagree, no majority agrees. */
    code: 'noCandidates' | 'noMajority';
    reason: string;
    servers: ServerSelection[];
  };

interface Endpoint {
  edgeNs: number;
  /** -1 lower end, +1 upper end (RFC 5905's types). */
  type: -1 | 1;
}

/**
 * Marzullo's intersection as ntpd 4.2.8 computes it (clock_select): the smallest interval
 * [low, high] that points of at least n - allowed intervals reach from both sides, for the
 * smallest allowed < n / 2; null when no majority agrees. RFC 5905's A.5.5.1 also counts
 * midpoints outside [low, high] against `allowed`; ntpd dropped that, since it refuses intervals
 * that all contain the truth (e.g. [-1, 1] and [-5, 1] around 0). Ties sort lower ends first, so
 * intervals that touch count as overlapping.
 */
export function intersection(intervals: readonly { offsetNs: number; rootDistanceNs: number }[]): { lowNs: number; highNs: number; allowed: number } | null {
  const n = intervals.length;
  if (n === 0) return null;
  const endpoints: Endpoint[] = [];
  for (const { offsetNs, rootDistanceNs } of intervals) {
    endpoints.push({ edgeNs: offsetNs - rootDistanceNs, type: -1 }, { edgeNs: offsetNs + rootDistanceNs, type: 1 });
  }
  endpoints.sort((a, b) => a.edgeNs - b.edgeNs || a.type - b.type);
  for (let allowed = 0; 2 * allowed < n; allowed += 1) {
    let chime = 0;
    let lowNs = Number.NaN;
    for (const endpoint of endpoints) {
      chime -= endpoint.type;
      if (chime >= n - allowed) {
        lowNs = endpoint.edgeNs;
        break;
      }
    }
    chime = 0;
    let highNs = Number.NaN;
    for (let index = endpoints.length - 1; index >= 0; index -= 1) {
      const endpoint = endpoints[index] as Endpoint;
      chime += endpoint.type;
      if (chime >= n - allowed) {
        highNs = endpoint.edgeNs;
        break;
      }
    }
    if (lowNs <= highNs) return { lowNs, highNs, allowed };
  }
  return null;
}

const ms = (ns: number) => `${(ns / 1e6).toFixed(3)} ms`;

/** Selects among the servers' candidates (client.ts candidate()); ids are reported back as given. */
export function selectUpstreams(candidates: readonly UpstreamCandidate[]): SelectionResult {
  const servers: ServerSelection[] = candidates.map((candidate) => candidate.usable
    ? { id: candidate.id, verdict: 'falseticker', reason: '', offsetNs: candidate.offsetNs, rootDistanceNs: candidate.rootDistanceNs }
    : { id: candidate.id, verdict: candidate.exclusion, reason: candidate.reason, offsetNs: null, rootDistanceNs: null });
  const usable = candidates.filter((candidate): candidate is Extract<UpstreamCandidate, { usable: true }> => candidate.usable);
  if (usable.length === 0) {
    return { ok: false, code: 'noCandidates', reason: candidates.length === 0 ? 'no upstream servers' : 'no upstream server is usable (unreachable, unsynchronized or rejected)', servers };
  }
  const found = intersection(usable);
  const noMajority = (why: string): SelectionResult => {
    for (const server of servers) if (server.verdict === 'falseticker') server.reason = `no majority of the ${usable.length} usable servers agrees: ${why}`;
    return { ok: false, code: 'noMajority', reason: `no majority of the ${usable.length} usable servers agrees (${why}); not following any`, servers };
  };
  const describe = () => usable.map((candidate) => `${candidate.id} ${ms(candidate.offsetNs)} +- ${ms(candidate.rootDistanceNs)}`).join(', ');
  if (found === null) return noMajority(describe());
  const midpointNs = (found.lowNs + found.highNs) / 2;
  const truechimers = usable.filter((candidate) => Math.abs(candidate.offsetNs - midpointNs) <= candidate.rootDistanceNs);
  if (2 * truechimers.length <= usable.length) return noMajority(describe());

  let weightSum = 0;
  let weighted = 0;
  for (const candidate of truechimers) {
    // A root distance of 0 is impossible from client.ts (the delay is at least the precision); guard anyway.
    const weight = 1 / Math.max(candidate.rootDistanceNs, 1);
    weightSum += weight;
    weighted += weight * candidate.offsetNs;
  }
  const offsetNs = weighted / weightSum;
  const systemPeer = [...truechimers].sort((a, b) => a.stratum - b.stratum || a.rootDistanceNs - b.rootDistanceNs)[0] as (typeof truechimers)[number];
  const truechimerIds = new Set(truechimers.map((candidate) => candidate.id));
  for (const server of servers) {
    if (server.offsetNs === null) continue;
    if (truechimerIds.has(server.id)) {
      server.verdict = 'truechimer';
      server.reason = `its interval contains the intersection's midpoint ${ms(midpointNs)}`;
    } else {
      server.reason = `its interval ${ms(server.offsetNs)} +- ${ms(server.rootDistanceNs as number)} misses the intersection's midpoint ${ms(midpointNs)} agreed by ${truechimers.length} of ${usable.length}`;
    }
  }
  return {
    ok: true,
    selected: truechimers.map((candidate) => candidate.id),
    systemPeer: systemPeer.id,
    stratum: systemPeer.stratum,
    leap: systemPeer.leap,
    offsetNs,
    errorBoundNs: Math.max(offsetNs - found.lowNs, found.highNs - offsetNs),
    lowNs: found.lowNs,
    highNs: found.highNs,
    servers,
  };
}
