// The one rate limiter (src/core/rate-limiter.ts): a token bucket with time passed in, and a
// bounded table of them by key. No clock, no timers: every instant is a number the test picks.
import { describe, expect, it } from 'vitest';
import { KeyedRateLimiter, onceEvery, TokenBucket } from '../../src/core/rate-limiter.ts';

describe('TokenBucket', () => {
  it('once per interval: the first event passes, the next only a full interval later, refusals counted', () => {
    const bucket = onceEvery(10_000);
    expect(bucket.allow(5)).toBe(true);
    expect(bucket.allow(6)).toBe(false);
    expect(bucket.allow(10_004)).toBe(false);
    expect(bucket.takeSuppressed()).toBe(2);
    expect(bucket.takeSuppressed()).toBe(0);
    expect(bucket.allow(10_005)).toBe(true);
    // A long silence does not bank more than one event.
    expect(bucket.allow(1_000_000)).toBe(true);
    expect(bucket.allow(1_000_001)).toBe(false);
  });

  it('a burst of N passes at once, then one per interval', () => {
    const bucket = new TokenBucket({ burst: 4, intervalMs: 250 });
    const passed = Array.from({ length: 10 }, () => bucket.allow(1000)).filter(Boolean).length;
    expect(passed).toBe(4);
    expect(bucket.suppressed).toBe(6);
    expect(bucket.allow(1249)).toBe(false);
    expect(bucket.allow(1250)).toBe(true);
    expect(bucket.allow(1250)).toBe(false);
    // After burst x interval of quiet the bucket is full again, and no fuller.
    expect([1, 2, 3, 4, 5].map(() => bucket.allow(3000)).filter(Boolean)).toHaveLength(4);
  });

  it('sustained pressure gets exactly the rate over a long run', () => {
    const bucket = new TokenBucket({ burst: 128, intervalMs: 1000 / 128 });
    let passed = 0;
    // Ten events per millisecond for ten seconds.
    for (let nowMs = 0; nowMs < 10_000; nowMs += 0.1) if (bucket.allow(nowMs)) passed += 1;
    expect(passed).toBeGreaterThanOrEqual(128 * 10);
    expect(passed).toBeLessThanOrEqual(128 * 11);
  });

  it('a clock that goes backwards grants nothing extra', () => {
    const bucket = onceEvery(100);
    expect(bucket.allow(1000)).toBe(true);
    expect(bucket.allow(500)).toBe(false);
    expect(bucket.allow(1099)).toBe(false);
    expect(bucket.allow(1100)).toBe(true);
  });

  it('refuses a limit that could not work', () => {
    expect(() => new TokenBucket({ burst: 0, intervalMs: 10 })).toThrow(RangeError);
    expect(() => new TokenBucket({ burst: 1.5, intervalMs: 10 })).toThrow(RangeError);
    expect(() => new TokenBucket({ burst: 1, intervalMs: 0 })).toThrow(RangeError);
    expect(() => new TokenBucket({ burst: 1, intervalMs: Number.NaN })).toThrow(RangeError);
  });
});

describe('KeyedRateLimiter', () => {
  it('keeps one bucket per key', () => {
    const limiter = new KeyedRateLimiter<string>({ burst: 2, intervalMs: 1000 }, 16);
    expect([limiter.allow('a', 0), limiter.allow('a', 0), limiter.allow('a', 0)]).toEqual([true, true, false]);
    expect(limiter.allow('b', 0)).toBe(true);
    expect(limiter.takeSuppressed('a')).toBe(1);
    expect(limiter.takeSuppressed('b')).toBe(0);
    expect(limiter.takeSuppressed('never-seen')).toBe(0);
    expect(limiter.allow('a', 999)).toBe(false);
    expect(limiter.allow('a', 1000)).toBe(true);
  });

  it('never tracks more than keysMax keys, whatever the flood', () => {
    const limiter = new KeyedRateLimiter<number>({ burst: 1, intervalMs: 60_000 }, 8);
    for (let key = 0; key < 10_000; key += 1) limiter.allow(key, 0);
    expect(limiter.size).toBe(8);
  });

  it('makes room by forgetting idle buckets first, then the least recently used', () => {
    const limiter = new KeyedRateLimiter<string>({ burst: 1, intervalMs: 100 }, 3);
    limiter.allow('old', 0);
    limiter.allow('busy', 50);
    limiter.allow('busy', 60); // refused: busy is not idle until it is taken from
    limiter.allow('recent', 90);
    // At 120 'old' is full again (idle) and goes first; 'busy' keeps its suppressed count.
    expect(limiter.allow('new', 120)).toBe(true);
    expect(limiter.size).toBe(3);
    expect(limiter.takeSuppressed('busy')).toBe(1);
    // Nothing idle at 121 (every bucket is empty): the least recently used goes.
    limiter.allow('busy', 121);
    expect(limiter.allow('newer', 121)).toBe(true);
    expect(limiter.size).toBe(3);
    // 'recent' was the least recently used: forgotten, so it starts with a full bucket.
    expect(limiter.allow('recent', 121)).toBe(true);
  });

  it('counts only evictions that lost state, and shows a key\'s refusals without resetting them', () => {
    const limiter = new KeyedRateLimiter<string>({ burst: 1, intervalMs: 100 }, 2);
    limiter.allow('a', 0);
    limiter.allow('a', 1);
    limiter.allow('a', 2);
    expect(limiter.suppressedOf('a')).toBe(2);
    expect(limiter.suppressedOf('a')).toBe(2); // a peek: still there
    limiter.allow('b', 500); // 'a' holds refusals: not idle
    limiter.allow('c', 500); // nothing idle ('b' is empty): the least recently used ('a') is lost
    expect(limiter.evicted).toBe(1);
    expect(limiter.suppressedOf('a')).toBe(0);
    limiter.allow('d', 10_000); // 'b' and 'c' full again: idle, forgotten without loss
    expect(limiter.evicted).toBe(1);
  });
});
