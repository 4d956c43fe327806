// GET /time's report (src/daemon/time-report.ts), pure: the ISO form keeps all nine digits of the
// nanoseconds (Date keeps three), the epoch ns travel as a string (beyond a JSON number's 53 bits),
// and a reading is trusted only when synchronized with a bound.
import { describe, expect, it } from 'vitest';
import { isoWithNs, timeReport, trustworthy } from '../src/daemon/time-report.ts';

describe('time report', () => {
  it('writes ISO 8601 UTC with nine fraction digits, exactly', () => {
    expect(isoWithNs(1_748_859_304_123_456_789n)).toBe('2025-06-02T10:15:04.123456789Z');
    expect(isoWithNs(1_748_859_304_000_000_001n)).toBe('2025-06-02T10:15:04.000000001Z');
    expect(isoWithNs(0n)).toBe('1970-01-01T00:00:00.000000000Z');
    // Before the epoch the fraction still counts forward from the whole second.
    expect(isoWithNs(-1n)).toBe('1969-12-31T23:59:59.999999999Z');
  });

  it('carries the time as a decimal string, rounds the bound, and trusts only a synchronized reading with a bound', () => {
    const reading = {
      nowNs: 9_007_199_254_740_993_123n, synchronized: true, errorBoundNs: 37_511.6, measurementDelayNs: 80_000, role: 'slave' as const,
      masterId: 'node-3', masterAddress: '198.18.0.3', lastCorrectionNs: null, clockMode: 'virtual' as const, upstream: null, upstreamPeerAddress: null,
    };
    const report = timeReport(reading, 250_000_000.4);
    expect(report).toEqual({
      timeNs: '9007199254740993123', iso: isoWithNs(reading.nowNs), synchronized: true, errorBoundNs: 37_512,
      clockMode: 'virtual', hostOffsetNs: 250_000_000, masterId: 'node-3', role: 'slave',
    });
    expect(JSON.parse(JSON.stringify(report)).timeNs).toBe('9007199254740993123');
    expect(trustworthy(report)).toBe(true);
    expect(trustworthy(timeReport({ ...reading, errorBoundNs: null }, 0))).toBe(false);
    expect(trustworthy(timeReport({ ...reading, synchronized: false }, 0))).toBe(false);
  });
});
