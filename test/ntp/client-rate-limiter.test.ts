// The NTP server's per-client rate limit (src/ntp/client-rate-limiter.ts): a burst, then one
// answer per interval, one in 2^leak refused requests answered anyway, clients independent, the
// table bounded, and every decision counted.
import { describe, expect, it } from 'vitest';
import { ClientRateLimiter } from '../../src/ntp/client-rate-limiter.ts';

function decisions(limiter: ClientRateLimiter, client: string, times: number[]): string[] {
  return times.map((timeMs) => limiter.check(client, timeMs));
}

describe('NTP client rate limiter', () => {
  it('allows a burst, then refuses until a token accrues, and leaks one in 2^leak refusals', () => {
    const limiter = new ClientRateLimiter({ intervalMs: 2000, burst: 4, leakLog2: 2, clientsMax: 16 });
    expect(decisions(limiter, 'a', [0, 0, 0, 0])).toEqual(['allow', 'allow', 'allow', 'allow']);
    expect(decisions(limiter, 'a', [10, 20, 30, 40, 50, 60, 70, 80])).toEqual(['drop', 'drop', 'drop', 'leak', 'drop', 'drop', 'drop', 'leak']);
    // 2 s after the burst one token has accrued (1999 ms is not enough).
    expect(limiter.check('a', 1999)).toBe('drop');
    expect(limiter.check('a', 2001)).toBe('allow');
    expect(limiter.check('a', 2002)).toBe('drop');
    expect({ allowed: limiter.allowed, leaked: limiter.leaked, dropped: limiter.dropped }).toEqual({ allowed: 5, leaked: 2, dropped: 8 });
  });

  it('refills up to the burst, not beyond, after a long silence', () => {
    const limiter = new ClientRateLimiter({ intervalMs: 100, burst: 3, leakLog2: null, clientsMax: 16 });
    decisions(limiter, 'a', [0, 0, 0]);
    expect(decisions(limiter, 'a', [1_000_000, 1_000_000, 1_000_000, 1_000_000])).toEqual(['allow', 'allow', 'allow', 'drop']);
    expect(limiter.leaked).toBe(0);
  });

  it('keeps each client on its own budget', () => {
    const limiter = new ClientRateLimiter({ intervalMs: 1000, burst: 1, leakLog2: null, clientsMax: 16 });
    expect(limiter.check('a', 0)).toBe('allow');
    expect(limiter.check('a', 1)).toBe('drop');
    expect(limiter.check('b', 1)).toBe('allow');
  });

  it('bounds its table, forgetting the client heard from least recently', () => {
    const limiter = new ClientRateLimiter({ intervalMs: 1000, burst: 1, leakLog2: null, clientsMax: 2 });
    limiter.check('a', 0);
    limiter.check('b', 1);
    limiter.check('a', 2); // a is now the most recent; b the least
    limiter.check('c', 3); // forgets b
    expect(limiter.size).toBe(2);
    expect(limiter.evicted).toBe(1);
    expect(limiter.check('a', 4)).toBe('drop'); // a kept its spent budget
    expect(limiter.check('b', 5)).toBe('allow'); // b was forgotten: a new burst (forgets c)
    expect(limiter.evicted).toBe(2);
  });

  it('gives no tokens for a clock that seems to run backwards', () => {
    const limiter = new ClientRateLimiter({ intervalMs: 1000, burst: 1, leakLog2: null, clientsMax: 4 });
    limiter.check('a', 10_000);
    expect(limiter.check('a', 0)).toBe('drop');
    expect(limiter.check('a', 10_999)).toBe('drop');
    expect(limiter.check('a', 11_000)).toBe('allow');
  });

  it('refuses nonsense options', () => {
    expect(() => new ClientRateLimiter({ burst: 0 })).toThrow(RangeError);
    expect(() => new ClientRateLimiter({ clientsMax: 0 })).toThrow(RangeError);
    expect(() => new ClientRateLimiter({ leakLog2: -1 })).toThrow(RangeError);
    expect(() => new ClientRateLimiter({ intervalMs: Number.NaN })).toThrow(RangeError);
  });
});
