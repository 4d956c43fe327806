// The NTP packet codec (src/ntp/packet.ts): timestamp conversions are exact and match known
// values, requests are accepted only as NTPv3/v4 client mode with a stable reason otherwise, and
// headers survive a write/read round trip.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  asciiRefid, ipv4Refid, NTP_HEADER_BYTES, NtpMode, nsToNtpShort, ntpShortToNs, ntpToUnixNs, parseRequest,
  readHeader, unixNsToNtp, writeHeader, type NtpHeader,
} from '../../src/ntp/packet.ts';

/** A 64-bit NTP value from whole seconds since 1900 and a 32-bit fraction. */
const ntp = (seconds: bigint, fraction: bigint) => (seconds << 32n) | fraction;

function request(first: number, length = NTP_HEADER_BYTES, transmitTs = 0x0123_4567_89ab_cdefn): Uint8Array {
  const bytes = new Uint8Array(length);
  if (length > 0) bytes[0] = first;
  if (length >= NTP_HEADER_BYTES) new DataView(bytes.buffer).setBigUint64(40, transmitTs);
  return bytes;
}
/** LI, VN, mode in the first byte. */
const lvm = (leap: number, version: number, mode: number) => (leap << 6) | (version << 3) | mode;

describe('NTP timestamps', () => {
  it('maps the Unix epoch, half seconds and one ns to the known NTP values', () => {
    expect(unixNsToNtp(0n)).toBe(ntp(2_208_988_800n, 0n));
    expect(unixNsToNtp(0n)).toBe(0x83aa7e80_00000000n);
    expect(unixNsToNtp(500_000_000n)).toBe(ntp(2_208_988_800n, 0x8000_0000n));
    expect(unixNsToNtp(250_000_000n)).toBe(ntp(2_208_988_800n, 0x4000_0000n));
    // 1 ns = 4.294967296 units of 2^-32 s: rounds to 4.
    expect(unixNsToNtp(1n)).toBe(ntp(2_208_988_800n, 4n));
    // 2001-09-09T01:46:40Z = Unix 1e9 s.
    expect(unixNsToNtp(1_000_000_000n * 1_000_000_000n)).toBe(ntp(3_208_988_800n, 0n));
    expect(ntpToUnixNs(ntp(3_208_988_800n, 0x8000_0000n))).toBe(1_000_000_000_500_000_000n);
  });

  it('round-trips nanoseconds exactly, including the last ns of a second', () => {
    const base = 1_700_000_000n * 1_000_000_000n;
    const cases = [0n, 1n, 2n, 3n, 232n, 233n, 499_999_999n, 500_000_000n, 999_999_998n, 999_999_999n];
    for (const ns of cases) expect(ntpToUnixNs(unixNsToNtp(base + ns))).toBe(base + ns);
    // A deterministic sweep over fractions (a linear congruential walk).
    let x = 12345n;
    for (let index = 0; index < 2000; index += 1) {
      x = (x * 6364136223846793005n + 1442695040888963407n) % (1n << 62n);
      const ns = base + (x % (100n * 1_000_000_000n));
      expect(ntpToUnixNs(unixNsToNtp(ns))).toBe(ns);
    }
  });

  it('rounds a fraction that no ns matches to the nearest ns, carrying into the next second', () => {
    expect(ntpToUnixNs(ntp(3_208_988_800n, 0xffff_ffffn))).toBe(1_000_000_001_000_000_000n);
    expect(ntpToUnixNs(ntp(3_208_988_800n, 2n))).toBe(1_000_000_000_000_000_000n);
    expect(ntpToUnixNs(ntp(3_208_988_800n, 3n))).toBe(1_000_000_000_000_000_001n);
  });

  it('wraps at the 2036 era boundary and finds the era back with a pivot', () => {
    // 2036-02-07T06:28:16Z is 2^32 s after 1900: era 1 starts, the wire value is 0.
    const eraOneNs = (1n << 32n) * 1_000_000_000n - 2_208_988_800n * 1_000_000_000n;
    expect(unixNsToNtp(eraOneNs)).toBe(0n);
    expect(unixNsToNtp(eraOneNs + 1_500_000_000n)).toBe(ntp(1n, 0x8000_0000n));
    expect(ntpToUnixNs(ntp(1n, 0x8000_0000n))).toBe(-2_208_988_800n * 1_000_000_000n + 1_500_000_000n);
    expect(ntpToUnixNs(ntp(1n, 0x8000_0000n), eraOneNs)).toBe(eraOneNs + 1_500_000_000n);
    // A pivot in era 0 keeps era 0.
    expect(ntpToUnixNs(unixNsToNtp(1_700_000_000_000_000_000n), 1_700_000_000_000_000_000n)).toBe(1_700_000_000_000_000_000n);
  });

  it('converts NTP short format, rounding dispersions up and saturating', () => {
    expect(nsToNtpShort(1e9)).toBe(0x0001_0000);
    expect(nsToNtpShort(0.5e9)).toBe(0x0000_8000);
    expect(nsToNtpShort(1)).toBe(1);
    expect(nsToNtpShort(0)).toBe(0);
    expect(nsToNtpShort(-5)).toBe(0);
    expect(nsToNtpShort(1e15)).toBe(0xffff_ffff);
    expect(ntpShortToNs(0x0001_8000)).toBe(1.5e9);
    expect(ntpShortToNs(nsToNtpShort(15_259))).toBeGreaterThanOrEqual(15_259);
  });

  it('makes refids from ASCII and IPv4 addresses', () => {
    expect(asciiRefid('BRKL')).toBe(0x4252_4b4c);
    expect(asciiRefid('GPS')).toBe(0x4750_5300);
    expect(() => asciiRefid('TOOLONG')).toThrow(RangeError);
    expect(ipv4Refid('198.18.0.1')).toBe(0xc612_0001);
    expect(ipv4Refid('256.0.0.1')).toBeNull();
    expect(ipv4Refid('fe80::1')).toBeNull();
  });
});

describe('NTP requests', () => {
  it('accepts NTPv4 and NTPv3 client requests and reads every header field', () => {
    const bytes = request(lvm(0, 4, 3));
    const view = new DataView(bytes.buffer);
    view.setUint8(1, 2);
    view.setInt8(2, -4);
    view.setInt8(3, -23);
    view.setUint32(4, 0x0000_1234);
    view.setUint32(8, 0x0002_0000);
    view.setUint32(12, 0xc612_0001);
    view.setBigUint64(16, 0x1111n);
    view.setBigUint64(24, 0x2222n);
    view.setBigUint64(32, 0x3333n);
    const parsed = parseRequest(bytes);
    expect(parsed).toEqual({
      ok: true,
      request: {
        trailingBytes: 0,
        header: {
          leap: 0, version: 4, mode: 3, stratum: 2, poll: -4, precision: -23, rootDelay: 0x1234, rootDispersion: 0x2_0000,
          refid: 0xc612_0001, referenceTs: 0x1111n, originTs: 0x2222n, receiveTs: 0x3333n, transmitTs: 0x0123_4567_89ab_cdefn,
        },
      },
    });
    const v3 = parseRequest(request(lvm(3, 3, 3)));
    expect(v3.ok && v3.request.header.version).toBe(3);
    expect(v3.ok && v3.request.header.leap).toBe(3);
  });

  it('notes the length of extension fields and MACs after the header', () => {
    // NTPv3/v4 symmetric-key MAC: key id + 16-byte MD5 digest.
    const withMac = parseRequest(request(lvm(0, 4, 3), 48 + 20));
    expect(withMac.ok && withMac.request.trailingBytes).toBe(20);
    // NTS-style extension fields.
    const withFields = parseRequest(request(lvm(0, 4, 3), 48 + 104));
    expect(withFields.ok && withFields.request.trailingBytes).toBe(104);
  });

  it('rejects short, misaligned, other-version and other-mode packets with a reason', () => {
    expect(parseRequest(new Uint8Array(0))).toEqual({ ok: false, reason: 'short' });
    expect(parseRequest(request(lvm(0, 4, 3), 47))).toEqual({ ok: false, reason: 'short' });
    expect(parseRequest(request(lvm(0, 4, 3), 50))).toEqual({ ok: false, reason: 'misaligned' });
    for (const version of [0, 1, 2, 5, 6, 7]) expect(parseRequest(request(lvm(0, version, 3)))).toEqual({ ok: false, reason: 'version' });
    for (const mode of [0, 1, 2, 4, 5, 6, 7]) expect(parseRequest(request(lvm(0, 4, mode)))).toEqual({ ok: false, reason: 'mode' });
    // A monlist query (mode 7, version 2) is the classic amplification vector.
    expect(parseRequest(request(0x17, 48)).ok).toBe(false);
  });

  it('parses a header out of a view into a larger buffer (a Node Buffer slice)', () => {
    const pool = new Uint8Array(200);
    pool.set(request(lvm(0, 4, 3)), 100);
    const parsed = parseRequest(pool.subarray(100, 148));
    expect(parsed.ok && parsed.request.header.transmitTs).toBe(0x0123_4567_89ab_cdefn);
  });
});

describe('NTP header writing', () => {
  it('round-trips every field, including negative poll and precision and 64-bit stamps', () => {
    const header: NtpHeader = {
      leap: 3, version: 4, mode: NtpMode.server, stratum: 11, poll: -4, precision: -20, rootDelay: 0xfedc_ba98,
      rootDispersion: 0x0001_0000, refid: 0x4252_4b4c, referenceTs: 0xffff_ffff_ffff_ffffn, originTs: 1n,
      receiveTs: 0x8000_0000_0000_0000n, transmitTs: 0x83aa_7e80_0000_0001n,
    };
    const bytes = writeHeader(header);
    expect(bytes.byteLength).toBe(NTP_HEADER_BYTES);
    expect(bytes[0]).toBe(0xe4);
    expect(readHeader(bytes)).toEqual(header);
  });
});

describe('NTP request parsing on arbitrary bytes', () => {
  it('never throws, accepts only client-mode v3/v4 of 48+ aligned bytes, and keeps the origin for the reply', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
      const parsed = parseRequest(bytes);
      const wellFormed = bytes.length >= NTP_HEADER_BYTES && bytes.length % 4 === 0 && [3, 4].includes((bytes[0]! >> 3) & 7) && (bytes[0]! & 7) === 3;
      expect(parsed.ok).toBe(wellFormed);
      if (parsed.ok) {
        expect(parsed.request.trailingBytes).toBe(bytes.length - NTP_HEADER_BYTES);
        expect(writeHeader(parsed.request.header)).toEqual(bytes.slice(0, NTP_HEADER_BYTES));
      }
    }), { numRuns: 2000, seed: 17 });
  });
});
