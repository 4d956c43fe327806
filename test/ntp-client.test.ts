// The NTP client's socket (src/net/ntp-client.ts) on loopback against our own NTP server
// (src/net/ntp-server.ts) serving this host's clock + 5 ms: it resolves `localhost` (from
// /etc/hosts, no network), sends a burst, measures +5 ms (server ahead: positive) within half the
// round trip, reads the stratum we serve, selects the server, and stops cleanly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostClock } from '../src/clock/host.ts';
import { startUpstreams } from '../src/net/ntp-client.ts';
import { startNtpServer, type NtpServer } from '../src/net/ntp-server.ts';

const SERVED_OFFSET_NS = 5_000_000n;
const quiet = { warn: () => {}, info: () => {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('NTP client socket on loopback', () => {
  const hostClock = new HostClock();
  let server: NtpServer;

  beforeAll(async () => {
    const started = await startNtpServer({
      port: 0, address: '127.0.0.1', logger: quiet,
      clock: {
        nowNs: () => hostClock.nowNs() + SERVED_OFFSET_NS,
        snapshot: () => ({ synchronized: true, stratum: 7, refid: 0x7f00_0001, errorBoundNs: 50_000, rootDelayNs: 20_000, referenceTimeNs: hostClock.nowNs(), precisionLog2: -20 }),
      },
    });
    if (!started.ok) throw new Error(started.warning);
    server = started.server;
  });

  afterAll(async () => {
    await server?.close();
  });

  it('measures the served offset, reads the stratum and selects the server', async () => {
    const logged: string[] = [];
    const samples: string[] = [];
    const upstreams = await startUpstreams({
      servers: [{ host: 'localhost', port: server.port }],
      clock: { nowNs: () => hostClock.nowNs() },
      logger: { warn: (_object, message) => logged.push(message), info: (_object, message) => logged.push(message) },
      pollIntervalMs: 1_000,
      client: { burstRequests: 6, burstIntervalMs: 50 },
      onSample: (id) => samples.push(id),
    });
    try {
      const deadlineMs = Date.now() + 10_000;
      while ((upstreams.status()[0]?.samples ?? 0) < 6 && Date.now() < deadlineMs) await sleep(20);
      const [status] = upstreams.status();
      expect(status).toMatchObject({ id: `localhost:${server.port}`, address: '127.0.0.1', stratum: 7, reachable: true, reach: 0b111111, samples: 6 });
      expect(samples).toEqual(Array(6).fill(`localhost:${server.port}`));
      const errorNs = (status?.offsetNs as number) - Number(SERVED_OFFSET_NS);
      expect(Math.abs(errorNs)).toBeLessThanOrEqual((status?.delayNs as number) / 2 + 20_000);
      const selection = upstreams.selection();
      expect(selection).toMatchObject({ ok: true, selected: [`localhost:${server.port}`], stratum: 7 });
      expect(logged).toEqual(expect.arrayContaining(['upstream NTP server resolved', 'upstream NTP server reachable']));
      expect(upstreams.counters.unknownSource).toBe(0);
    } finally {
      await upstreams.close();
    }
    // Closed: no more requests go out.
    const requestsBefore = server.counters.requests;
    await sleep(1_200);
    expect(server.counters.requests).toBe(requestsBefore);
  });

  it('refuses more servers than UPSTREAMS_MAX', async () => {
    const servers = Array.from({ length: 9 }, (_, index) => ({ host: '127.0.0.1', port: 10_000 + index }));
    await expect(startUpstreams({ servers, clock: hostClock, logger: quiet })).rejects.toThrow(/at most 8 upstream servers/);
  });
});
