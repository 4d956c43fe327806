// The upstream NTP client as a small process, for end-to-end tests in network namespaces (a test
// process cannot open a socket inside another namespace): `node --import tsx upstream-probe.ts
// JSON`. It starts, for `durationMs`:
// - optionally our own NTP server (src/net/ntp-server.ts) serving the host clock plus
//   `ntpServer.offsetNs` with a fixed, synchronized snapshot (a deliberate falseticker);
// - one startUpstreams() per run, each measuring a clock defined as the host's realtime plus
//   `clockOffsetNs` against its servers;
// then prints one JSON line: per run, status() and selection(). Never touches any clock.
import { HostClock } from '../../src/clock/host.ts';
import { startUpstreams, type Upstreams, type UpstreamServerAddress } from '../../src/net/ntp-client.ts';
import { startNtpServer } from '../../src/net/ntp-server.ts';

export interface ProbeRun {
  name: string;
  servers: UpstreamServerAddress[];
  clockOffsetNs: number;
}

export interface ProbeConfig {
  durationMs: number;
  pollIntervalMs: number;
  ntpServer?: { address: string; port: number; offsetNs: number };
  runs: ProbeRun[];
}

const quiet = { warn: () => {}, info: () => {} };

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as ProbeConfig;
  const hostClock = new HostClock();
  let server: { close(): Promise<void> } | null = null;
  if (config.ntpServer !== undefined) {
    const served = config.ntpServer;
    const offsetNs = BigInt(served.offsetNs);
    const started = await startNtpServer({
      port: served.port, address: served.address, logger: quiet, rateLimit: null,
      clock: {
        nowNs: () => hostClock.nowNs() + offsetNs,
        snapshot: () => ({ synchronized: true, stratum: 10, refid: 0x4252_4b4c, errorBoundNs: 100_000, rootDelayNs: 0, referenceTimeNs: hostClock.nowNs() + offsetNs - 1_000_000_000n, precisionLog2: -20 }),
      },
    });
    if (!started.ok) throw new Error(started.warning);
    server = started.server;
  }
  const upstreams: Upstreams[] = [];
  for (const run of config.runs) {
    const offsetNs = BigInt(run.clockOffsetNs);
    upstreams.push(await startUpstreams({
      servers: run.servers, clock: { nowNs: () => hostClock.nowNs() + offsetNs }, logger: quiet, pollIntervalMs: config.pollIntervalMs,
    }));
  }
  await new Promise((resolve) => setTimeout(resolve, config.durationMs));
  const results = config.runs.map((run, index) => {
    const upstream = upstreams[index] as Upstreams;
    return { name: run.name, status: upstream.status(), selection: upstream.selection(), rxTimestamps: upstream.rxTimestamps, counters: upstream.counters };
  });
  for (const upstream of upstreams) await upstream.close();
  await server?.close();
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`upstream-probe: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
