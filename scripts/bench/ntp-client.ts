// NTP client precision against a real server (issue 18): Debian's chronyd -x (never touches the
// clock; `local stratum 1` serves this machine's clock) in one network namespace, our upstream
// client (src/net/ntp-client.ts, in lab/ntp/upstream-probe.ts) in another, measuring the host
// clock itself. Every sample's offset is then its error (the true offset is 0); the filter's
// choice and its jitter and root distance are reported at the end.
//
//   npx tsx scripts/bench/ntp-client.ts [--seconds 60] [--poll-ms 1000] [--out bench-results/ntp-client.json]
//
// Needs root (namespaces). A benchmark reports; it never fails on a number.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NetnsLab, netnsAvailable, type LabHost } from '../../lab/netns/netns.ts';
import { findChronyd } from '../../lab/ntp/chrony-q.ts';
import { startChronydServer } from '../../lab/ntp/chronyd-server.ts';
import type { ProbeConfig, ProbeSample } from '../../lab/ntp/upstream-probe.ts';
import type { UpstreamServerStatus } from '../../src/net/ntp-client.ts';

const PROBE = fileURLToPath(new URL('../../lab/ntp/upstream-probe.ts', import.meta.url));
const PORT = 11123;

function fail(message: string): never {
  console.error(`ntp-client bench: ${message}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({ options: {
    seconds: { type: 'string', default: '60' },
    'poll-ms': { type: 'string', default: '1000' },
    out: { type: 'string', default: 'bench-results/ntp-client.json' },
  } });
} catch (error) {
  fail((error as Error).message);
}
const seconds = Number(parsed.values.seconds);
const pollMs = Number(parsed.values['poll-ms']);
if (!Number.isFinite(seconds) || seconds < 5 || seconds > 3600) fail(`--seconds must be a number from 5 to 3600: ${parsed.values.seconds}`);
if (!Number.isInteger(pollMs) || pollMs < 1000 || pollMs > 64_000) fail(`--poll-ms must be an integer from 1000 to 64000: ${parsed.values['poll-ms']}`);
const available = netnsAvailable();
if (!available.ok) fail(available.reason);
const chronyd = findChronyd();
if ('skip' in chronyd) fail(chronyd.skip);

const dir = mkdtempSync(path.join(os.tmpdir(), 'ntp-client-bench-'));
const lab = await NetnsLab.create({ hosts: 2, prefix: 'ntpcb' });
let output: { results: { status: UpstreamServerStatus[]; samples: ProbeSample[]; rxTimestamps: string }[]; hostClockMinusRealtimeNs: number | null; anchorErrorNs: number };
try {
  const [server, client] = lab.hosts as [LabHost, LabHost];
  await startChronydServer(lab, server, { binary: chronyd.path, port: PORT, dir });
  const config: ProbeConfig = {
    durationMs: seconds * 1000, pollIntervalMs: pollMs, samples: true,
    runs: [{ name: 'host', servers: [{ host: server.address, port: PORT }], clockOffsetNs: 0 }],
  };
  const run = await lab.exec(client, process.execPath, ['--import', 'tsx', PROBE, JSON.stringify(config)], { timeoutMs: seconds * 1000 + 30_000 });
  if (run.code !== 0) fail(`probe failed (exit ${run.code}): ${run.stderr}\n${lab.diagnostics()}`);
  output = JSON.parse(run.stdout.trim().split('\n').at(-1) as string);
} finally {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
}

const result = output.results[0]!;
const status = result.status[0]!;
const percentile = (values: number[], fraction: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
};
const us = (ns: number | null) => ns === null ? null : Math.round(ns / 100) / 10;
const offsets = result.samples.map((sample) => sample.offsetNs);
const absOffsets = offsets.map(Math.abs);
const delays = result.samples.map((sample) => sample.delayNs);
const rms = Math.sqrt(offsets.reduce((sum, value) => sum + value * value, 0) / Math.max(1, offsets.length));
const summary = {
  seconds, pollMs, hostClockMinusRealtimeNs: output.hostClockMinusRealtimeNs, anchorErrorNs: output.anchorErrorNs, rxTimestamps: result.rxTimestamps, samples: result.samples.length, requests: status.requests,
  sampleErrorUs: { p50: us(percentile(offsets, 0.5)), absP50: us(percentile(absOffsets, 0.5)), absP90: us(percentile(absOffsets, 0.9)), absMax: us(percentile(absOffsets, 1)), rms: us(rms) },
  delayUs: { min: us(percentile(delays, 0)), p50: us(percentile(delays, 0.5)), p90: us(percentile(delays, 0.9)), max: us(percentile(delays, 1)) },
  filtered: { offsetUs: us(status.offsetNs), delayUs: us(status.delayNs), jitterUs: us(status.jitterNs), rootDistanceUs: us(status.rootDistanceNs), reach: status.reach, stratum: status.stratum },
  rawSamples: result.samples,
};
console.log(`NTP client against chronyd -x in a namespace (${seconds} s, poll ${pollMs} ms, receive stamps: ${result.rxTimestamps}): ${summary.samples} samples of ${summary.requests} requests`);
console.log(`the probe's HostClock minus CLOCK_REALTIME: ${us(output.hostClockMinusRealtimeNs)} us (anchor error bound ${us(output.anchorErrorNs)} us); the truth is minus that`);
console.log('sample error (offset measured of the host clock itself; truth is 0), us:');
console.log(`  p50 ${summary.sampleErrorUs.p50}  |error| p50 ${summary.sampleErrorUs.absP50}  p90 ${summary.sampleErrorUs.absP90}  max ${summary.sampleErrorUs.absMax}  rms ${summary.sampleErrorUs.rms}`);
console.log(`delay, us: min ${summary.delayUs.min}  p50 ${summary.delayUs.p50}  p90 ${summary.delayUs.p90}  max ${summary.delayUs.max}`);
console.log(`filter at the end: offset ${summary.filtered.offsetUs} us, delay ${summary.filtered.delayUs} us, jitter ${summary.filtered.jitterUs} us, root distance ${summary.filtered.rootDistanceUs} us, reach ${summary.filtered.reach?.toString(2)}, stratum ${summary.filtered.stratum}`);
mkdirSync(path.dirname(parsed.values.out), { recursive: true });
writeFileSync(parsed.values.out, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`written to ${parsed.values.out}`);
