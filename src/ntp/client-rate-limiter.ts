// Per-client rate limit for the NTP server, in the manner of chrony's `ratelimit interval burst
// leak`: a token bucket per client address (one token per interval, up to `burst`), and one in
// 2^leak requests over the limit answered anyway. chrony lets them through at random so that a
// flooder cannot predict which; here it is every 2^leak-th of a client's refused requests, which
// keeps this pure and deterministic, and a spoofing flooder still cannot starve the real client
// completely.
//
// Built on the codebase's one rate limiter (src/core/rate-limiter.ts, KeyedRateLimiter): the
// buckets, the bounded table (idle clients forgotten first, then the least recently heard) and
// the refusal count per client live there; this adds the leak and the NTP server's counters.
// Pure: the caller passes the monotonic time.
import { NTP_RATE_BURST_DEFAULT, NTP_RATE_CLIENTS_MAX, NTP_RATE_INTERVAL_MS_DEFAULT, NTP_RATE_LEAK_LOG2_DEFAULT } from '../core/limits.ts';
import { KeyedRateLimiter } from '../core/rate-limiter.ts';

export interface ClientRateLimitOptions {
  /** Average interval between answers to one client, ms (> 0). */
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

export class ClientRateLimiter {
  private readonly options: ClientRateLimitOptions;
  private readonly limiter: KeyedRateLimiter<string>;
  /** Requests answered within the limit, answered over it (leak), refused. */
  allowed = 0;
  leaked = 0;
  dropped = 0;

  constructor(options: Partial<ClientRateLimitOptions> = {}) {
    this.options = { ...CLIENT_RATE_LIMIT_DEFAULTS, ...options };
    const { intervalMs, burst, leakLog2, clientsMax } = this.options;
    if (leakLog2 !== null && !(Number.isInteger(leakLog2) && leakLog2 >= 0 && leakLog2 <= 30)) {
      throw new RangeError(`bad NTP rate limit leak: ${JSON.stringify(this.options)}`);
    }
    // KeyedRateLimiter checks the rest (burst >= 1, interval > 0, clientsMax >= 1) with a RangeError.
    this.limiter = new KeyedRateLimiter<string>({ burst, intervalMs }, clientsMax);
  }

  get size(): number {
    return this.limiter.size;
  }

  /** Clients forgotten to make room while they still had state (a spent budget or refusals). */
  get evicted(): number {
    return this.limiter.evicted;
  }

  /** Whether to answer a request from `client` (an address) arriving at monotonic `nowMs`. */
  check(client: string, nowMs: number): RateDecision {
    if (this.limiter.allow(client, nowMs)) {
      this.allowed += 1;
      return 'allow';
    }
    // The bucket's refusal count is never taken, so it counts this client's refusals while it is
    // remembered: every 2^leak-th of them is answered.
    const { leakLog2 } = this.options;
    if (leakLog2 !== null && this.limiter.suppressedOf(client) % 2 ** leakLog2 === 0) {
      this.leaked += 1;
      return 'leak';
    }
    this.dropped += 1;
    return 'drop';
  }
}
