// Footprint benchmark (issue 7, "Benchmark and documentation"): what an agent costs the machine.
//
// Part 1, real agents: 9 `berkeley-agent run` processes on 127.0.0.1 (so each has 8 peers), static
// peers (--no-mdns), poll interval 1 s, --clock virtual (never the kernel clock), --log-level warn.
// Once all of them name the same master (plus --settle seconds), the master's and the members'
// RSS (/proc/PID/status VmRSS, sampled every --sample-ms) and CPU (utime + stime of
// /proc/PID/stat over the window, as % of one core) are measured for --duration seconds. Nothing
// talks to the agents during the window; /status is read only before and after it (to find the
// master and count the rounds it completed). Every child is killed at the end, also on failure.
//
// Part 2, master CPU per round at 10, 100 and 1000 simulated members: the pure protocol core in the
// seeded simulator (N nodes, discoverAll). Once a master has run 20 rounds (JIT warm), its
// ProtocolNode's receive, tick and drain are wrapped and timed with the main thread's CPU clock
// (process.cpuUsage beside it, which also counts JIT and GC helper threads); reported per
// completed round and per polled member. The codec's share (encoding the master's frames, decoding what it receives, which
// the simulator does outside the node) is timed separately on the very frames of the window.
//
//   npx tsx scripts/bench/footprint.ts [--duration 60] [--settle 5] [--bin dist|tsx] [--node-flags="..."] [--probes N]
//                                      [--part all|agents|rounds] [--members 10,100,1000] [--rounds 20]
//                                      [--out bench-results/footprint.json] [--json]
//
// --bin dist runs `node dist/berkeley-agent.mjs` (the bundle: `npx tsx scripts/build.ts` first);
// --bin tsx runs the sources through tsx as a checkout without a bundle does (`node --import
// tsx/esm src/cli/main.ts`). Default: dist when the bundle exists, else tsx. Each agent's node gets
// the flags of bin/berkeley-agent's shebang (what an installed agent runs with); --node-flags
// replaces them (e.g. --node-flags="--max-semi-space-size=1 --trace-gc", or --node-flags= for
// node's defaults; --trace-gc adds the collections in the window and their pauses to the table).
// A benchmark reports; it never fails on a number (the targets are printed beside the results).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { freePort } from '../../lab/processes.ts';
import { AGENT_NODE_FLAGS } from '../../lab/netns/agents.ts';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Simulation } from '../../src/sim/simulation.ts';
import { SeededRandom } from '../../src/sim/random.ts';
import type { Endpoint } from '../../src/core/types.ts';
import type { Frame } from '../../src/core/frames.ts';
import { decodeFrame, encodeFrame } from '../../src/wire/codec.ts';
import type { StatusReport } from '../../src/daemon/status.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUNDLE = path.join(REPO_ROOT, 'dist', 'berkeley-agent.mjs');
const RSS_MB_TARGET = 70;
const CPU_PERCENT_TARGET = 1;

// ---------------------------------------------------------------------------------------------
// Options

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    settle: { type: 'string', default: '5' },
    agents: { type: 'string', default: '9' },
    'poll-interval': { type: 'string', default: '1' },
    'sample-ms': { type: 'string', default: '500' },
    bin: { type: 'string' },
    'node-flags': { type: 'string' },
    probes: { type: 'string' },
    part: { type: 'string', default: 'all' },
    members: { type: 'string', default: '10,100,1000' },
    rounds: { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench-results/footprint.json' },
    json: { type: 'boolean', default: false },
  },
});

function positive(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`footprint: --${name} must be a positive number (got ${JSON.stringify(text)})\n`);
    process.exit(2);
  }
  return value;
}

const durationS = positive('duration', values.duration);
const settleS = Number(values.settle);
const agentCount = Math.round(positive('agents', values.agents));
const pollIntervalS = positive('poll-interval', values['poll-interval']);
const sampleMs = positive('sample-ms', values['sample-ms']);
const memberCounts = (values.members ?? '').split(',').map((text) => Math.round(positive('members', text)));
const roundsToMeasure = Math.round(positive('rounds', values.rounds));
const seed = Math.round(Number(values.seed));
const part = values.part ?? 'all';
if (!['all', 'agents', 'rounds'].includes(part)) {
  process.stderr.write(`footprint: --part must be all, agents or rounds (got ${part})\n`);
  process.exit(2);
}
const binKind = values.bin ?? (existsSync(BUNDLE) ? 'dist' : 'tsx');
if (binKind !== 'dist' && binKind !== 'tsx') {
  process.stderr.write(`footprint: --bin must be dist or tsx (got ${binKind})\n`);
  process.exit(2);
}
// By default the flags of bin/berkeley-agent's shebang (what an installed agent runs with);
// --node-flags replaces them (--node-flags= for none).
const nodeFlags = values['node-flags'] === undefined ? [...AGENT_NODE_FLAGS] : values['node-flags'].split(/\s+/).filter((flag) => flag !== '');
/** --probes N for every agent (the agent's default otherwise). */
const probeArgs = values.probes === undefined ? [] : ['--probes', String(Math.round(positive('probes', values.probes)))];
const log = (line: string) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// Child processes: every one is killed on the way out, whatever happens.

const children = new Set<ChildProcess>();

function killAll(signal: NodeJS.Signals): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

process.on('exit', () => killAll('SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    killAll('SIGKILL');
    process.exit(130);
  });
}

async function stopAll(graceMs: number): Promise<void> {
  const live = [...children].filter((child) => child.exitCode === null && child.signalCode === null);
  const exited = Promise.all(live.map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  })));
  killAll('SIGTERM');
  const timer = setTimeout(() => killAll('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function getStatus(httpPort: number): Promise<StatusReport | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/status`, { signal: AbortSignal.timeout(3000) });
    return response.ok ? ((await response.json()) as StatusReport) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// /proc readings

const CLOCK_TICKS_PER_S = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function readProcStatusKb(pid: number, field: string): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** utime + stime of the whole process (all threads), in seconds. */
function readCpuS(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

function readThreads(pid: number): number | null {
  try {
    const match = /^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Part 1: real agents

interface Agent {
  index: number;
  nodeId: string;
  udpPort: number;
  httpPort: number;
  child: ChildProcess;
  output: string[];
  /** With --node-flags --trace-gc: collections counted while gc.counting (the window). */
  gc: { counting: boolean; scavenges: number; markCompacts: number; pauseMsMax: number; pauseMsTotal: number };
}

interface ProcessFootprint {
  nodeId: string;
  role: 'master' | 'member';
  rssMbMax: number;
  rssMbMean: number;
  /**
   * RssAnon: the process's own memory (V8 heap, malloc, stacks). The rest of RSS is file-backed,
   * mostly pages of the node binary itself (~40 MB once warm), shared by every node process.
   */
  rssAnonMbMean: number;
  /** VmHWM at the end: the largest RSS since the process started (start-up included). */
  rssMbPeakLifetime: number;
  cpuPercentOfCore: number;
  threads: number | null;
  /** Only with --node-flags --trace-gc: collections in the window and their main-thread pauses. */
  gc: { scavenges: number; markCompacts: number; pauseMsMax: number; pauseMsMean: number } | null;
}

interface AgentsResult {
  bin: string;
  command: string[];
  nodeFlags: string[];
  agents: number;
  peersPerAgent: number;
  pollIntervalS: number;
  durationS: number;
  settledAfterS: number;
  master: ProcessFootprint;
  member: ProcessFootprint;
  /** Over all members: the largest RSS and the mean CPU. */
  membersAll: { rssMbMax: number; rssMbMeanOfMeans: number; cpuPercentOfCoreMean: number; cpuPercentOfCoreMax: number };
  roundsInWindow: number | null;
  masterCpuMsPerRound: number | null;
  /** POLLs the master sent per member and round in the window (early stop: PROBES_MIN_DEFAULT). */
  probesPerMemberRound: number | null;
  sameMasterThroughout: boolean;
  targets: { rssMbMax: number; cpuPercentOfCore: number };
}

function agentCommand(): { command: string; prefix: string[] } {
  if (binKind === 'dist') {
    if (!existsSync(BUNDLE)) throw new Error(`--bin dist: ${path.relative(REPO_ROOT, BUNDLE)} does not exist (build it: npx tsx scripts/build.ts)`);
    return { command: process.execPath, prefix: [...nodeFlags, BUNDLE] };
  }
  return { command: process.execPath, prefix: [...nodeFlags, '--import', 'tsx/esm', path.join(REPO_ROOT, 'src/cli/main.ts')] };
}

async function runAgents(): Promise<AgentsResult> {
  const { command, prefix } = agentCommand();
  const ports: { udpPort: number; httpPort: number }[] = [];
  for (let index = 0; index < agentCount; index += 1) ports.push({ udpPort: await freePort(), httpPort: await freePort() });
  const peers = ports.flatMap(({ udpPort }) => ['--peer', `127.0.0.1:${udpPort}`]);
  const agents: Agent[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env, BERKELEY_AGENT_CLOCK: 'virtual' };
  for (const key of Object.keys(env)) if (key.startsWith('BERKELEY_AGENT_') && key !== 'BERKELEY_AGENT_CLOCK') delete env[key];
  delete env.NODE_OPTIONS;
  const startedMs = performance.now();
  let exampleArgs: string[] = [];
  ports.forEach(({ udpPort, httpPort }, index) => {
    const nodeId = `fp-${index + 1}`;
    const args = [...prefix, 'run', '--no-mdns', '--bind', '127.0.0.1', '--port', String(udpPort), '--http', `127.0.0.1:${httpPort}`,
      '--clock', 'virtual', '--node-id', nodeId, '--poll-interval', String(pollIntervalS), '--log-level', 'warn', ...probeArgs, ...peers];
    if (index === 0) exampleArgs = [command, ...args];
    const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const output: string[] = [];
    const gc = { counting: false, scavenges: 0, markCompacts: 0, pauseMsMax: 0, pauseMsTotal: 0 };
    const keep = (chunk: string) => {
      output.push(chunk);
      if (output.length > 50) output.shift();
      if (!gc.counting) return;
      // --trace-gc: "... ms: Scavenge 5.1 (7.0) -> 4.3 (8.0) MB, 0.52 / 0.00 ms ..." (pause, then time in other threads)
      for (const match of chunk.matchAll(/ms: (Scavenge|Mark-Compact|Mark-sweep)[^,\n]*, ([\d.]+) \/ [\d.]+ ms/g)) {
        if (match[1] === 'Scavenge') gc.scavenges += 1;
        else gc.markCompacts += 1;
        const pauseMs = Number(match[2]);
        gc.pauseMsMax = Math.max(gc.pauseMsMax, pauseMs);
        gc.pauseMsTotal += pauseMs;
      }
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    agents.push({ index, nodeId, udpPort, httpPort, child, output, gc });
  });

  // Settle: every agent names the same master.
  let masterId: string | null = null;
  const agreeDeadlineMs = performance.now() + 60_000;
  for (;;) {
    const dead = agents.find((agent) => agent.child.exitCode !== null || agent.child.signalCode !== null);
    if (dead) throw new Error(`agent ${dead.nodeId} exited (${dead.child.exitCode ?? dead.child.signalCode}): ${dead.output.join('').slice(-1500)}`);
    const statuses = await Promise.all(agents.map((agent) => getStatus(agent.httpPort)));
    const named = new Set(statuses.map((status) => status?.masterId ?? null));
    const candidate = statuses.find((status) => status?.role === 'master')?.nodeId ?? null;
    if (candidate !== null && named.size === 1 && named.has(candidate)) {
      masterId = candidate;
      break;
    }
    if (performance.now() > agreeDeadlineMs) throw new Error(`no agreed master after 60 s (named: ${[...named].join(', ')})`);
    await sleep(250);
  }
  const agreedS = (performance.now() - startedMs) / 1000;
  log(`footprint: ${agentCount} agents (${binKind}${nodeFlags.length ? ` ${nodeFlags.join(' ')}` : ''}) agreed on ${masterId} after ${agreedS.toFixed(1)} s; settling ${settleS} s, then measuring ${durationS} s`);
  await sleep(settleS * 1000);

  const master = agents.find((agent) => agent.nodeId === masterId) as Agent;
  const members = agents.filter((agent) => agent !== master);
  const before = await getStatus(master.httpPort);
  const roundsBefore = before?.counters.roundsCompleted ?? null;

  // The window: /proc only.
  const pids = agents.map((agent) => agent.child.pid as number);
  const cpuStart = pids.map(readCpuS);
  for (const agent of agents) agent.gc.counting = true;
  const windowStartMs = performance.now();
  const rssKb: number[][] = pids.map(() => []);
  const rssAnonKb: number[][] = pids.map(() => []);
  const windowEndMs = windowStartMs + durationS * 1000;
  while (performance.now() < windowEndMs) {
    pids.forEach((pid, index) => {
      const value = readProcStatusKb(pid, 'VmRSS');
      if (value !== null) rssKb[index]?.push(value);
      const anon = readProcStatusKb(pid, 'RssAnon');
      if (anon !== null) rssAnonKb[index]?.push(anon);
    });
    await sleep(Math.min(sampleMs, Math.max(0, windowEndMs - performance.now())));
  }
  const cpuEnd = pids.map(readCpuS);
  for (const agent of agents) agent.gc.counting = false;
  const windowS = (performance.now() - windowStartMs) / 1000;
  const dead = agents.find((agent) => agent.child.exitCode !== null || agent.child.signalCode !== null);
  if (dead) throw new Error(`agent ${dead.nodeId} exited during the window: ${dead.output.join('').slice(-1500)}`);

  const after = await getStatus(master.httpPort);
  const roundsAfter = after?.counters.roundsCompleted ?? null;
  const memberStatuses = await Promise.all(members.map((agent) => getStatus(agent.httpPort)));
  const sameMasterThroughout = after?.role === 'master' && memberStatuses.every((status) => status?.masterId === masterId);

  const footprint = (agent: Agent, role: 'master' | 'member'): ProcessFootprint => {
    const samples = rssKb[agent.index] ?? [];
    const cpuS = (cpuEnd[agent.index] ?? 0) - (cpuStart[agent.index] ?? 0);
    return {
      nodeId: agent.nodeId,
      role,
      rssMbMax: Math.max(...samples) / 1024,
      rssMbMean: samples.reduce((sum, value) => sum + value, 0) / samples.length / 1024,
      rssAnonMbMean: (rssAnonKb[agent.index] ?? []).reduce((sum, value) => sum + value, 0) / Math.max(1, rssAnonKb[agent.index]?.length ?? 0) / 1024,
      rssMbPeakLifetime: (readProcStatusKb(agent.child.pid as number, 'VmHWM') ?? 0) / 1024,
      cpuPercentOfCore: (cpuS / windowS) * 100,
      threads: readThreads(agent.child.pid as number),
      gc: nodeFlags.includes('--trace-gc') ? {
        scavenges: agent.gc.scavenges,
        markCompacts: agent.gc.markCompacts,
        pauseMsMax: agent.gc.pauseMsMax,
        pauseMsMean: agent.gc.pauseMsTotal / Math.max(1, agent.gc.scavenges + agent.gc.markCompacts),
      } : null,
    };
  };
  const masterFootprint = footprint(master, 'master');
  const memberFootprints = members.map((agent) => footprint(agent, 'member'));
  const roundsInWindow = roundsBefore !== null && roundsAfter !== null ? roundsAfter - roundsBefore : null;
  const probesInWindow = before && after ? after.counters.probesSent - before.counters.probesSent : null;
  const masterCpuS = (cpuEnd[master.index] ?? 0) - (cpuStart[master.index] ?? 0);
  return {
    bin: binKind,
    command: exampleArgs.map((arg) => (arg.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, arg) : arg)),
    nodeFlags,
    agents: agentCount,
    peersPerAgent: agentCount - 1,
    pollIntervalS,
    durationS: windowS,
    settledAfterS: agreedS + settleS,
    master: masterFootprint,
    member: memberFootprints[0] as ProcessFootprint,
    membersAll: {
      rssMbMax: Math.max(...memberFootprints.map((item) => item.rssMbMax)),
      rssMbMeanOfMeans: memberFootprints.reduce((sum, item) => sum + item.rssMbMean, 0) / memberFootprints.length,
      cpuPercentOfCoreMean: memberFootprints.reduce((sum, item) => sum + item.cpuPercentOfCore, 0) / memberFootprints.length,
      cpuPercentOfCoreMax: Math.max(...memberFootprints.map((item) => item.cpuPercentOfCore)),
    },
    roundsInWindow,
    // Includes everything else the master does in the window (its own member duties, HTTP idle, GC).
    masterCpuMsPerRound: roundsInWindow ? (masterCpuS * 1000) / roundsInWindow : null,
    probesPerMemberRound: roundsInWindow && probesInWindow !== null ? probesInWindow / (roundsInWindow * members.length) : null,
    sameMasterThroughout,
    targets: { rssMbMax: RSS_MB_TARGET, cpuPercentOfCore: CPU_PERCENT_TARGET },
  };
}

// ---------------------------------------------------------------------------------------------
// Part 2: master CPU per round in the simulator

interface TimingOverhead {
  threadUs: number;
  processUs: number;
}

interface RoundCost {
  nodes: number;
  /** Members the master polls each round (nodes - 1). */
  membersPolled: number;
  rounds: number;
  probesPerRound: number;
  /** Inside the master's ProtocolNode (receive + tick + drain), main-thread CPU, timing overhead subtracted. */
  coreCpuUsPerRound: number;
  coreCpuUsPerMember: number;
  /** The same calls timed by process.cpuUsage: adds whatever other threads (JIT, GC helpers) did meanwhile. */
  coreProcessCpuUsPerRound: number;
  calls: { receive: number; tick: number; drain: number };
  framesSentPerRound: number;
  framesReceivedPerRound: number;
  /** msgpack encoding of the master's sent frames and decoding of its received ones, per round. */
  codecCpuUsPerRound: number;
  /** Core plus codec: the master's protocol work per round without the sockets. */
  totalCpuUsPerRound: number;
  totalCpuUsPerMember: number;
  /** Simulated seconds until the measured window started, and wall seconds the case took. */
  warmupSimS: number;
  wallS: number;
}

/** CPU time of the whole process (all threads: GC helpers and JIT compilers too), µs. */
function cpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/**
 * CPU time of this thread alone, µs: clock_gettime(CLOCK_THREAD_CPUTIME_ID) through koffi (a
 * dependency already). Node 20 has no thread CPU clock of its own, and process.cpuUsage also
 * counts the JIT compiler and GC helper threads, whatever they are doing for other nodes of the
 * simulation at that moment. Falls back to process.cpuUsage when koffi cannot be loaded.
 */
const threadCpu: { name: string; readUs: () => number } = (() => {
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const clockGettime = koffi.load('libc.so.6').func('int clock_gettime(int, void *)') as (clockId: number, out: Buffer) => number;
    const CLOCK_THREAD_CPUTIME_ID = 3;
    const timespec = Buffer.alloc(16);
    const readUs = () => {
      clockGettime(CLOCK_THREAD_CPUTIME_ID, timespec);
      return Number(timespec.readBigInt64LE(0)) * 1e6 + Number(timespec.readBigInt64LE(8)) / 1e3;
    };
    readUs();
    return { name: 'main-thread CPU (CLOCK_THREAD_CPUTIME_ID)', readUs };
  } catch {
    return { name: 'process CPU (process.cpuUsage; koffi unavailable)', readUs: cpuUs };
  }
})();

/** Cost of one timing pair (read before and after an empty call), to subtract per call. */
function timingOverheadUs(read: () => number): number {
  const iterations = 20_000;
  let total = 0;
  for (let index = 0; index < iterations; index += 1) {
    const start = read();
    total += read() - start;
  }
  return total / iterations;
}

function measureRounds(nodes: number, overhead: TimingOverhead): RoundCost {
  const wallStartMs = performance.now();
  const random = new SeededRandom(seed + nodes);
  const sim = new Simulation({
    seed: seed + nodes,
    nodes: Array.from({ length: nodes }, (_, index) => ({
      nodeId: `n${String(index + 1).padStart(4, '0')}`,
      initialOffsetNs: random.between(-1e9, 1e9),
      driftPpm: random.between(-100, 100),
    })),
    network: { latencyMs: 0.1, jitterMeanMs: 0.05 },
    config: { pollIntervalMs: 1000 },
    discoverAll: true,
    check: 'off',
  });
  // Warm-up: an agreed master that has completed a few rounds (and JIT-compiled its paths).
  const warmupRounds = 20;
  let masterId: string | null = null;
  for (let stepS = 0; ; stepS += 1) {
    sim.runFor(1000);
    const masters = sim.masters();
    if (masters.length === 1) {
      const candidate = sim.node(masters[0] as string);
      if (candidate !== null && candidate.status().counters.roundsCompleted >= warmupRounds) {
        masterId = masters[0] as string;
        break;
      }
    }
    if (stepS > 300) throw new Error(`${nodes} nodes: no master with ${warmupRounds} rounds after 300 simulated s`);
  }
  const warmupSimS = sim.nowMs / 1000;
  const node = sim.node(masterId);
  if (node === null) throw new Error('master vanished');
  const statusBefore = node.status();
  const roundsBefore = statusBefore.counters.roundsCompleted;

  let coreCpuUs = 0;
  let coreProcessCpuUs = 0;
  const calls = { receive: 0, tick: 0, drain: 0 };
  const sent: Frame[] = [];
  const received: Frame[] = [];
  const receive = node.receive.bind(node);
  const tick = node.tick.bind(node);
  const drain = node.drain.bind(node);
  node.receive = (frame: Frame, from: Endpoint, rxNs: bigint, nowMs: number) => {
    received.push(frame);
    const processStart = cpuUs();
    const threadStart = threadCpu.readUs();
    receive(frame, from, rxNs, nowMs);
    coreCpuUs += threadCpu.readUs() - threadStart - overhead.threadUs;
    coreProcessCpuUs += cpuUs() - processStart - overhead.processUs - overhead.threadUs;
    calls.receive += 1;
  };
  node.tick = (nowMs: number) => {
    const processStart = cpuUs();
    const threadStart = threadCpu.readUs();
    tick(nowMs);
    coreCpuUs += threadCpu.readUs() - threadStart - overhead.threadUs;
    coreProcessCpuUs += cpuUs() - processStart - overhead.processUs - overhead.threadUs;
    calls.tick += 1;
  };
  node.drain = () => {
    const processStart = cpuUs();
    const threadStart = threadCpu.readUs();
    const out = drain();
    coreCpuUs += threadCpu.readUs() - threadStart - overhead.threadUs;
    coreProcessCpuUs += cpuUs() - processStart - overhead.processUs - overhead.threadUs;
    calls.drain += 1;
    for (const send of out.sends) sent.push(send.frame as Frame);
    return out;
  };
  while (node.status().counters.roundsCompleted - roundsBefore < roundsToMeasure) {
    sim.runFor(1000);
    if (sim.node(masterId) !== node) throw new Error(`${nodes} nodes: the master ${masterId} went away during the window`);
  }
  node.receive = receive;
  node.tick = tick;
  node.drain = drain;
  const statusAfter = node.status();
  if (statusAfter.role !== 'master' || statusAfter.term !== statusBefore.term) throw new Error(`${nodes} nodes: the master lost its role during the window`);
  const rounds = statusAfter.counters.roundsCompleted - roundsBefore;

  // The codec's share, on the same frames (the simulator stamps txNs when it sends; so do we).
  const txNs = sim.trueNs();
  const sentStamped = sent.map((frame) => ({ ...frame, txNs }) as Frame);
  const receivedBytes = received.map((frame) => encodeFrame(frame));
  let codecCpuUs = 0;
  for (let repeat = 0; repeat < 3; repeat += 1) {
    const start = threadCpu.readUs();
    for (const frame of sentStamped) encodeFrame(frame);
    for (const bytes of receivedBytes) if (!decodeFrame(bytes).ok) throw new Error('a received frame did not decode');
    const spentUs = threadCpu.readUs() - start;
    codecCpuUs = repeat === 0 ? spentUs : Math.min(codecCpuUs, spentUs);
  }

  const membersPolled = nodes - 1;
  const coreCpuUsPerRound = coreCpuUs / rounds;
  const codecCpuUsPerRound = codecCpuUs / rounds;
  return {
    nodes,
    membersPolled,
    rounds,
    probesPerRound: statusAfter.peers.length > 0 ? Math.round(sent.length / rounds / membersPolled) : 0,
    coreCpuUsPerRound,
    coreCpuUsPerMember: coreCpuUsPerRound / membersPolled,
    coreProcessCpuUsPerRound: coreProcessCpuUs / rounds,
    calls,
    framesSentPerRound: sent.length / rounds,
    framesReceivedPerRound: received.length / rounds,
    codecCpuUsPerRound,
    totalCpuUsPerRound: coreCpuUsPerRound + codecCpuUsPerRound,
    totalCpuUsPerMember: (coreCpuUsPerRound + codecCpuUsPerRound) / membersPolled,
    warmupSimS,
    wallS: (performance.now() - wallStartMs) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (value: number | null | undefined, digits = 1) => (value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits));

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ')).join('\n');
}

function printAgents(result: AgentsResult): string {
  const rows = [['process', 'RSS max MB', 'RSS mean MB', 'of it anonymous MB', 'RSS peak since start MB', 'CPU % of a core', 'threads']];
  for (const item of [result.master, result.member]) {
    rows.push([`${item.role} ${item.nodeId}`, fmt(item.rssMbMax), fmt(item.rssMbMean), fmt(item.rssAnonMbMean), fmt(item.rssMbPeakLifetime), fmt(item.cpuPercentOfCore, 2), String(item.threads ?? '-')]);
  }
  for (const item of [result.master, result.member]) {
    if (item.gc) rows.push([`  gc ${item.role}`, `${item.gc.scavenges} scavenges`, `${item.gc.markCompacts} mark-compacts`, `pause max ${fmt(item.gc.pauseMsMax, 2)} ms`, `mean ${fmt(item.gc.pauseMsMean, 2)} ms`, '', '']);
  }
  rows.push([`all ${result.agents - 1} members`, fmt(result.membersAll.rssMbMax), fmt(result.membersAll.rssMbMeanOfMeans), '', '', `${fmt(result.membersAll.cpuPercentOfCoreMean, 2)} (max ${fmt(result.membersAll.cpuPercentOfCoreMax, 2)})`, '']);
  return [
    `Agents: ${result.agents} on 127.0.0.1 (${result.peersPerAgent} peers each), poll ${result.pollIntervalS} s, --bin ${result.bin}${result.nodeFlags.length ? `, node ${result.nodeFlags.join(' ')}` : ''}; window ${fmt(result.durationS)} s after ${fmt(result.settledAfterS)} s`,
    table(rows),
    `master: ${result.roundsInWindow ?? '-'} rounds in the window, ${fmt(result.masterCpuMsPerRound, 2)} ms CPU per round (whole process), ${fmt(result.probesPerMemberRound, 1)} probes per member and round; same master throughout: ${result.sameMasterThroughout}`,
    `targets: RSS <= ${RSS_MB_TARGET} MB, CPU <= ${CPU_PERCENT_TARGET}% of a core`,
  ].join('\n');
}

function printRounds(costs: RoundCost[], overhead: TimingOverhead): string {
  const rows = [['nodes', 'polled', 'rounds', 'frames out/in per round', 'core µs/round', 'core µs/member', 'codec µs/round', 'total µs/round', 'total µs/member', 'core µs/round, process CPU', 'wall s']];
  for (const cost of costs) {
    rows.push([String(cost.nodes), String(cost.membersPolled), String(cost.rounds), `${fmt(cost.framesSentPerRound, 0)}/${fmt(cost.framesReceivedPerRound, 0)}`,
      fmt(cost.coreCpuUsPerRound, 0), fmt(cost.coreCpuUsPerMember, 2), fmt(cost.codecCpuUsPerRound, 0), fmt(cost.totalCpuUsPerRound, 0), fmt(cost.totalCpuUsPerMember, 2),
      fmt(cost.coreProcessCpuUsPerRound, 0), fmt(cost.wallS)]);
  }
  return [
    `Master CPU per round (simulator; ${threadCpu.name} inside the master's ProtocolNode receive/tick/drain, ${fmt(overhead.threadUs, 2)} µs timing overhead per call subtracted; codec = msgpack encode of its sent and decode of its received frames; sockets not included)`,
    table(rows),
  ].join('\n');
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const output: Record<string, unknown> = { startedAt, machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, node: process.version, loadAverage: os.loadavg() } };
  const printed: string[] = [];
  try {
    if (part === 'all' || part === 'agents') {
      const agents = await runAgents();
      output.agents = agents;
      printed.push(printAgents(agents));
    }
  } finally {
    await stopAll(3000);
  }
  if (part === 'all' || part === 'rounds') {
    const overhead: TimingOverhead = { threadUs: timingOverheadUs(threadCpu.readUs), processUs: timingOverheadUs(cpuUs) };
    const costs: RoundCost[] = [];
    for (const nodes of memberCounts) {
      log(`footprint: master CPU per round, ${nodes} simulated nodes...`);
      costs.push(measureRounds(nodes, overhead));
    }
    output.masterRounds = { timer: threadCpu.name, timingOverheadUsPerCall: overhead, cases: costs };
    printed.push(printRounds(costs, overhead));
  }
  const out = path.resolve(REPO_ROOT, values.out ?? 'bench-results/footprint.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(output, null, 2)}\n`);
  if (values.json) process.stdout.write(`${JSON.stringify(output)}\n`);
  else process.stdout.write(`${printed.join('\n\n')}\n\nwritten to ${path.relative(REPO_ROOT, out)}\n`);
}

main().catch(async (error: unknown) => {
  process.stderr.write(`footprint: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  await stopAll(1000);
  process.exit(1);
});
