// The NTP server's socket (src/net/ntp-server.ts) on loopback: answers a client request with the
// served clock's stamps, drops what it must not answer (short, wrong mode, over the rate limit)
// and counts it by reason, and reports a busy port as a warning instead of throwing.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { HostClock } from '../src/clock/host.ts';
import { NTP_HEADER_BYTES, ntpToUnixNs, readHeader } from '../src/ntp/packet.ts';
import type { ClockSnapshot } from '../src/ntp/server-reply.ts';
import { startNtpServer, type NtpServer, type NtpServerLogger } from '../src/net/ntp-server.ts';

const silent: NtpServerLogger = { warn: () => {}, info: () => {} };
/** A served clock 2.5 ms ahead of the host's, synchronized, member of a cluster. */
const OFFSET_NS = 2_500_000n;
const hostClock = new HostClock();
const clock = {
  nowNs: () => hostClock.nowNs() + OFFSET_NS,
  snapshot: (): ClockSnapshot => ({ synchronized: true, stratum: 11, refid: 0xc612_0001, errorBoundNs: 50_000, rootDelayNs: 60_000, referenceTimeNs: null, precisionLog2: -20 }),
};

function clientRequest(length = NTP_HEADER_BYTES, firstByte = 0x23): Buffer {
  const bytes = Buffer.alloc(length);
  bytes[0] = firstByte;
  if (length >= NTP_HEADER_BYTES) bytes.writeBigUInt64BE(0x1122_3344_5566_7788n, 40);
  return bytes;
}

/** Sends each datagram and collects what comes back within `waitMs`. */
async function exchange(port: number, datagrams: Buffer[], waitMs = 300): Promise<Buffer[]> {
  const socket = dgram.createSocket('udp4');
  const replies: Buffer[] = [];
  socket.on('message', (message) => replies.push(message));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  for (const datagram of datagrams) socket.send(datagram, port, '127.0.0.1');
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  socket.close();
  return replies;
}

const servers: NtpServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function start(options: Partial<Parameters<typeof startNtpServer>[0]> = {}): Promise<NtpServer> {
  const started = await startNtpServer({ port: 0, address: '127.0.0.1', clock, logger: silent, ...options });
  if (!started.ok) throw new Error(started.warning);
  servers.push(started.server);
  return started.server;
}

describe('NTP server socket', () => {
  it('answers a client request with 48 bytes, the origin echoed and stamps from the served clock', async () => {
    const server = await start();
    const before = BigInt(Date.now()) * 1_000_000n;
    const [reply, ...more] = await exchange(server.port, [clientRequest(NTP_HEADER_BYTES + 20)]);
    const after = BigInt(Date.now() + 1) * 1_000_000n;
    expect(more).toEqual([]);
    expect(reply?.byteLength).toBe(NTP_HEADER_BYTES);
    const header = readHeader(reply as Buffer);
    expect(header).toMatchObject({ leap: 0, version: 4, mode: 4, stratum: 11, refid: 0xc612_0001 });
    expect(header.originTs).toBe(0x1122_3344_5566_7788n);
    const rxNs = ntpToUnixNs(header.receiveTs);
    const txNs = ntpToUnixNs(header.transmitTs);
    expect(txNs).toBeGreaterThanOrEqual(rxNs);
    // The served clock is 2.5 ms ahead of the host's: the stamps are too.
    expect(rxNs).toBeGreaterThanOrEqual(before + OFFSET_NS - 1_000_000n);
    expect(txNs).toBeLessThanOrEqual(after + OFFSET_NS + 1_000_000n);
    expect(server.counters).toMatchObject({ requests: 1, replies: 1, repliesUnsynchronized: 0 });
    expect(server.counters.rxStampedByKernel + server.counters.rxStampedByUser).toBe(1);
    if (server.rxTimestamps === 'kernel') expect(server.counters.rxStampedByKernel).toBe(1);
    else console.warn(`[ntp-server.test] kernel receive stamps unavailable: ${server.rxTimestampsWhyNot}`);
  });

  it('answers with the alarm while the served clock is not synchronized, and counts it', async () => {
    const server = await start({ clock: { nowNs: clock.nowNs, snapshot: () => ({ ...clock.snapshot(), synchronized: false, errorBoundNs: null }) } });
    const [reply] = await exchange(server.port, [clientRequest()]);
    expect(readHeader(reply as Buffer)).toMatchObject({ leap: 3, stratum: 0 });
    expect(server.counters).toMatchObject({ replies: 1, repliesUnsynchronized: 1 });
  });

  it('does not answer short, misaligned, wrong-version or non-client packets, and counts each reason', async () => {
    const server = await start();
    const replies = await exchange(server.port, [
      clientRequest(47),
      clientRequest(NTP_HEADER_BYTES + 2),
      clientRequest(NTP_HEADER_BYTES, 0x13), // version 2
      clientRequest(NTP_HEADER_BYTES, 0x24), // server mode
      clientRequest(NTP_HEADER_BYTES, 0x26), // mode 6 (control, ntpq)
      clientRequest(NTP_HEADER_BYTES, 0x17), // version 2, mode 7 (monlist): refused for its version
    ]);
    expect(replies).toEqual([]);
    expect(server.counters.requests).toBe(6);
    expect(server.counters.replies).toBe(0);
    expect(server.counters.dropped).toMatchObject({ short: 1, misaligned: 1, version: 2, mode: 2 });
  });

  it('rate-limits a client beyond its burst, leaking one in 2^leak, and counts the drops', async () => {
    const server = await start({ rateLimit: { intervalMs: 60_000, burst: 3, leakLog2: 2 }, rateLimitExempt: () => false });
    const replies = await exchange(server.port, Array.from({ length: 11 }, () => clientRequest()));
    // 3 in the burst; of the 8 over it, the 4th and 8th leak.
    expect(replies.length).toBe(5);
    expect(server.counters).toMatchObject({ requests: 11, replies: 5, rateLimitLeaked: 2 });
    expect(server.counters.dropped.rateLimited).toBe(6);
  });

  it('does not rate-limit loopback clients by default', async () => {
    const server = await start({ rateLimit: { intervalMs: 60_000, burst: 1, leakLog2: null } });
    const replies = await exchange(server.port, Array.from({ length: 4 }, () => clientRequest()));
    expect(replies.length).toBe(4);
    expect(server.counters.dropped.rateLimited).toBe(0);
  });

  it('returns a warning, not an exception, when the port is taken', async () => {
    const first = await start();
    const second = await startNtpServer({ port: first.port, address: '127.0.0.1', clock, logger: silent });
    expect(second.ok).toBe(false);
    if (!second.ok) {
      expect(second.code).toBe('EADDRINUSE');
      expect(second.warning).toContain(`127.0.0.1:${first.port}`);
    }
    // The first server still answers.
    expect((await exchange(first.port, [clientRequest()])).length).toBe(1);
  });
});

