// The one rate limiter of the codebase: a token bucket, unkeyed or keyed by a bounded table.
// Pure (time is passed in as monotonic milliseconds), so the core, the shells and the simulator
// share it: log lines of noisy conditions, mDNS warnings, the master's cluster-view pages per peer.
//
// A bucket holds up to `burst` tokens and gains one every `intervalMs`; an event takes one or is
// refused. burst 1 is "at most once per interval"; burst N with intervalMs 1000 / N is "N per
// second, N at once". A bucket starts full. Refused events are counted (`suppressed`) so that the
// next allowed log line can say how many it stood for.

export interface RateLimit {
  /** Events allowed at once (the bucket's size), at least 1. */
  burst: number;
  /** One more event is allowed every this many milliseconds (> 0). */
  intervalMs: number;
}

/** Checks a limit once, so that a bad limit fails where it is made, not on the first event. */
function checkLimit(limit: RateLimit): void {
  if (!Number.isInteger(limit.burst) || limit.burst < 1) throw new RangeError(`rate limit burst must be an integer >= 1, got ${limit.burst}`);
  if (!Number.isFinite(limit.intervalMs) || limit.intervalMs <= 0) throw new RangeError(`rate limit intervalMs must be > 0, got ${limit.intervalMs}`);
}

/**
 * One token bucket, kept as the moment it will be full again (the "generic cell rate algorithm"
 * form: exact in integer milliseconds, no fractional tokens to round).
 */
export class TokenBucket {
  /** When the bucket is full again; at or before now: it is full. */
  private fullAtMs = Number.NEGATIVE_INFINITY;
  /** Events refused since the last takeSuppressed(). */
  suppressed = 0;

  constructor(private readonly limit: RateLimit) {
    checkLimit(limit);
  }

  /** Takes a token at `nowMs` if there is one; otherwise counts the event as suppressed. */
  allow(nowMs: number): boolean {
    const fullAtMs = Math.max(this.fullAtMs, nowMs);
    // Tokens missing now = (fullAtMs - nowMs) / intervalMs; one must be left to take.
    if (fullAtMs - nowMs > (this.limit.burst - 1) * this.limit.intervalMs) {
      this.suppressed += 1;
      return false;
    }
    this.fullAtMs = fullAtMs + this.limit.intervalMs;
    return true;
  }

  /** Returns and resets the number of refused events. */
  takeSuppressed(): number {
    const count = this.suppressed;
    this.suppressed = 0;
    return count;
  }

  /** Full and nothing refused since: forgetting this bucket loses nothing (a new one is the same). */
  idle(nowMs: number): boolean {
    return this.fullAtMs <= nowMs && this.suppressed === 0;
  }
}

/** A bucket that allows one event per interval (for log lines of noisy conditions). */
export const onceEvery = (intervalMs: number): TokenBucket => new TokenBucket({ burst: 1, intervalMs });

/**
 * One token bucket per key (a peer, a client address, a kind of warning), at most `keysMax` of
 * them. A new key in a full table first evicts the idle buckets (full, nothing suppressed: no
 * information lost), then, if none is idle, the least recently used one: that key starts over
 * with a full bucket, so memory stays bounded at the price of a burst for a key flood.
 */
export class KeyedRateLimiter<Key> {
  private readonly buckets = new Map<Key, TokenBucket>();
  /** Keys forgotten while not idle (the least recently used, to make room): their state was lost. */
  evicted = 0;

  constructor(
    private readonly limit: RateLimit,
    private readonly keysMax: number,
  ) {
    checkLimit(limit);
    if (!Number.isInteger(keysMax) || keysMax < 1) throw new RangeError(`rate limiter keysMax must be an integer >= 1, got ${keysMax}`);
  }

  /** Takes a token from `key`'s bucket at `nowMs` if there is one; otherwise counts it suppressed. */
  allow(key: Key, nowMs: number): boolean {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.keysMax) this.makeRoom(nowMs);
      bucket = new TokenBucket(this.limit);
    } else {
      // Re-insert: the Map's order is then least recently used first.
      this.buckets.delete(key);
    }
    this.buckets.set(key, bucket);
    return bucket.allow(nowMs);
  }

  /** Returns and resets the number of refused events of `key`. */
  takeSuppressed(key: Key): number {
    return this.buckets.get(key)?.takeSuppressed() ?? 0;
  }

  /** The refused events of `key` since its last takeSuppressed(), without resetting them. */
  suppressedOf(key: Key): number {
    return this.buckets.get(key)?.suppressed ?? 0;
  }

  /** Keys tracked now (never more than keysMax). */
  get size(): number {
    return this.buckets.size;
  }

  clear(): void {
    this.buckets.clear();
  }

  private makeRoom(nowMs: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.idle(nowMs)) this.buckets.delete(key);
    if (this.buckets.size < this.keysMax) return;
    const oldest = this.buckets.keys().next();
    if (!oldest.done) {
      this.buckets.delete(oldest.value);
      this.evicted += 1;
    }
  }
}
