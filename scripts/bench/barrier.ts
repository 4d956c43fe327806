// `npm run bench:barrier`: barrier release latency with real agent processes on loopback (no root).
// Four agents (static peers, virtual clocks) elect a master; each trial spreads N participants
// round-robin over the agents as POST /barrier requests (what `berkeley-agent barrier` sends, without
// the command's process start): N-1 waiters, then, once the master counts them all, the initializer.
// Latency is measured from the initializer's request (the last arrival) to each participant's
// answer; a trial's release latency is its slowest participant's. Prints p50/p99 for 4 and 32
// participants and writes bench-results/barrier.json. A benchmark reports; it never fails on a number.
//
//   npm run bench:barrier [-- --trials 200] [--participants 4,32] [--out FILE]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { StatusReport } from '../../src/daemon/status.ts';
import { freePort } from '../../lab/processes.ts';

const BIN = fileURLToPath(new URL('../../bin/berkeley-agent', import.meta.url));
const AGENTS = 4;

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '200' },
    participants: { type: 'string', default: '4,32' },
    out: { type: 'string', default: 'bench-results/barrier.json' },
  },
});

const children: ChildProcess[] = [];
const killAll = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
};
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function status(httpPort: number): Promise<StatusReport | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/status`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as StatusReport) : null;
  } catch {
    return null;
  }
}

// One connection per participant, as each `barrier` command has its own.
const noKeepAlive = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function post(httpPort: number, body: object): Promise<{ result: string; exitCode?: number; atNs: bigint }> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port: httpPort, path: '/barrier', method: 'POST', agent: noKeepAlive, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } },
      (response) => {
        let data = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (data += chunk));
        response.on('end', () => {
          const atNs = process.hrtime.bigint();
          try {
            resolve({ ...(JSON.parse(data) as { result: string; exitCode?: number }), atNs });
          } catch (error) {
            reject(error as Error);
          }
        });
      },
    );
    request.on('error', reject);
    request.end(text);
  });
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

interface Summary {
  participants: number;
  trials: number;
  /** Slowest participant of each trial, from the initializer's request: ms. */
  releaseMs: { p50: number; p99: number; max: number; mean: number };
  /** Every participant's own latency: ms. */
  participantMs: { p50: number; p99: number };
}

async function main(): Promise<void> {
  const trials = Number(values.trials);
  const sizes = String(values.participants).split(',').map(Number);
  if (!Number.isInteger(trials) || trials < 1 || sizes.some((size) => !Number.isInteger(size) || size < 2 || size > 1024)) {
    process.stderr.write('bench:barrier: --trials must be a positive integer and --participants a list of 2..1024\n');
    process.exit(2);
  }
  const udpPorts = await Promise.all(Array.from({ length: AGENTS }, () => freePort()));
  const httpPorts = await Promise.all(Array.from({ length: AGENTS }, () => freePort()));
  const peers = udpPorts.flatMap((port) => ['--peer', `127.0.0.1:${port}`]);
  for (let index = 0; index < AGENTS; index += 1) {
    const args = ['run', '--node-id', `bench-${index + 1}`, '--no-mdns', '--bind', '127.0.0.1', '--port', String(udpPorts[index]), '--http', `127.0.0.1:${httpPorts[index]}`, '--clock', 'virtual', '--discovery-window', '0.5', '--log-level', 'warn', ...peers];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
  }
  // The highest key is master once all have met.
  const masterHttp = httpPorts[AGENTS - 1]!;
  for (let waited = 0; ; waited += 200) {
    const reports = await Promise.all(httpPorts.map(status));
    if (reports.every((report) => report?.masterId === `bench-${AGENTS}` && report.peers.length === AGENTS - 1)) break;
    if (waited > 30_000) throw new Error('the agents did not agree on a master within 30 s');
    await sleep(200);
  }
  process.stderr.write(`${AGENTS} agents on loopback, master bench-${AGENTS}; ${trials} trials per size\n`);
  const summaries: Summary[] = [];
  for (const size of sizes) {
    const releases: number[] = [];
    const each: number[] = [];
    for (let trial = 0; trial < trials; trial += 1) {
      const name = `bench-${size}-${trial}`;
      const waiters = Array.from({ length: size - 1 }, (_, index) => post(httpPorts[index % AGENTS]!, { name, count: null, errorCode: 0, wait: true, timeoutMs: 60_000 }));
      // Until the master counts every waiter (each confirmed its generation).
      for (let waited = 0; ; waited += 2) {
        const open = (await status(masterHttp))?.barriers.open?.find((entry) => entry.name === name);
        if (open !== undefined && open.present === size - 1) break;
        if (waited > 10_000) throw new Error(`trial ${name}: the master never counted ${size - 1} waiters`);
        await sleep(2);
      }
      // Let the last confirmations land, as when participants arrive over seconds.
      await sleep(20);
      const lastArrivalNs = process.hrtime.bigint();
      const initializer = post(httpPorts[(size - 1) % AGENTS]!, { name, count: size - 1, errorCode: 0, wait: true, timeoutMs: 60_000 });
      const results = await Promise.all([...waiters, initializer]);
      const latenciesMs = results.map((result) => {
        if (result.result !== 'released') throw new Error(`trial ${name}: ${JSON.stringify(result)}`);
        return Number(result.atNs - lastArrivalNs) / 1e6;
      });
      releases.push(Math.max(...latenciesMs));
      each.push(...latenciesMs);
    }
    releases.sort((a, b) => a - b);
    each.sort((a, b) => a - b);
    const summary: Summary = {
      participants: size,
      trials,
      releaseMs: { p50: percentile(releases, 0.5), p99: percentile(releases, 0.99), max: releases[releases.length - 1]!, mean: releases.reduce((sum, value) => sum + value, 0) / releases.length },
      participantMs: { p50: percentile(each, 0.5), p99: percentile(each, 0.99) },
    };
    summaries.push(summary);
    process.stdout.write(
      `${String(size).padStart(3)} participants: release (last arrival to all released) p50 ${summary.releaseMs.p50.toFixed(2)} ms, p99 ${summary.releaseMs.p99.toFixed(2)} ms, max ${summary.releaseMs.max.toFixed(2)} ms; ` +
        `per participant p50 ${summary.participantMs.p50.toFixed(2)} ms, p99 ${summary.participantMs.p99.toFixed(2)} ms\n`,
    );
  }
  const out = String(values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ startedAt: new Date().toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? null, node: process.version }, agents: AGENTS, summaries }, null, 2)}\n`);
  process.stderr.write(`written to ${out}\n`);
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`bench:barrier: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(killAll);
