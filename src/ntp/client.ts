// The NTP client of one upstream server (issue 18): RFC 5905 client mode, pure. The shell
// (src/net/ntp-client.ts) asks when the next request is due, sends what request() builds, and
// hands every datagram from the server to receive() with its arrival stamp; report() and
// candidate() say what is known of the server, for status and for selection (selection.ts).
//
// - Requests: mode 3, version 4, our clock's reading as the transmit timestamp (read last, right
//   before the bytes are final). Only the newest request is outstanding: a reply must carry its
//   transmit timestamp as origin (RFC 5905's bogus test, which also defeats off-path spoofing);
//   a second reply to the same request is a duplicate. Both are dropped and counted.
// - Bursts: while nothing has been heard for the reach register's 8 requests (at start, and after
//   the server was lost) each poll sends a burst of requests 2 s apart, like ntpd's iburst, so the
//   filter has samples in seconds rather than poll intervals.
// - Kiss-o'-death (stratum 0 with an ASCII kiss code; believed only when it answers our request):
//   RATE doubles the poll interval (and again at each RATE, RFC 5905 section 7.4); DENY and RSTR
//   stop this server for good. Other stratum-0 replies are "unsynchronized".
// - Reach: an 8-bit register shifted left at every request, bit 0 set by a reply that passed the
//   header checks (RFC 5905 A.5.1.1): synchronized (LI != 3, stratum 1..15), reference time not
//   after its transmit time, no zero timestamp, root distance below the maximum.
// - Filter: the last N samples (UPSTREAM_FILTER_SAMPLES); the newest whose delay is not far above
//   their minimum stands for the server (the members' delay filter, core/sync/delay-filter.ts: a
//   sample's offset error is up to half its delay, and queueing only ever adds delay; see best()),
//   unless more than POOR_SAMPLE_STREAK_MAX of the newest in a row are poor: then the newest
//   stands (never starved, as the members' filter never starves a member).
//   Its dispersion grows at the frequency tolerance (15 ppm) with its age.
// - Root distance, the bound on |our clock's offset to the server's reference - the estimate|:
//   (root delay + delay) / 2 + root dispersion + dispersion (the sample's, grown with age) +
//   jitter (RMS of the other samples' offsets about the chosen one). RFC 5905 also counts the
//   empty stages of the filter at 16 s each, which keeps a fresh server out for several polls;
//   we count only samples we have (as chrony does), so one burst is enough.
//
// Offsets are "server minus our clock": positive when the server is ahead (our clock must move
// forward to agree), the sign of sampleFromTimestamps and of chrony's "System clock wrong by".
import { isPoorSample } from '../core/sync/delay-filter.ts';
import { ERROR_BOUND_FREQUENCY_TOLERANCE_PPM, POOR_SAMPLE_STREAK_MAX, UPSTREAM_BURST_INTERVAL_MS, UPSTREAM_BURST_REQUESTS, UPSTREAM_BURST_REQUESTS_MAX,
  UPSTREAM_FILTER_SAMPLES, UPSTREAM_LOCAL_PRECISION_NS, UPSTREAM_POLL_INTERVAL_MS_DEFAULT, UPSTREAM_POLL_INTERVAL_MS_MAX,
  UPSTREAM_POLL_INTERVAL_MS_MIN, UPSTREAM_RATE_BACKOFF_MS_MAX, UPSTREAM_ROOT_DISTANCE_NS_MAX, UPSTREAM_STRATUM_MAX } from '../core/limits.ts';
import { sampleFromTimestamps } from '../core/sync/berkeley.ts';
import { NTP_HEADER_BYTES, NtpLeap, NtpMode, ntpShortToNs, ntpToUnixNs, readHeader, unixNsToNtp, writeHeader, type NtpLeapIndicator } from './packet.ts';

export interface UpstreamClientOptions {
  /** Steady interval between requests, ms (UPSTREAM_POLL_INTERVAL_MS_MIN..MAX). */
  pollIntervalMs: number;
  /** Requests in a burst (1..8); 1 turns bursts off. */
  burstRequests: number;
  /** Interval within a burst, ms (never longer than pollIntervalMs). */
  burstIntervalMs: number;
  /** Samples the filter keeps (1..8). */
  filterSamples: number;
  /** A server beyond this root distance is not a candidate. */
  rootDistanceNsMax: number;
  /** Largest stratum followed (1..15). */
  stratumMax: number;
  /** Growth of a sample's dispersion with its age, ppm (NTP's PHI). */
  frequencyTolerancePpm: number;
  /** Precision of our clock readings, ns. */
  localPrecisionNs: number;
}

export const UPSTREAM_CLIENT_DEFAULTS: UpstreamClientOptions = {
  pollIntervalMs: UPSTREAM_POLL_INTERVAL_MS_DEFAULT,
  burstRequests: UPSTREAM_BURST_REQUESTS,
  burstIntervalMs: UPSTREAM_BURST_INTERVAL_MS,
  filterSamples: UPSTREAM_FILTER_SAMPLES,
  rootDistanceNsMax: UPSTREAM_ROOT_DISTANCE_NS_MAX,
  stratumMax: UPSTREAM_STRATUM_MAX,
  frequencyTolerancePpm: ERROR_BOUND_FREQUENCY_TOLERANCE_PPM,
  localPrecisionNs: UPSTREAM_LOCAL_PRECISION_NS,
};

/** Why a datagram from the server gave no sample (a stable code, for counters and status). */
export type ReplyRejectReason =
  /** Shorter than the 48-byte header. */
  | 'short'
  /** Not NTPv3/v4. */
  | 'version'
  /** Not a server reply (mode 4). */
  | 'mode'
  /** Origin timestamp is not our outstanding request's transmit timestamp (stale, spoofed, or none outstanding). */
  | 'bogus'
  /** Origin timestamp of a request already answered. */
  | 'duplicate'
  /** Kiss-o'-death RATE: the poll interval was doubled. */
  | 'kissRate'
  /** Kiss-o'-death DENY or RSTR: this server is not asked again. */
  | 'kissDeny'
  /** Leap indicator 3, stratum 0 (without a kiss code we act on) or 16 and up. */
  | 'unsynchronized'
  /** Stratum above stratumMax. */
  | 'stratum'
  /** Receive or transmit timestamp zero (the server did not fill them in). */
  | 'zeroTimestamp'
  /** Reference time after transmit time: the header is not sane. */
  | 'badHeader'
  /** The server's own root distance (root delay / 2 + root dispersion) is beyond the maximum. */
  | 'rootDistance';

export const REPLY_REJECT_REASONS: readonly ReplyRejectReason[] = [
  'short', 'version', 'mode', 'bogus', 'duplicate', 'kissRate', 'kissDeny', 'unsynchronized', 'stratum', 'zeroTimestamp', 'badHeader', 'rootDistance',
];

/** One measurement of the server. */
export interface UpstreamSample {
  /** Server minus our clock, ns (positive: the server is ahead). */
  offsetNs: number;
  /** Round trip without the server's processing time, ns (at least our precision). */
  delayNs: number;
  /** Precision of both ends plus frequency tolerance over the round trip, ns (at the sample's time). */
  dispersionNs: number;
  /** Monotonic ms when it was taken. */
  atMs: number;
}

export type ReplyOutcome = { ok: true; sample: UpstreamSample } | { ok: false; reason: ReplyRejectReason };

/** What the server said of itself in its last reply to one of our requests. */
export interface ServerHeader {
  leap: NtpLeapIndicator;
  stratum: number;
  refid: number;
  rootDelayNs: number;
  rootDispersionNs: number;
  /** Monotonic ms of that reply. */
  atMs: number;
}

/**
 * `burst`: sending a burst; `polling`: one request per poll interval; `backoff`: polling at an
 * interval a RATE kiss made longer; `denied`: a DENY/RSTR kiss stopped this server.
 */
export type UpstreamState = 'burst' | 'polling' | 'backoff' | 'denied';

/** Not a candidate for selection, and why (selection.ts reports it per server). */
export type CandidateExclusion = 'unreachable' | 'unsynchronized' | 'rejected';

export type UpstreamCandidate =
  | { id: string; usable: true; offsetNs: number; rootDistanceNs: number; stratum: number; leap: NtpLeapIndicator }
  | { id: string; usable: false; exclusion: CandidateExclusion; reason: string };

export interface UpstreamCounters {
  requests: number;
  replies: number;
  samples: number;
  rejected: Record<ReplyRejectReason, number>;
}

export interface UpstreamReport {
  state: UpstreamState;
  /** The reach register (8 bits, newest request in bit 0). */
  reach: number;
  /** A reply was accepted for at least one of the last 8 requests. */
  reachable: boolean;
  /** Current poll interval, ms (longer than configured after RATE kisses). */
  pollIntervalMs: number;
  /** From the last reply that answered our request; null before one. */
  server: ServerHeader | null;
  /** The filter's choice (filterChoice: the newest sample whose delay is not poor); null before a sample. */
  offsetNs: number | null;
  delayNs: number | null;
  /**
   * When the filter's choice was taken (monotonic ms, its own stamp; null before a sample): an
   * estimate resting on it is new only when this is.
   */
  chosenSampleAtMs: number | null;
  /** Its dispersion now (grown with age), ns. */
  dispersionNs: number | null;
  /** RMS of the other kept samples' offsets about the chosen one, ns. */
  jitterNs: number | null;
  /** See the top of the file; null before a sample. */
  rootDistanceNs: number | null;
  /** Age of the newest sample, ms. */
  lastSampleAgoMs: number | null;
  /** Samples in the filter. */
  filterSamples: number;
  /** The last reply's reject reason (null once a reply is accepted). */
  lastRejectReason: ReplyRejectReason | null;
  /** Kiss code of the last kiss-o'-death, e.g. "RATE". */
  kissCode: string | null;
  counters: UpstreamCounters;
}

/** Checks options once, where they are made (a bad value is a programming error; the CLI checks user input first). */
export function upstreamClientOptions(partial: Partial<UpstreamClientOptions> = {}): UpstreamClientOptions {
  const options = { ...UPSTREAM_CLIENT_DEFAULTS, ...partial };
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`upstream client: ${what}`);
  };
  check(Number.isFinite(options.pollIntervalMs) && options.pollIntervalMs >= UPSTREAM_POLL_INTERVAL_MS_MIN && options.pollIntervalMs <= UPSTREAM_POLL_INTERVAL_MS_MAX,
    `pollIntervalMs must be ${UPSTREAM_POLL_INTERVAL_MS_MIN}..${UPSTREAM_POLL_INTERVAL_MS_MAX}, got ${options.pollIntervalMs}`);
  check(Number.isInteger(options.burstRequests) && options.burstRequests >= 1 && options.burstRequests <= UPSTREAM_BURST_REQUESTS_MAX,
    `burstRequests must be 1..${UPSTREAM_BURST_REQUESTS_MAX}, got ${options.burstRequests}`);
  check(Number.isFinite(options.burstIntervalMs) && options.burstIntervalMs > 0, `burstIntervalMs must be > 0, got ${options.burstIntervalMs}`);
  check(Number.isInteger(options.filterSamples) && options.filterSamples >= 1 && options.filterSamples <= UPSTREAM_FILTER_SAMPLES,
    `filterSamples must be 1..${UPSTREAM_FILTER_SAMPLES}, got ${options.filterSamples}`);
  check(options.rootDistanceNsMax > 0, `rootDistanceNsMax must be > 0, got ${options.rootDistanceNsMax}`);
  check(Number.isInteger(options.stratumMax) && options.stratumMax >= 1 && options.stratumMax <= UPSTREAM_STRATUM_MAX,
    `stratumMax must be 1..${UPSTREAM_STRATUM_MAX}, got ${options.stratumMax}`);
  check(options.frequencyTolerancePpm >= 0 && options.localPrecisionNs >= 0, 'tolerance and precision must be >= 0');
  return options;
}

/** The kiss code of a stratum-0 reply: four ASCII capitals (RFC 5905 figure 13), else null. */
export function kissCode(refid: number): string | null {
  const text = String.fromCharCode((refid >>> 24) & 0xff, (refid >>> 16) & 0xff, (refid >>> 8) & 0xff, refid & 0xff);
  return /^[A-Z]{4}$/.test(text) ? text : null;
}

/** log2 of an interval in seconds, for the request's poll field. */
function pollLog2(intervalMs: number): number {
  return Math.max(-6, Math.min(17, Math.round(Math.log2(intervalMs / 1000))));
}

interface Outstanding {
  /** The transmit timestamp as sent (wire value): the reply's origin must equal it. */
  originTs: bigint;
  /** The same reading in ns (exact: unixNsToNtp/ntpToUnixNs round-trip). */
  t1Ns: bigint;
  /**
   * What turns t1 into a reading of the *settled* clock (where it stands once its moves are done,
   * the scale the samples are kept on): the slew still to come when it was read, plus every move
   * decided since (clockAdjusted). A reply that straddles a correction is measured on one scale.
   */
  settledShiftNs: number;
}

export class UpstreamClient {
  readonly options: UpstreamClientOptions;
  private reach = 0;
  private state: UpstreamState = 'polling';
  private pollIntervalMs: number;
  /** -Infinity: due at once (the first request). */
  private nextAtMs = Number.NEGATIVE_INFINITY;
  private burstLeft = 0;
  private outstanding: Outstanding | null = null;
  private lastAnsweredOriginTs: bigint | null = null;
  private server: ServerHeader | null = null;
  /** The server's header as of the last accepted reply: what the samples rest on. */
  private accepted: ServerHeader | null = null;
  /** Oldest first; at most options.filterSamples. */
  private readonly samples: UpstreamSample[] = [];
  private lastRejectReason: ReplyRejectReason | null = null;
  private lastKissCode: string | null = null;
  private readonly counters: UpstreamCounters = {
    requests: 0, replies: 0, samples: 0,
    rejected: Object.fromEntries(REPLY_REJECT_REASONS.map((reason) => [reason, 0])) as Record<ReplyRejectReason, number>,
  };

  constructor(options: Partial<UpstreamClientOptions> = {}) {
    this.options = upstreamClientOptions(options);
    this.pollIntervalMs = this.options.pollIntervalMs;
  }

  /** Monotonic ms when the next request is due (-Infinity: now), or null once a DENY/RSTR kiss stopped this server. */
  nextRequestAtMs(): number | null {
    return this.state === 'denied' ? null : this.nextAtMs;
  }

  /**
   * The next request, to be sent at once; null when stopped. Call when due. `readTransmitNs`
   * reads our clock (Unix ns) and is called last, right before the bytes are final;
   * `slewRemainingNs`: what our clock still had to slew then.
   */
  request(nowMs: number, readTransmitNs: () => bigint, slewRemainingNs = 0): Uint8Array | null {
    if (this.state === 'denied') return null;
    const burstIntervalMs = Math.min(this.options.burstIntervalMs, this.pollIntervalMs);
    if (this.burstLeft > 0) {
      this.burstLeft -= 1;
    } else if (this.reach === 0 && this.state !== 'backoff' && this.options.burstRequests > 1) {
      // Nothing heard for 8 requests (or never): a burst, this request its first.
      this.burstLeft = this.options.burstRequests - 1;
    }
    if (this.state !== 'backoff') this.state = this.burstLeft > 0 ? 'burst' : 'polling';
    this.nextAtMs = nowMs + (this.burstLeft > 0 ? burstIntervalMs : this.pollIntervalMs);
    this.reach = (this.reach << 1) & 0xff;
    this.counters.requests += 1;
    const header = {
      leap: NtpLeap.none as NtpLeapIndicator, version: 4, mode: NtpMode.client, stratum: 0,
      poll: pollLog2(this.pollIntervalMs), precision: Math.round(Math.log2(this.options.localPrecisionNs / 1e9)),
      rootDelay: 0, rootDispersion: 0, refid: 0, referenceTs: 0n, originTs: 0n, receiveTs: 0n, transmitTs: 0n,
    };
    const t1Ns = readTransmitNs();
    const originTs = unixNsToNtp(t1Ns);
    this.outstanding = { originTs, t1Ns, settledShiftNs: slewRemainingNs };
    return writeHeader({ ...header, transmitTs: originTs });
  }

  /**
   * A datagram from the server. `rxNs`: our clock (Unix ns) when it arrived, the kernel's stamp
   * where there is one; `nowMs`: monotonic ms; `slewRemainingNs`: what our clock still had to slew.
   */
  receive(bytes: Uint8Array, rxNs: bigint, nowMs: number, slewRemainingNs = 0): ReplyOutcome {
    this.counters.replies += 1;
    const outcome = this.judge(bytes, rxNs, nowMs, slewRemainingNs);
    if (outcome.ok) {
      this.counters.samples += 1;
      this.lastRejectReason = null;
    } else {
      this.counters.rejected[outcome.reason] += 1;
      // A stray datagram says nothing about the server: keep the last real verdict.
      if (outcome.reason !== 'bogus' && outcome.reason !== 'duplicate') this.lastRejectReason = outcome.reason;
    }
    return outcome;
  }

  private judge(bytes: Uint8Array, rxNs: bigint, nowMs: number, slewRemainingNs: number): ReplyOutcome {
    if (bytes.byteLength < NTP_HEADER_BYTES) return { ok: false, reason: 'short' };
    const header = readHeader(bytes);
    if (header.version !== 3 && header.version !== 4) return { ok: false, reason: 'version' };
    if (header.mode !== NtpMode.server) return { ok: false, reason: 'mode' };
    const sent = this.outstanding;
    if (sent === null || header.originTs !== sent.originTs) {
      return { ok: false, reason: header.originTs === this.lastAnsweredOriginTs ? 'duplicate' : 'bogus' };
    }
    // It answers our request: believe what it says of itself, and take no other answer to it.
    this.outstanding = null;
    this.lastAnsweredOriginTs = sent.originTs;
    const rootDelayNs = ntpShortToNs(header.rootDelay);
    const rootDispersionNs = ntpShortToNs(header.rootDispersion);
    this.server = { leap: header.leap, stratum: header.stratum, refid: header.refid, rootDelayNs, rootDispersionNs, atMs: nowMs };

    if (header.stratum === 0) {
      const kiss = kissCode(header.refid);
      if (kiss !== null) this.lastKissCode = kiss;
      if (kiss === 'DENY' || kiss === 'RSTR') {
        this.state = 'denied';
        this.burstLeft = 0;
        return { ok: false, reason: 'kissDeny' };
      }
      if (kiss === 'RATE') {
        this.pollIntervalMs = Math.min(this.pollIntervalMs * 2, UPSTREAM_RATE_BACKOFF_MS_MAX);
        this.state = 'backoff';
        this.burstLeft = 0;
        this.nextAtMs = nowMs + this.pollIntervalMs;
        return { ok: false, reason: 'kissRate' };
      }
      return { ok: false, reason: 'unsynchronized' };
    }
    if (header.leap === NtpLeap.alarm || header.stratum > UPSTREAM_STRATUM_MAX) return { ok: false, reason: 'unsynchronized' };
    if (header.stratum > this.options.stratumMax) return { ok: false, reason: 'stratum' };
    if (header.transmitTs === 0n || header.receiveTs === 0n) return { ok: false, reason: 'zeroTimestamp' };
    if (header.referenceTs > header.transmitTs) return { ok: false, reason: 'badHeader' };
    if (rootDelayNs / 2 + rootDispersionNs >= this.options.rootDistanceNsMax) return { ok: false, reason: 'rootDistance' };

    const t2Ns = ntpToUnixNs(header.receiveTs, rxNs);
    const t3Ns = ntpToUnixNs(header.transmitTs, rxNs);
    // Both of our stamps on the settled clock (where it stands once its moves are done: the
    // slew still running counted in, clockAdjusted having been told all of it when it began), so
    // that every kept sample says the same of it, and a reply that straddles a correction (the
    // master steered on another server's reply meanwhile) is as good as any.
    const t1SettledNs = sent.t1Ns + BigInt(Math.round(sent.settledShiftNs));
    const t4SettledNs = rxNs + BigInt(Math.round(slewRemainingNs));
    const measured = sampleFromTimestamps(t1SettledNs, t2Ns, t3Ns, t4SettledNs);
    const serverPrecisionNs = 2 ** header.precision * 1e9;
    const sample: UpstreamSample = {
      offsetNs: measured.offsetNs,
      // RFC 5905: never below the precision (a negative delay is the two clocks' rounding).
      delayNs: Math.max(measured.delayNs, this.options.localPrecisionNs),
      dispersionNs: serverPrecisionNs + this.options.localPrecisionNs + this.growthNs(Number(rxNs - sent.t1Ns) / 1e6),
      atMs: nowMs,
    };
    this.reach |= 1;
    this.accepted = this.server;
    this.samples.push(sample);
    if (this.samples.length > this.options.filterSamples) this.samples.shift();
    return { ok: true, sample };
  }

  /**
   * Our clock was moved by `deltaNs` (positive: forward), by a step or by a slew's amount: every
   * kept sample's offset (server minus us) shifts by -deltaNs, and the outstanding request's
   * transmit stamp is carried onto the moved clock's scale (its reply then measures the clock as
   * moved). Without this the filter would keep pointing at the offset already corrected.
   */
  clockAdjusted(deltaNs: number): void {
    for (const sample of this.samples) sample.offsetNs -= deltaNs;
    if (this.outstanding !== null) this.outstanding.settledShiftNs += deltaNs;
  }

  /** Dispersion growth over `ms` at the frequency tolerance, ns. */
  private growthNs(ms: number): number {
    return Math.max(0, ms) * 1e6 * this.options.frequencyTolerancePpm * 1e-6;
  }

  /** The filter's choice (filterChoice). */
  private best(): UpstreamSample | null {
    return filterChoice(this.samples);
  }

  report(nowMs: number): UpstreamReport {
    const best = this.best();
    let dispersionNs: number | null = null;
    let jitterNs: number | null = null;
    let rootDistanceNs: number | null = null;
    if (best !== null) {
      dispersionNs = best.dispersionNs + this.growthNs(nowMs - best.atMs);
      const others = this.samples.filter((sample) => sample !== best);
      jitterNs = others.length === 0 ? 0 : Math.sqrt(others.reduce((sum, sample) => sum + (sample.offsetNs - best.offsetNs) ** 2, 0) / others.length);
      const server = this.accepted as ServerHeader;
      rootDistanceNs = (server.rootDelayNs + best.delayNs) / 2 + server.rootDispersionNs + dispersionNs + jitterNs;
    }
    const newest = this.samples.at(-1);
    return {
      state: this.state,
      reach: this.reach,
      reachable: this.reach !== 0,
      pollIntervalMs: this.pollIntervalMs,
      server: this.server === null ? null : { ...this.server },
      offsetNs: best?.offsetNs ?? null,
      delayNs: best?.delayNs ?? null,
      dispersionNs,
      jitterNs,
      rootDistanceNs,
      lastSampleAgoMs: newest === undefined ? null : nowMs - newest.atMs,
      chosenSampleAtMs: best?.atMs ?? null,
      filterSamples: this.samples.length,
      lastRejectReason: this.lastRejectReason,
      kissCode: this.lastKissCode,
      counters: { ...this.counters, rejected: { ...this.counters.rejected } },
    };
  }

  /** This server as a candidate for selection (selection.ts), or why it is none. */
  candidate(id: string, nowMs: number): UpstreamCandidate {
    const report = this.report(nowMs);
    const excluded = (exclusion: CandidateExclusion, reason: string): UpstreamCandidate => ({ id, usable: false, exclusion, reason });
    if (report.state === 'denied') return excluded('rejected', `kiss-o'-death ${report.kissCode ?? 'DENY'}: the server refuses us; not asked again`);
    const accepted = this.accepted;
    if (!report.reachable || report.offsetNs === null || report.rootDistanceNs === null || report.server === null || accepted === null) {
      const why = report.lastRejectReason === null ? '' : ` (last reply: ${report.lastRejectReason})`;
      return excluded('unreachable', `no usable reply to the last 8 requests${why}`);
    }
    // Reachable, but the newest answer says the server lost its own reference.
    if (report.lastRejectReason === 'unsynchronized') {
      return excluded('unsynchronized', `the server says it is not synchronized (leap ${report.server.leap}, stratum ${report.server.stratum})`);
    }
    if (report.rootDistanceNs > this.options.rootDistanceNsMax) {
      return excluded('rejected', `root distance ${(report.rootDistanceNs / 1e6).toFixed(3)} ms is beyond ${(this.options.rootDistanceNsMax / 1e6).toFixed(0)} ms`);
    }
    return { id, usable: true, offsetNs: report.offsetNs, rootDistanceNs: report.rootDistanceNs, stratum: accepted.stratum, leap: accepted.leap };
  }
}

/**
 * The filter's choice among a server's kept samples (oldest first): the newest whose delay is not
 * far above their minimum (the members' delay filter, core/sync/delay-filter.ts: a sample queued on
 * the way is off by up to half its excess delay). Not the least delay alone, as NTP's filter
 * sorts: with delays a few us apart an old sample would stand for the server for up to eight
 * polls, and each estimate resting on it, shifted only by our own corrections, would hide the rate
 * our clock drifted at since (what a master following this server is there to learn). The
 * minimum itself is never poor, so there is always a choice. Never starves the server, as the
 * members' filter never starves a member: once more than POOR_SAMPLE_STREAK_MAX of the newest
 * samples in a row are poor (a loaded box, a path that got slower), the newest stands. The
 * simulator's client uses it too.
 */
export function filterChoice<T extends { delayNs: number }>(samples: readonly T[]): T | null {
  const delaysNs = samples.map((sample) => sample.delayNs);
  for (let index = samples.length - 1; index >= 0; index -= 1) {
    const sample = samples[index] as T;
    if (!isPoorSample(sample.delayNs, delaysNs)) return sample;
    if (samples.length - index > POOR_SAMPLE_STREAK_MAX) return samples.at(-1) ?? null;
  }
  return samples.at(-1) ?? null;
}
