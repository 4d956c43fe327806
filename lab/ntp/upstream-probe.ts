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
import { loadLibc } from '../../src/native/libc.ts';

/**
 * HostClock (hrtime anchored on Date.now's millisecond edges) minus the kernel's CLOCK_REALTIME,
 * ns: the median of bracketed readings; null without koffi. Part of any offset the client
 * measures against a server that serves the real clock (chronyd), so benchmarks report it.
 */
function hostClockMinusRealtimeNs(hostClock: HostClock): number | null {
  const loaded = loadLibc();
  if ('error' in loaded) return null;
  const clockGettime = loaded.libc.func('int clock_gettime(int clock, _Out_ void *out)');
  const buffer = Buffer.alloc(16);
  const differences: number[] = [];
  for (let index = 0; index < 101; index += 1) {
    const before = hostClock.nowNs();
    clockGettime(0, buffer);
    const after = hostClock.nowNs();
    const realNs = buffer.readBigInt64LE(0) * 1_000_000_000n + buffer.readBigInt64LE(8);
    differences.push(Number((before + after) / 2n - realNs));
  }
  differences.sort((a, b) => a - b);
  return differences[50] as number;
}

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
  /** Also report every sample taken (for benchmarks). */
  samples?: boolean;
}

export interface ProbeSample {
  id: string;
  offsetNs: number;
  delayNs: number;
  atMs: number;
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
  const samples: ProbeSample[][] = config.runs.map(() => []);
  for (const [index, run] of config.runs.entries()) {
    const offsetNs = BigInt(run.clockOffsetNs);
    const taken = samples[index] as ProbeSample[];
    upstreams.push(await startUpstreams({
      servers: run.servers, clock: { nowNs: () => hostClock.nowNs() + offsetNs }, logger: quiet, pollIntervalMs: config.pollIntervalMs,
      onSample: config.samples === true ? (id, sample) => taken.push({ id, offsetNs: sample.offsetNs, delayNs: sample.delayNs, atMs: sample.atMs }) : undefined,
    }));
  }
  await new Promise((resolve) => setTimeout(resolve, config.durationMs));
  const results = config.runs.map((run, index) => {
    const upstream = upstreams[index] as Upstreams;
    return {
      name: run.name, status: upstream.status(), selection: upstream.selection(), rxTimestamps: upstream.rxTimestamps, counters: upstream.counters,
      ...(config.samples === true ? { samples: samples[index] } : {}),
    };
  });
  for (const upstream of upstreams) await upstream.close();
  await server?.close();
  process.stdout.write(`${JSON.stringify({ results, hostClockMinusRealtimeNs: hostClockMinusRealtimeNs(hostClock), anchorErrorNs: hostClock.anchorErrorNs })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`upstream-probe: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
