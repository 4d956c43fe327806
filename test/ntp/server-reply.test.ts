// What the NTP server answers (src/ntp/server-reply.ts): unsynchronized -> alarm, stratum 0, no
// refid, as chrony does; synchronized -> the cluster's stratum and refid, root delay and
// dispersion that add up to the error bound; always 48 bytes, mode 4, the request's version, poll
// and transmit stamp echoed; the transmit stamp read last.
import { describe, expect, it } from 'vitest';
import { NTP_LOCAL_STRATUM_DEFAULT } from '../../src/core/limits.ts';
import { NTP_HEADER_BYTES, ntpShortToNs, ntpToUnixNs, parseRequest, readHeader, unixNsToNtp, type NtpRequest } from '../../src/ntp/packet.ts';
import { snapshotOf } from '../../src/daemon/ntp-service.ts';
import { buildServerReply, clusterIdentity, ntpClockSnapshot, REFID_CLUSTER_MASTER, servesSynchronized, type ClockSnapshot } from '../../src/ntp/server-reply.ts';

const CLIENT_TX = 0xe8a1_2345_6789_abcdn;

function clientRequest(version = 4, poll = 6, length = NTP_HEADER_BYTES): NtpRequest {
  const bytes = new Uint8Array(length);
  bytes[0] = (version << 3) | 3;
  bytes[2] = poll & 0xff;
  new DataView(bytes.buffer).setBigUint64(40, CLIENT_TX);
  const parsed = parseRequest(bytes);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.request;
}

const RX_NS = 1_700_000_000_123_456_789n;
const TX_NS = RX_NS + 25_000n;
const CORRECTED_NS = RX_NS - 700_000_000n;

const memberClock: ClockSnapshot = {
  synchronized: true, stratum: 11, refid: 0xc612_0001, errorBoundNs: 80_000, rootDelayNs: 100_000,
  referenceTimeNs: CORRECTED_NS, precisionLog2: -20,
};
const unsynchronizedClock: ClockSnapshot = {
  synchronized: false, stratum: 11, refid: 0xc612_0001, errorBoundNs: null, rootDelayNs: 100_000,
  referenceTimeNs: CORRECTED_NS, precisionLog2: -20,
};

describe('NTP server reply', () => {
  it('answers a synchronized member with its stratum, refid, reference time, root delay and dispersion', () => {
    const reply = buildServerReply(clientRequest(4, 6), RX_NS, memberClock, () => TX_NS);
    expect(reply.byteLength).toBe(NTP_HEADER_BYTES);
    const header = readHeader(reply);
    expect(header).toMatchObject({ leap: 0, version: 4, mode: 4, stratum: 11, poll: 6, precision: -20, refid: 0xc612_0001 });
    expect(header.originTs).toBe(CLIENT_TX);
    expect(ntpToUnixNs(header.receiveTs)).toBe(RX_NS);
    expect(ntpToUnixNs(header.transmitTs)).toBe(TX_NS);
    expect(ntpToUnixNs(header.referenceTs)).toBe(CORRECTED_NS);
    // Root distance as a client computes it (delay / 2 + dispersion) is the error bound, rounded up
    // by less than two units of 2^-16 s.
    const rootDelayNs = ntpShortToNs(header.rootDelay);
    const distanceNs = rootDelayNs / 2 + ntpShortToNs(header.rootDispersion);
    expect(rootDelayNs).toBeGreaterThanOrEqual(100_000);
    expect(distanceNs).toBeGreaterThanOrEqual(80_000);
    expect(distanceNs).toBeLessThan(80_000 + 2 * 15_259);
  });

  it('answers with leap alarm, stratum 0, refid 0, no reference time and 1 s root values while unsynchronized', () => {
    const header = readHeader(buildServerReply(clientRequest(), RX_NS, unsynchronizedClock, () => TX_NS));
    expect(header).toMatchObject({ leap: 3, mode: 4, stratum: 0, refid: 0, referenceTs: 0n, rootDelay: 0x1_0000, rootDispersion: 0x1_0000 });
    // It still carries the time: a client may look, it just must not follow.
    expect(header.originTs).toBe(CLIENT_TX);
    expect(ntpToUnixNs(header.transmitTs)).toBe(TX_NS);
  });

  it('treats a missing bound, a forced alarm or an impossible stratum as unsynchronized', () => {
    expect(servesSynchronized(memberClock)).toBe(true);
    expect(servesSynchronized({ ...memberClock, errorBoundNs: null })).toBe(false);
    expect(servesSynchronized({ ...memberClock, leap: 3 })).toBe(false);
    expect(servesSynchronized({ ...memberClock, stratum: 16 })).toBe(false);
    expect(servesSynchronized({ ...memberClock, stratum: 0 })).toBe(false);
    expect(readHeader(buildServerReply(clientRequest(), RX_NS, { ...memberClock, leap: 3 }, () => TX_NS)).leap).toBe(3);
    expect(readHeader(buildServerReply(clientRequest(), RX_NS, { ...memberClock, leap: 1 }, () => TX_NS)).leap).toBe(1);
  });

  it("answers NTPv3 as NTPv3 and echoes the client's poll", () => {
    const header = readHeader(buildServerReply(clientRequest(3, -4), RX_NS, memberClock, () => TX_NS));
    expect(header.version).toBe(3);
    expect(header.poll).toBe(-4);
  });

  it('never answers with more than 48 bytes, whatever follows the request header', () => {
    const request = clientRequest(4, 6, NTP_HEADER_BYTES + 68);
    expect(request.trailingBytes).toBe(68);
    expect(buildServerReply(request, RX_NS, memberClock, () => TX_NS).byteLength).toBe(NTP_HEADER_BYTES);
  });

  it('reads the transmit stamp after everything else (once)', () => {
    const order: string[] = [];
    const clock: ClockSnapshot = { ...memberClock };
    let reads = 0;
    const reply = buildServerReply(clientRequest(), RX_NS, clock, () => {
      reads += 1;
      order.push('tx');
      return TX_NS;
    });
    order.push('done');
    expect(reads).toBe(1);
    expect(order).toEqual(['tx', 'done']);
    expect(new DataView(reply.buffer).getBigUint64(40)).toBe(unixNsToNtp(TX_NS));
  });

  it('keeps the dispersion at least the precision on a master whose bound is 0', () => {
    const master: ClockSnapshot = { ...memberClock, ...clusterIdentity('master', null), errorBoundNs: 0, rootDelayNs: 0 };
    const header = readHeader(buildServerReply(clientRequest(), RX_NS, master, () => TX_NS));
    expect(header.stratum).toBe(NTP_LOCAL_STRATUM_DEFAULT);
    expect(header.refid).toBe(REFID_CLUSTER_MASTER);
    expect(header.rootDelay).toBe(0);
    expect(ntpShortToNs(header.rootDispersion)).toBeGreaterThanOrEqual(2 ** -20 * 1e9);
  });
});

describe('cluster identity', () => {
  it('puts the master at the local stratum with refid BRKL and members one below, naming the master', () => {
    expect(clusterIdentity('master', null)).toEqual({ stratum: 10, refid: 0x4252_4b4c });
    expect(clusterIdentity('member', '198.18.0.1')).toEqual({ stratum: 11, refid: 0xc612_0001 });
    expect(clusterIdentity('member', 'fe80::1')).toEqual({ stratum: 11, refid: REFID_CLUSTER_MASTER });
    expect(clusterIdentity('member', null, 15)).toEqual({ stratum: 15, refid: REFID_CLUSTER_MASTER });
    expect(clusterIdentity('master', null, 3).stratum).toBe(3);
  });
});

describe('ntpClockSnapshot', () => {
  const base = { synchronized: true, masterAddress: '198.18.0.1', errorBoundNs: 40_000, measurementDelayNs: 70_000, lastCorrectionNs: 5n };
  it('announces a member (and an electing node) below the master, naming it, with its measurement delay', () => {
    for (const role of ['slave', 'electing'] as const) {
      expect(ntpClockSnapshot({ ...base, role })).toEqual({
        synchronized: true, stratum: 11, refid: 0xc612_0001, errorBoundNs: 40_000, rootDelayNs: 70_000, referenceTimeNs: 5n, precisionLog2: -20,
      });
    }
  });
  it('announces the master at the local stratum with no root delay', () => {
    expect(ntpClockSnapshot({ ...base, role: 'master', errorBoundNs: 0, localStratum: 8 })).toMatchObject({ stratum: 8, refid: REFID_CLUSTER_MASTER, rootDelayNs: 0, errorBoundNs: 0 });
  });
  it('passes unsynchronized through, so the reply carries the alarm', () => {
    const snapshot = ntpClockSnapshot({ ...base, role: 'slave', synchronized: false, errorBoundNs: null });
    expect(servesSynchronized(snapshot)).toBe(false);
    expect(readHeader(buildServerReply(clientRequest(), RX_NS, snapshot, () => TX_NS)).leap).toBe(3);
  });
});

describe('NTP server while the cluster follows an upstream (issue 18)', () => {
  const state = { synchronized: true, errorBoundNs: 50_000, measurementDelayNs: 90_000, lastCorrectionNs: CORRECTED_NS } as const;
  const upstream = { stratum: 2, leap: 0, peerAddress: '198.18.0.10' };

  it('the master serves one stratum below the upstream, with the system peer\'s address as refid', () => {
    const snapshot = ntpClockSnapshot({ ...state, role: 'master', masterAddress: null, upstream });
    expect(snapshot.stratum).toBe(3);
    expect(snapshot.refid).toBe(0xc612_000a);
    const header = readHeader(buildServerReply(clientRequest(), RX_NS, snapshot, () => TX_NS));
    expect(header).toMatchObject({ leap: 0, stratum: 3, refid: 0xc612_000a });
  });

  it('a member serves two strata below, its refid still its master\'s address', () => {
    const snapshot = ntpClockSnapshot({ ...state, role: 'slave', masterAddress: '198.18.0.3', upstream });
    expect(snapshot).toMatchObject({ stratum: 4, refid: 0xc612_0003 });
  });

  it('passes the upstream\'s leap warning on (insert or delete), never an alarm', () => {
    const insert = ntpClockSnapshot({ ...state, role: 'master', masterAddress: null, upstream: { ...upstream, leap: 1 } });
    expect(readHeader(buildServerReply(clientRequest(), RX_NS, insert, () => TX_NS)).leap).toBe(1);
    const remove = ntpClockSnapshot({ ...state, role: 'slave', masterAddress: '198.18.0.3', upstream: { ...upstream, leap: 2 } });
    expect(readHeader(buildServerReply(clientRequest(), RX_NS, remove, () => TX_NS)).leap).toBe(2);
    expect(ntpClockSnapshot({ ...state, role: 'master', masterAddress: null, upstream: { ...upstream, leap: 3 } }).leap).toBeUndefined();
  });

  it('caps the stratum at 15; without an upstream (or its address) it is the cluster\'s own identity', () => {
    expect(ntpClockSnapshot({ ...state, role: 'slave', masterAddress: '198.18.0.3', upstream: { ...upstream, stratum: 15 } }).stratum).toBe(15);
    expect(ntpClockSnapshot({ ...state, role: 'master', masterAddress: null, upstream: { ...upstream, peerAddress: null } }).refid).toBe(REFID_CLUSTER_MASTER);
    const own = ntpClockSnapshot({ ...state, role: 'master', masterAddress: null, upstream: null });
    expect(own).toMatchObject({ stratum: NTP_LOCAL_STRATUM_DEFAULT, refid: REFID_CLUSTER_MASTER });
    expect(own.leap).toBeUndefined();
  });

  it('the daemon\'s snapshot of a reading carries the upstream and the system peer\'s address', () => {
    const reading = {
      nowNs: RX_NS, synchronized: true, errorBoundNs: 0, measurementDelayNs: 0, role: 'master' as const, masterId: 'a', masterAddress: null,
      lastCorrectionNs: CORRECTED_NS, clockMode: 'virtual' as const, upstream: { stratum: 1, leap: 1 }, upstreamPeerAddress: '198.18.0.20',
    };
    expect(snapshotOf(reading)).toMatchObject({ stratum: 2, refid: 0xc612_0014, leap: 1 });
    expect(snapshotOf({ ...reading, upstream: null })).toMatchObject({ stratum: NTP_LOCAL_STRATUM_DEFAULT, refid: REFID_CLUSTER_MASTER });
  });
});
