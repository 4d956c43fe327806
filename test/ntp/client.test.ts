// The upstream NTP client (src/ntp/client.ts), driven by a scripted server: requests are client
// mode v4 with our clock as transmit stamp; replies are matched by origin (bogus, duplicate
// dropped); kiss-o'-death RATE backs off and DENY stops; unsynchronized and insane headers give
// no sample; bursts at start; the reach register; the filter picks the newest sample whose delay
// is not poor (the newest once a streak of poor ones is long), and the offset has the sign
// "server minus us"; a reply straddling a move of our
// clock measures the moved clock.
import { describe, expect, it } from 'vitest';
import { POOR_SAMPLE_STREAK_MAX, UPSTREAM_ROOT_DISTANCE_NS_MAX } from '../../src/core/limits.ts';
import { kissCode, UpstreamClient } from '../../src/ntp/client.ts';
import { asciiRefid, NTP_HEADER_BYTES, NtpMode, nsToNtpShort, parseRequest, readHeader, unixNsToNtp, writeHeader, type NtpHeader } from '../../src/ntp/packet.ts';
import { buildServerReply, REFID_CLUSTER_MASTER, type ClockSnapshot } from '../../src/ntp/server-reply.ts';

const T0_NS = 1_700_000_000_000_000_000n;

interface ServerScript {
  /** Server clock minus ours, ns. */
  offsetNs: bigint;
  /** One-way delays, ns. */
  outNs?: bigint;
  backNs?: bigint;
  /** Time the server holds the request, ns. */
  holdNs?: bigint;
  header?: Partial<NtpHeader>;
}

/** Sends one request at our clock `atNs` (monotonic ms `atMs`) and builds the server's reply; returns reply and our arrival stamp. */
function exchange(client: UpstreamClient, atMs: number, atNs: bigint, script: ServerScript): { reply: Uint8Array; rxNs: bigint; request: Uint8Array } {
  const request = client.request(atMs, () => atNs);
  if (request === null) throw new Error('no request');
  const sent = readHeader(request);
  const outNs = script.outNs ?? 100_000n;
  const backNs = script.backNs ?? 100_000n;
  const holdNs = script.holdNs ?? 10_000n;
  const t2 = atNs + outNs + script.offsetNs;
  const t3 = t2 + holdNs;
  const reply = writeHeader({
    leap: 0, version: 4, mode: NtpMode.server, stratum: 1, poll: sent.poll, precision: -20,
    rootDelay: 0, rootDispersion: nsToNtpShort(20_000), refid: asciiRefid('GPS'),
    referenceTs: unixNsToNtp(t2 - 1_000_000_000n), originTs: sent.transmitTs, receiveTs: unixNsToNtp(t2), transmitTs: unixNsToNtp(t3),
    ...script.header,
  });
  return { reply, rxNs: atNs + outNs + holdNs + backNs, request };
}

/** Drives the client through `count` exchanges as the shell would (each when due). */
function run(client: UpstreamClient, count: number, script: ServerScript | ((index: number) => ServerScript), startMs = 0): number {
  let nowMs = startMs;
  for (let index = 0; index < count; index += 1) {
    const dueMs = client.nextRequestAtMs();
    if (dueMs === null) break;
    nowMs = Math.max(nowMs, dueMs);
    const { reply, rxNs } = exchange(client, nowMs, T0_NS + BigInt(nowMs) * 1_000_000n, typeof script === 'function' ? script(index) : script);
    client.receive(reply, rxNs, nowMs + 1);
  }
  return nowMs;
}

describe('requests', () => {
  it('are 48-byte NTPv4 client-mode packets carrying our clock as transmit stamp', () => {
    const client = new UpstreamClient({ pollIntervalMs: 16_000 });
    const bytes = client.request(0, () => T0_NS) as Uint8Array;
    expect(bytes.byteLength).toBe(NTP_HEADER_BYTES);
    const header = readHeader(bytes);
    expect(header).toMatchObject({ version: 4, mode: NtpMode.client, originTs: 0n, receiveTs: 0n, poll: 4 });
    expect(header.transmitTs).toBe(unixNsToNtp(T0_NS));
  });

  it('start with a burst 2 s apart, then one per poll interval', () => {
    const client = new UpstreamClient({ pollIntervalMs: 16_000, burstRequests: 4, burstIntervalMs: 2_000 });
    const sentAtMs: number[] = [];
    let nowMs = 0;
    for (let index = 0; index < 7; index += 1) {
      nowMs = Math.max(nowMs, client.nextRequestAtMs() as number);
      sentAtMs.push(nowMs);
      const { reply, rxNs } = exchange(client, nowMs, T0_NS + BigInt(nowMs) * 1_000_000n, { offsetNs: 0n });
      expect(client.receive(reply, rxNs, nowMs).ok).toBe(true);
      expect(client.report(nowMs).state).toBe(index < 3 ? 'burst' : 'polling');
    }
    expect(sentAtMs).toEqual([0, 2_000, 4_000, 6_000, 22_000, 38_000, 54_000]);
  });

  it('send a new burst at a poll when the server was lost (reach emptied), not before', () => {
    const client = new UpstreamClient({ pollIntervalMs: 16_000, burstRequests: 3, burstIntervalMs: 2_000 });
    let nowMs = run(client, 3, { offsetNs: 0n });
    // Silence: 8 requests unanswered empty the register.
    for (let index = 0; index < 8; index += 1) {
      nowMs = client.nextRequestAtMs() as number;
      client.request(nowMs, () => T0_NS);
    }
    expect(client.report(nowMs).reach).toBe(0);
    // The next poll starts a burst.
    const pollMs = client.nextRequestAtMs() as number;
    expect(pollMs - nowMs).toBe(16_000);
    client.request(pollMs, () => T0_NS);
    expect(client.report(pollMs).state).toBe('burst');
    expect((client.nextRequestAtMs() as number) - pollMs).toBe(2_000);
  });
});

describe('replies', () => {
  it('give offset = server minus us and delay = round trip without the hold time', () => {
    const client = new UpstreamClient();
    const { reply, rxNs } = exchange(client, 0, T0_NS, { offsetNs: 3_000_000n, outNs: 200_000n, backNs: 200_000n, holdNs: 50_000n });
    const outcome = client.receive(reply, rxNs, 1);
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    // NTP's 2^-32 s fraction rounds each stamp to within 0.12 ns.
    expect(Math.abs(outcome.sample.offsetNs - 3_000_000)).toBeLessThan(1);
    expect(Math.abs(outcome.sample.delayNs - 400_000)).toBeLessThan(1);
    const report = client.report(1);
    expect(report.server).toMatchObject({ stratum: 1, leap: 0, refid: asciiRefid('GPS') });
    expect(report.reach).toBe(1);
  });

  it('a server behind us gives a negative offset; asymmetric paths err by half the difference', () => {
    const client = new UpstreamClient();
    const { reply, rxNs } = exchange(client, 0, T0_NS, { offsetNs: -5_000_000n, outNs: 300_000n, backNs: 100_000n });
    const outcome = client.receive(reply, rxNs, 1);
    expect(outcome.ok && Math.round(outcome.sample.offsetNs)).toBe(-5_000_000 + 100_000);
  });

  it('are matched by origin: a reply to an older request is bogus, a second reply a duplicate', () => {
    const client = new UpstreamClient();
    const first = exchange(client, 0, T0_NS, { offsetNs: 0n });
    const second = exchange(client, 2_000, T0_NS + 2_000_000_000n, { offsetNs: 0n });
    // The first request is no longer outstanding.
    expect(client.receive(first.reply, first.rxNs, 2_001)).toEqual({ ok: false, reason: 'bogus' });
    expect(client.receive(second.reply, second.rxNs, 2_001).ok).toBe(true);
    expect(client.receive(second.reply, second.rxNs, 2_002)).toEqual({ ok: false, reason: 'duplicate' });
    // A reply nobody asked for (origin zero, or any other value).
    const stray = writeHeader({ ...readHeader(second.reply), originTs: 12345n });
    expect(client.receive(stray, second.rxNs, 2_003)).toEqual({ ok: false, reason: 'bogus' });
    const report = client.report(2_003);
    expect(report.counters.rejected).toMatchObject({ bogus: 2, duplicate: 1 });
    expect(report.counters.samples).toBe(1);
    expect(report.filterSamples).toBe(1);
  });

  it('drops short packets, other versions and other modes', () => {
    const client = new UpstreamClient();
    const { reply, rxNs } = exchange(client, 0, T0_NS, { offsetNs: 0n });
    expect(client.receive(reply.subarray(0, 47), rxNs, 1)).toEqual({ ok: false, reason: 'short' });
    expect(client.receive(writeHeader({ ...readHeader(reply), version: 2 }), rxNs, 1)).toEqual({ ok: false, reason: 'version' });
    expect(client.receive(writeHeader({ ...readHeader(reply), mode: NtpMode.client }), rxNs, 1)).toEqual({ ok: false, reason: 'mode' });
    // None of those consumed the outstanding request.
    expect(client.receive(reply, rxNs, 1).ok).toBe(true);
  });

  it.each([
    ['leap indicator 3', { leap: 3 as const }, 'unsynchronized'],
    ['stratum 16', { stratum: 16 }, 'unsynchronized'],
    ['stratum 0 without a kiss code', { stratum: 0, refid: 0 }, 'unsynchronized'],
    ['a zero transmit timestamp', { transmitTs: 0n }, 'zeroTimestamp'],
    ['a zero receive timestamp', { receiveTs: 0n }, 'zeroTimestamp'],
    ['a reference time after the transmit time', { referenceTs: unixNsToNtp(T0_NS + 10_000_000_000n) }, 'badHeader'],
    ['a root distance beyond the maximum', { rootDispersion: nsToNtpShort(UPSTREAM_ROOT_DISTANCE_NS_MAX) }, 'rootDistance'],
  ])('reject %s: no sample, no reach', (_name, header, reason) => {
    const client = new UpstreamClient();
    const { reply, rxNs } = exchange(client, 0, T0_NS, { offsetNs: 0n, header });
    expect(client.receive(reply, rxNs, 1)).toEqual({ ok: false, reason });
    const report = client.report(1);
    expect(report.reach).toBe(0);
    expect(report.offsetNs).toBeNull();
    expect(report.lastRejectReason).toBe(reason);
    expect(client.candidate('s', 1)).toMatchObject({ usable: false, exclusion: 'unreachable' });
  });

  it('rejects a stratum above the configured maximum', () => {
    const client = new UpstreamClient({ stratumMax: 3 });
    const { reply, rxNs } = exchange(client, 0, T0_NS, { offsetNs: 0n, header: { stratum: 4 } });
    expect(client.receive(reply, rxNs, 1)).toEqual({ ok: false, reason: 'stratum' });
  });

  it('a server that loses its reference is excluded as unsynchronized although still reachable', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    const nowMs = run(client, 3, (index) => ({ offsetNs: 0n, header: index === 2 ? { leap: 3 } : {} }));
    expect(client.report(nowMs).reachable).toBe(true);
    expect(client.candidate('a', nowMs)).toMatchObject({ usable: false, exclusion: 'unsynchronized' });
  });
});

describe("kiss-o'-death", () => {
  const kiss = (code: string) => ({ offsetNs: 0n, header: { stratum: 0, leap: 3 as const, refid: asciiRefid(code) } });

  it('reads kiss codes: four ASCII capitals only', () => {
    expect(kissCode(asciiRefid('RATE'))).toBe('RATE');
    expect(kissCode(0)).toBeNull();
    expect(kissCode(0xc0a8_0001)).toBeNull();
  });

  it('RATE doubles the poll interval at each kiss, with no burst', () => {
    const client = new UpstreamClient({ pollIntervalMs: 16_000, burstRequests: 4 });
    const first = exchange(client, 0, T0_NS, kiss('RATE'));
    expect(client.receive(first.reply, first.rxNs, 10)).toEqual({ ok: false, reason: 'kissRate' });
    expect(client.report(10)).toMatchObject({ state: 'backoff', pollIntervalMs: 32_000, kissCode: 'RATE' });
    expect(client.nextRequestAtMs()).toBe(10 + 32_000);
    const second = exchange(client, 32_010, T0_NS, kiss('RATE'));
    client.receive(second.reply, second.rxNs, 32_020);
    expect(client.report(32_020).pollIntervalMs).toBe(64_000);
    expect(client.nextRequestAtMs()).toBe(32_020 + 64_000);
  });

  it.each(['DENY', 'RSTR'])('%s stops the client for good', (code) => {
    const client = new UpstreamClient();
    const { reply, rxNs } = exchange(client, 0, T0_NS, kiss(code));
    expect(client.receive(reply, rxNs, 1)).toEqual({ ok: false, reason: 'kissDeny' });
    expect(client.nextRequestAtMs()).toBeNull();
    expect(client.request(5_000, () => T0_NS)).toBeNull();
    expect(client.report(1)).toMatchObject({ state: 'denied', kissCode: code });
    expect(client.candidate('s', 1)).toMatchObject({ usable: false, exclusion: 'rejected' });
  });

  it('a DENY that does not answer our request (spoofed) is ignored', () => {
    const client = new UpstreamClient();
    const { reply, rxNs } = exchange(client, 0, T0_NS, kiss('DENY'));
    const spoofed = writeHeader({ ...readHeader(reply), originTs: readHeader(reply).originTs + 1n });
    expect(client.receive(spoofed, rxNs, 1)).toEqual({ ok: false, reason: 'bogus' });
    expect(client.nextRequestAtMs()).not.toBeNull();
    expect(client.report(1).state).not.toBe('denied');
  });
});

describe('reach register', () => {
  it('shifts at each request and fills with answered ones; emptied after 8 unanswered', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    let nowMs = run(client, 3, { offsetNs: 0n });
    expect(client.report(nowMs).reach).toBe(0b111);
    // One lost, then answered again.
    nowMs = client.nextRequestAtMs() as number;
    client.request(nowMs, () => T0_NS);
    nowMs = run(client, 1, { offsetNs: 0n }, nowMs);
    expect(client.report(nowMs).reach).toBe(0b11101);
    nowMs = run(client, 8, { offsetNs: 0n }, nowMs);
    expect(client.report(nowMs).reach).toBe(0xff);
    for (let index = 0; index < 8; index += 1) client.request(nowMs + index, () => T0_NS);
    expect(client.report(nowMs).reach).toBe(0);
    expect(client.report(nowMs).reachable).toBe(false);
    expect(client.candidate('s', nowMs)).toMatchObject({ usable: false, exclusion: 'unreachable' });
  });
});

describe('filter', () => {
  it('stands for the server with the least-delay sample of the last N', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1, filterSamples: 4 });
    // Queued samples: delay up, offset off by half the asymmetric excess.
    const delaysNs = [900_000n, 400_000n, 2_000_000n, 150_000n, 700_000n];
    const nowMs = run(client, delaysNs.length, (index) => ({ offsetNs: 1_000_000n, outNs: delaysNs[index] as bigint, backNs: 50_000n }));
    const report = client.report(nowMs);
    expect(report.filterSamples).toBe(4);
    expect(Math.round(report.delayNs as number)).toBe(200_000);
    expect(Math.round(report.offsetNs as number)).toBe(1_000_000 + 50_000);
    // The least-delay sample ages out of the 4-sample window after 4 more.
    const later = run(client, 4, { offsetNs: 1_000_000n, outNs: 1_000_000n, backNs: 1_000_000n }, nowMs);
    expect(Math.round(client.report(later).delayNs as number)).toBe(2_000_000);
  });

  it('root distance = (root delay + delay) / 2 + root dispersion + dispersion + jitter, and grows with age', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    const nowMs = run(client, 2, (index) => ({
      offsetNs: index === 0 ? 1_000_000n : 1_100_000n, outNs: index === 0 ? 100_000n : 200_000n, backNs: index === 0 ? 100_000n : 200_000n,
      header: { rootDelay: nsToNtpShort(1_000_000), rootDispersion: nsToNtpShort(500_000) },
    }));
    const report = client.report(nowMs);
    // Two samples are too few to call one queued: the newest stands for the server.
    expect(Math.round(report.offsetNs as number)).toBe(1_100_000);
    expect(Math.round(report.jitterNs as number)).toBe(100_000);
    const rootDelayNs = report.server?.rootDelayNs as number;
    const rootDispersionNs = report.server?.rootDispersionNs as number;
    const expectedNs = (rootDelayNs + (report.delayNs as number)) / 2 + rootDispersionNs + (report.dispersionNs as number) + 100_000;
    expect(report.rootDistanceNs).toBeCloseTo(expectedNs, 3);
    expect(report.rootDistanceNs as number).toBeGreaterThan(1_000_000 / 2 + 500_000 + 100_000 / 2 + 100_000);
    // 100 s after the sample (taken at nowMs + 1): 15 ppm of 100 s = 1.5 ms more.
    const later = client.report(nowMs + 100_001);
    expect((later.rootDistanceNs as number) - (client.report(nowMs + 1).rootDistanceNs as number)).toBeCloseTo(1_500_000, 0);
    // The sample was taken at nowMs + 1 (run() receives 1 ms after sending).
    expect(later.lastSampleAgoMs).toBe(100_000);
  });

  it('the filter takes the newest sample, unless its delay is far above the kept minimum (queued): then the newest good one', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    // Delays 200, 220, 240 us, then a queued 5 ms one: the 240 us sample (offset 3) stands.
    const delaysNs = [100_000n, 110_000n, 120_000n, 2_500_000n];
    let nowMs = run(client, 4, (index) => ({ offsetNs: BigInt(1_000_000 * (index + 1)), outNs: delaysNs[index] as bigint, backNs: delaysNs[index] as bigint }));
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(3_000_000);
    expect(client.report(nowMs).chosenSampleAtMs).toBeLessThan(nowMs - 500);
    // A fresh good sample takes over at once (not the old least-delay one).
    nowMs = run(client, 1, { offsetNs: 7_000_000n, outNs: 115_000n, backNs: 115_000n }, nowMs);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(7_000_000);
  });

  it('never starves the server: once more than POOR_SAMPLE_STREAK_MAX newest samples in a row are poor, the newest stands', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    // Three quiet samples (offsets 1, 2, 3 ms), then the path (or the box) gets slow for good.
    let nowMs = run(client, 3, (index) => ({ offsetNs: BigInt(1_000_000 * (index + 1)), outNs: 100_000n, backNs: 100_000n }));
    const slow = (offsetMs: number) => ({ offsetNs: BigInt(offsetMs * 1_000_000), outNs: 1_000_000n, backNs: 1_000_000n });
    for (let streak = 1; streak <= POOR_SAMPLE_STREAK_MAX; streak += 1) {
      nowMs = run(client, 1, slow(10 + streak), nowMs);
      expect(Math.round(client.report(nowMs).offsetNs as number), `poor sample ${streak} of a streak is passed over`).toBe(3_000_000);
    }
    nowMs = run(client, 1, slow(20), nowMs);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(20_000_000);
    // Still slow: each newest sample stands (the kept minimum is the old quiet one until it ages out).
    nowMs = run(client, 1, slow(21), nowMs);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(21_000_000);
    // Quiet again: a good sample takes over at once, and a lone poor one after it is passed over.
    nowMs = run(client, 1, { offsetNs: 5_000_000n, outNs: 100_000n, backNs: 100_000n }, nowMs);
    nowMs = run(client, 1, slow(30), nowMs);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(5_000_000);
  });

  it('a usable candidate carries offset, root distance, stratum and leap', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    const nowMs = run(client, 3, { offsetNs: 3_000_000n, header: { stratum: 2, leap: 1 } });
    const candidate = client.candidate('ntp1', nowMs);
    expect(candidate).toMatchObject({ id: 'ntp1', usable: true, stratum: 2, leap: 1 });
    expect(candidate.usable && Math.round(candidate.offsetNs)).toBe(3_000_000);
  });

  it('a candidate whose root distance grew beyond the maximum is rejected', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1, rootDistanceNsMax: 2_000_000 });
    const nowMs = run(client, 1, { offsetNs: 0n });
    expect(client.candidate('s', nowMs).usable).toBe(true);
    // 15 ppm: 2 ms of growth takes about 133 s.
    expect(client.candidate('s', nowMs + 200_000)).toMatchObject({ usable: false, exclusion: 'rejected' });
  });
});

describe('options', () => {
  it('refuses out-of-range values where they are made', () => {
    expect(() => new UpstreamClient({ pollIntervalMs: 10 })).toThrow(/pollIntervalMs/);
    expect(() => new UpstreamClient({ burstRequests: 9 })).toThrow(/burstRequests/);
    expect(() => new UpstreamClient({ filterSamples: 0 })).toThrow(/filterSamples/);
  });
});

describe('against our own NTP server reply (src/ntp/server-reply.ts), as the simulator can use it', () => {
  it('reads the agent-as-server: offset, stratum, refid, and a root distance that covers its error bound', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    const snapshot: ClockSnapshot = { synchronized: true, stratum: 10, refid: REFID_CLUSTER_MASTER, errorBoundNs: 80_000, rootDelayNs: 0, referenceTimeNs: T0_NS - 1_000_000_000n, precisionLog2: -20 };
    const request = client.request(0, () => T0_NS) as Uint8Array;
    const parsed = parseRequest(request);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    // Server 2 ms ahead, 100 us each way, 10 us hold.
    const reply = buildServerReply(parsed.request, T0_NS + 100_000n + 2_000_000n, snapshot, () => T0_NS + 110_000n + 2_000_000n);
    expect(client.receive(reply, T0_NS + 210_000n, 1).ok).toBe(true);
    const candidate = client.candidate('agent', 1);
    expect(candidate).toMatchObject({ usable: true, stratum: 10 });
    if (!candidate.usable) return;
    expect(Math.round(candidate.offsetNs)).toBe(2_000_000);
    expect(client.report(1).server?.refid).toBe(REFID_CLUSTER_MASTER);
    // The server's error bound (80 us) plus half our delay (100 us).
    expect(candidate.rootDistanceNs).toBeGreaterThanOrEqual(80_000 + 100_000);
    // Unsynchronized: alarm, not followed.
    const again = client.request(1_000, () => T0_NS + 1_000_000_000n) as Uint8Array;
    const parsedAgain = parseRequest(again);
    if (!parsedAgain.ok) throw new Error('unparsable request');
    const alarm = buildServerReply(parsedAgain.request, T0_NS + 1_000_100_000n, { ...snapshot, synchronized: false, errorBoundNs: null }, () => T0_NS + 1_000_110_000n);
    expect(client.receive(alarm, T0_NS + 1_000_210_000n, 1_001)).toEqual({ ok: false, reason: 'unsynchronized' });
    expect(client.candidate('agent', 1_001)).toMatchObject({ usable: false, exclusion: 'unsynchronized' });
  });
});

describe('clockAdjusted', () => {
  it('shifts the kept samples by the move, and a reply that straddles a step measures the stepped clock', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    let nowMs = run(client, 3, { offsetNs: 3_000_000n });
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(3_000_000);
    // A request goes out, then our clock is stepped 3 ms forward before the reply (the master
    // steered on another server's reply meanwhile): its arrival stamp is 3 ms later.
    nowMs = client.nextRequestAtMs() as number;
    const { reply, rxNs } = exchange(client, nowMs, T0_NS + BigInt(nowMs) * 1_000_000n, { offsetNs: 3_000_000n });
    client.clockAdjusted(3_000_000);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(0);
    const outcome = client.receive(reply, rxNs + 3_000_000n, nowMs + 1);
    if (!outcome.ok) throw new Error(`dropped: ${outcome.reason}`);
    // Server minus the stepped clock: 0; the round trip is the path's 200 us, not the step's 3 ms.
    expect(Math.round(outcome.sample.offsetNs)).toBe(0);
    expect(Math.round(outcome.sample.delayNs)).toBe(200_000);
    expect(Math.round(client.report(nowMs + 1).offsetNs as number)).toBe(0);
    // The next exchange measures the new offset directly: the filter agrees with it.
    nowMs = run(client, 1, { offsetNs: 0n }, nowMs);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(0);
  });

  it('a reply that straddles the start of a slew is kept as of the slew\'s end, as every sample is', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    const nowMs = run(client, 3, { offsetNs: 3_000_000n });
    const atMs = client.nextRequestAtMs() as number;
    const { reply, rxNs } = exchange(client, atMs, T0_NS + BigInt(atMs) * 1_000_000n, { offsetNs: 3_000_000n });
    // A slew of +2 ms begins; by the reply's arrival our clock has slewed 0.5 ms of it.
    client.clockAdjusted(2_000_000);
    const outcome = client.receive(reply, rxNs + 500_000n, atMs + 1, 1_500_000);
    if (!outcome.ok) throw new Error(`dropped: ${outcome.reason}`);
    // Once the slew is done our clock is 2 ms further: 1 ms behind the server.
    expect(Math.round(outcome.sample.offsetNs)).toBe(1_000_000);
    expect(Math.round(outcome.sample.delayNs)).toBe(200_000);
    expect(Math.round(client.report(nowMs).offsetNs as number)).toBe(1_000_000);
  });

  it('a request sent mid-slew measures the settled clock too', () => {
    const client = new UpstreamClient({ pollIntervalMs: 1_000, burstRequests: 1 });
    const atMs = client.nextRequestAtMs() as number;
    // 1 ms still to slew when the request goes out, 0.99 ms when the reply arrives (the clock
    // slewed 10 us on the way): both stamps say the same of the settled clock.
    const request = client.request(atMs, () => T0_NS, 1_000_000);
    if (request === null) throw new Error('no request');
    const sent = readHeader(request);
    const t2 = T0_NS + 100_000n + 5_000_000n;
    const reply = writeHeader({
      leap: 0, version: 4, mode: NtpMode.server, stratum: 1, poll: sent.poll, precision: -20, rootDelay: 0, rootDispersion: nsToNtpShort(20_000),
      refid: asciiRefid('GPS'), referenceTs: unixNsToNtp(t2 - 1_000_000_000n), originTs: sent.transmitTs, receiveTs: unixNsToNtp(t2), transmitTs: unixNsToNtp(t2 + 10_000n),
    });
    const outcome = client.receive(reply, T0_NS + 210_000n + 10_000n, atMs + 1, 990_000);
    if (!outcome.ok) throw new Error(`dropped: ${outcome.reason}`);
    // The server is 5 ms ahead of the clock as it read; 1 ms of that is still to be slewed.
    expect(Math.round(outcome.sample.offsetNs)).toBe(4_000_000);
    expect(Math.round(outcome.sample.delayNs)).toBe(200_000);
  });
});

