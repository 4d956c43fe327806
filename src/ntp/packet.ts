// NTP packet codec (RFC 5905, section 7.3): the 48-byte header of a client request and of our
// server reply, and the timestamp formats. Pure: no sockets, no clock. Parsing never throws; a
// packet we do not answer comes back with a stable reason, for a counter.
//
// Timestamps on the wire are 64-bit NTP format: seconds since 1900-01-01 in the high 32 bits, a
// binary fraction of a second in the low 32 (era 0 runs to 2036-02-07; the wire value wraps after
// that, RFC 5905 section 6). The fraction's step (0.23 ns) is finer than a nanosecond, so
// nanoseconds -> NTP -> nanoseconds is exact with rounding to nearest both ways.

/** Fixed header of every NTP packet; what follows is extension fields and/or a MAC. */
export const NTP_HEADER_BYTES = 48;
/** Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch). */
export const NTP_UNIX_EPOCH_DELTA_S = 2_208_988_800n;
const NS_PER_S = 1_000_000_000n;
const TWO_32 = 1n << 32n;
const TWO_64 = 1n << 64n;

export const NtpMode = { symmetricActive: 1, symmetricPassive: 2, client: 3, server: 4, broadcast: 5, control: 6, private: 7 } as const;
/** Leap indicator: 3 = alarm, the clock is not synchronized (clients must not follow). */
export const NtpLeap = { none: 0, insertSecond: 1, deleteSecond: 2, alarm: 3 } as const;
export type NtpLeapIndicator = 0 | 1 | 2 | 3;
/** Versions we answer: NTPv4 (RFC 5905) and NTPv3 (RFC 1305); their 48-byte headers are the same. */
export const NTP_VERSIONS_ANSWERED: readonly number[] = [3, 4];

export interface NtpHeader {
  leap: NtpLeapIndicator;
  version: number;
  mode: number;
  stratum: number;
  /** log2 seconds, signed. */
  poll: number;
  /** log2 seconds, signed. */
  precision: number;
  /** NTP short format (16.16 seconds), raw. */
  rootDelay: number;
  rootDispersion: number;
  /** 32 bits, raw. */
  refid: number;
  /** 64-bit NTP timestamps, raw. */
  referenceTs: bigint;
  originTs: bigint;
  receiveTs: bigint;
  transmitTs: bigint;
}

export interface NtpRequest {
  header: NtpHeader;
  /** Bytes after the 48-byte header: extension fields and/or a MAC (not interpreted; never echoed). */
  trailingBytes: number;
}

export type NtpRejectReason =
  /** Shorter than the 48-byte header: never answered (a reply would be larger than the request). */
  | 'short'
  /** Not a whole number of 32-bit words (RFC 5905 fields and MACs all are). */
  | 'misaligned'
  /** Not NTPv3 or NTPv4. */
  | 'version'
  /** Not client mode (3): server, symmetric, broadcast, control (mode 6) and private (mode 7, monlist) are not answered. */
  | 'mode';

export type ParseResult = { ok: true; request: NtpRequest } | { ok: false; reason: NtpRejectReason };

/** Reads the 48-byte header of any NTP packet (the caller checked the length). */
export function readHeader(bytes: Uint8Array): NtpHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = view.getUint8(0);
  return {
    leap: (first >> 6) as NtpLeapIndicator,
    version: (first >> 3) & 0x7,
    mode: first & 0x7,
    stratum: view.getUint8(1),
    poll: view.getInt8(2),
    precision: view.getInt8(3),
    rootDelay: view.getUint32(4),
    rootDispersion: view.getUint32(8),
    refid: view.getUint32(12),
    referenceTs: view.getBigUint64(16),
    originTs: view.getBigUint64(24),
    receiveTs: view.getBigUint64(32),
    transmitTs: view.getBigUint64(40),
  };
}

/** A request we answer (NTPv3/v4, client mode), or why not. Never throws. */
export function parseRequest(bytes: Uint8Array): ParseResult {
  if (bytes.byteLength < NTP_HEADER_BYTES) return { ok: false, reason: 'short' };
  if (bytes.byteLength % 4 !== 0) return { ok: false, reason: 'misaligned' };
  const header = readHeader(bytes);
  if (!NTP_VERSIONS_ANSWERED.includes(header.version)) return { ok: false, reason: 'version' };
  if (header.mode !== NtpMode.client) return { ok: false, reason: 'mode' };
  return { ok: true, request: { header, trailingBytes: bytes.byteLength - NTP_HEADER_BYTES } };
}

/** Writes a 48-byte header (any mode; we only ever send mode 4). */
export function writeHeader(header: NtpHeader): Uint8Array {
  const bytes = new Uint8Array(NTP_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, ((header.leap & 0x3) << 6) | ((header.version & 0x7) << 3) | (header.mode & 0x7));
  view.setUint8(1, header.stratum);
  view.setInt8(2, header.poll);
  view.setInt8(3, header.precision);
  view.setUint32(4, header.rootDelay >>> 0);
  view.setUint32(8, header.rootDispersion >>> 0);
  view.setUint32(12, header.refid >>> 0);
  view.setBigUint64(16, BigInt.asUintN(64, header.referenceTs));
  view.setBigUint64(24, BigInt.asUintN(64, header.originTs));
  view.setBigUint64(32, BigInt.asUintN(64, header.receiveTs));
  view.setBigUint64(40, BigInt.asUintN(64, header.transmitTs));
  return bytes;
}

/**
 * Unix ns -> 64-bit NTP timestamp, the fraction rounded to nearest. Wraps modulo 2^64 (2^32 s), as
 * the wire format does from 2036 on.
 */
export function unixNsToNtp(unixNs: bigint): bigint {
  const sinceEraNs = unixNs + NTP_UNIX_EPOCH_DELTA_S * NS_PER_S;
  // round(x * 2^32 / 1e9) for any sign: floor((2 * x * 2^32 + 1e9) / (2 * 1e9)).
  const scaled = floorDiv(2n * sinceEraNs * TWO_32 + NS_PER_S, 2n * NS_PER_S);
  return BigInt.asUintN(64, scaled);
}

/**
 * 64-bit NTP timestamp -> Unix ns, rounded to nearest. Taken in era 0 (1900-2036) unless `pivotUnixNs`
 * is given: then the era that puts the result nearest the pivot (RFC 5905's advice for the
 * 2036 rollover: a timestamp is within 68 years of a reasonable guess of now).
 */
export function ntpToUnixNs(ntp: bigint, pivotUnixNs?: bigint): bigint {
  let value = BigInt.asUintN(64, ntp);
  if (pivotUnixNs !== undefined) {
    const pivotNtp = floorDiv((pivotUnixNs + NTP_UNIX_EPOCH_DELTA_S * NS_PER_S) * TWO_32, NS_PER_S);
    const era = floorDiv(pivotNtp - value + TWO_64 / 2n, TWO_64);
    value += era * TWO_64;
  }
  return floorDiv(2n * value * NS_PER_S + TWO_32, 2n * TWO_32) - NTP_UNIX_EPOCH_DELTA_S * NS_PER_S;
}

/** ns -> NTP short format (16.16 s), rounded UP (a dispersion is never understated); saturates at 0xffffffff. */
export function nsToNtpShort(ns: number): number {
  if (!(ns > 0)) return 0;
  const units = Math.ceil((ns * 65536) / 1e9);
  return Math.min(units, 0xffff_ffff);
}

/** NTP short format (16.16 s) -> ns. */
export function ntpShortToNs(short: number): number {
  return ((short >>> 0) * 1e9) / 65536;
}

/** Four ASCII characters as a refid (RFC 5905: kiss codes and stratum-1 sources are ASCII). */
export function asciiRefid(text: string): number {
  if (!/^[\x20-\x7e]{1,4}$/.test(text)) throw new RangeError(`refid must be 1-4 printable ASCII characters: ${JSON.stringify(text)}`);
  let value = 0;
  for (let index = 0; index < 4; index += 1) value = value * 256 + (index < text.length ? text.charCodeAt(index) : 0);
  return value;
}

/** An IPv4 address as a refid (RFC 5905: a server at stratum 2 and above names its upstream so). Null when not a dotted quad. */
export function ipv4Refid(address: string): number | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!match) return null;
  const octets = match.slice(1).map(Number);
  if (octets.some((octet) => octet > 255)) return null;
  return octets.reduce((value, octet) => value * 256 + octet, 0);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const quotient = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? quotient - 1n : quotient;
}
