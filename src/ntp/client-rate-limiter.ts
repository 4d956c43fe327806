// Per-client rate limit for the NTP server, in the manner of chrony's `ratelimit interval burst
// leak`: a token bucket per client address (one token per interval, up to `burst`), and one in
// 2^leak requests over the limit answered anyway. chrony lets them through at random so that a
// flooder cannot predict which; here it is every 2^leak-th of a client's refused requests, which
// keeps this pure and deterministic, and a spoofing flooder still cannot starve the real client
// completely. The table is bounded: when full, the client heard from least recently is forgotten.
//
// Pure: the caller passes the monotonic time. (A shared limiter, src/core/rate-limiter.ts, was
// planned by another change; this one should be merged with it when both exist.)
import { NTP_RATE_BURST_DEFAULT, NTP_RATE_CLIENTS_MAX, NTP_RATE_INTERVAL_MS_DEFAULT, NTP_RATE_LEAK_LOG2_DEFAULT } from '../core/limits.ts';

export interface ClientRateLimitOptions {
  /** Average interval between answers to one client, ms. */
  intervalMs: number;
  /** Answers a client may get in a burst (bucket size). */
  burst: number;
  /** One in 2^leakLog2 refused requests is answered anyway; null never. */
  leakLog2: number | null;
  /** Clients remembered. */
  clientsMax: number;
}

export const CLIENT_RATE_LIMIT_DEFAULTS: ClientRateLimitOptions = {
  intervalMs: NTP_RATE_INTERVAL_MS_DEFAULT,
  burst: NTP_RATE_BURST_DEFAULT,
  leakLog2: NTP_RATE_LEAK_LOG2_DEFAULT,
  clientsMax: NTP_RATE_CLIENTS_MAX,
};

export type RateDecision = 'allow' | 'leak' | 'drop';

interface Bucket {
  tokens: number;
  lastMs: number;
  refused: number;
}

export class ClientRateLimiter {
  private readonly options: ClientRateLimitOptions;
  /** Map order is least recently heard first (an entry is moved to the end when heard). */
  private readonly buckets = new Map<string, Bucket>();
  /** Requests answered within the limit, answered over it (leak), refused, and clients forgotten to make room. */
  allowed = 0;
  leaked = 0;
  dropped = 0;
  evicted = 0;

  constructor(options: Partial<ClientRateLimitOptions> = {}) {
    this.options = { ...CLIENT_RATE_LIMIT_DEFAULTS, ...options };
    const { intervalMs, burst, leakLog2, clientsMax } = this.options;
    if (!(intervalMs >= 0) || !(burst >= 1) || !Number.isInteger(burst) || !(clientsMax >= 1) || !Number.isInteger(clientsMax)
      || (leakLog2 !== null && !(Number.isInteger(leakLog2) && leakLog2 >= 0 && leakLog2 <= 30))) {
      throw new RangeError(`bad NTP rate limit: ${JSON.stringify(this.options)}`);
    }
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Whether to answer a request from `client` (an address) arriving at monotonic `nowMs`. */
  check(client: string, nowMs: number): RateDecision {
    const { intervalMs, burst, leakLog2, clientsMax } = this.options;
    let bucket = this.buckets.get(client);
    if (bucket === undefined) {
      if (this.buckets.size >= clientsMax) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
        this.evicted += 1;
      }
      bucket = { tokens: burst, lastMs: nowMs, refused: 0 };
    } else {
      this.buckets.delete(client);
      // A monotonic clock never goes back; if it seems to, do not hand out tokens for it.
      const elapsedMs = Math.max(0, nowMs - bucket.lastMs);
      bucket.tokens = intervalMs === 0 ? burst : Math.min(burst, bucket.tokens + elapsedMs / intervalMs);
      bucket.lastMs = Math.max(bucket.lastMs, nowMs);
    }
    this.buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      this.allowed += 1;
      return 'allow';
    }
    bucket.refused += 1;
    if (leakLog2 !== null && bucket.refused % 2 ** leakLog2 === 0) {
      this.leaked += 1;
      return 'leak';
    }
    this.dropped += 1;
    return 'drop';
  }
}
