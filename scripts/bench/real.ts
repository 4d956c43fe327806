// Real-process precision benchmark: N real `berkeley-agent` processes (default 8), one per network
// namespace of a NetnsLab, discovering each other over mDNS, with virtual clocks started up to 2 s
// and 100 ppm apart. Measures the time to agreement, the steady spread of the clocks (max - min of
// clock.hostOffsetNs across agents, sampled ~5 times a second), and a kill -9 of the master
// (time to a new agreed master, spread of the survivors meanwhile). Beside it, in two more
// namespaces of the same lab and over the same measurement window, chronyd polls chronyd every
// second (interleaved, kernel timestamps); both share this machine's clock, so what chrony measures
// is its noise floor, the figure our spread is compared with (scripts/bench/real-chrony.ts).
//
// A benchmark, not a test (GUIDE §6): it reports numbers and fails only when the run cannot be
// made (no agreement at all, a lab error). Needs root for the namespaces; without it it prints why
// and reports {skipped}. Never touches this machine's clock: agents run with --clock virtual and
// chronyd with -x.
//
//   npx tsx scripts/bench/real.ts [--agents 8] [--measure-s 60] [--failover-s 30] [--probes N]
//                                 [--discovery-window S] [--node-flags="..."] [--no-chrony] [--out bench-results/real.json]
// Agents run with the node flags of bin/berkeley-agent's shebang unless --node-flags replaces them.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NetnsLab, netnsAvailable, sleep, LineCollector, type LabHost } from '../../lab/netns/netns.ts';
import { AGENT_BIN, AGENT_NODE_FLAGS, SPREAD_LIMIT_NS, percentile, type AgentProcess } from '../../lab/netns/agents.ts';
import { HTTP_PORT_DEFAULT, PROBES_PER_ROUND_DEFAULT, PROBES_PER_ROUND_MAX } from '../../src/core/limits.ts';
import { ChronyPair, findChronyd, type ChronyOutcome } from './real-chrony.ts';

const AGENTS_DEFAULT = 8;
const AGENTS_MAX = 64;
const MEASURE_S_DEFAULT = 60;
const FAILOVER_S_DEFAULT = 30;
const POLL_INTERVAL_S = 1;
/** Initial virtual clocks are spread evenly over a range this wide (centred on the host clock). */
const OFFSET_SPAN_S = 2;
const DRIFT_SPAN_PPM = 100;
/** About 5 samples a second. */
const SAMPLE_INTERVAL_MS = 200;
/** One /status request; a slower answer counts the agent as missing from that sample. */
const STATUS_TIMEOUT_MS = 1_000;
/** Eight processes loading at once on two cores take a while; agreement normally comes in ~10 s. */
const AGREEMENT_TIMEOUT_MS = 120_000;
/** The observer process answers its first (empty) sample within this. */
const OBSERVER_START_TIMEOUT_MS = 15_000;
const OUT_DEFAULT = 'bench-results/real.json';
/** Convergence: every clock's rate within this of the others' (the frequency loops have locked). */
const LOCKED_RATE_SPREAD_PPM = 5;

export interface RealBenchOptions {
  /** Agent processes (2..64), default 8. */
  agents?: number;
  /** Steady measurement window in seconds, default 60. */
  measureS?: number;
  /** How long to sample the survivors after kill -9 of the master, default 30. */
  failoverS?: number;
  /** `--probes N` for every agent; omitted: the agent's default (PROBES_PER_ROUND_DEFAULT). */
  probes?: number;
  /** `--discovery-window S` for every agent; omitted: the agent's default. */
  discoveryWindowS?: number;
  /** Flags for each agent's node; default: those of bin/berkeley-agent's shebang (AGENT_NODE_FLAGS). */
  nodeFlags?: string[];
  /** Run chronyd beside the agents (default true; skipped with a reason when chronyd is absent). */
  chrony?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface SpreadStats {
  /** Per sample instant: max - min of clock.hostOffsetNs across the agents that answered. */
  spreadNs: { p50: number; p99: number; max: number };
  /** RMS of every agent's offset from its sample's mean: a per-clock figure, closer in kind to
   *  chrony's RMS offset than the max - min spread is. */
  rmsFromMeanNs: number;
  /** Samples in which every live agent answered (only these give a spread). */
  samples: number;
  /** Samples in which some live agent did not answer in time. */
  incompleteSamples: number;
  /** Samples in which the agents did not all name one master, all synchronized. */
  notAgreedSamples: number;
  /** Per sample, the time from the first request sent to the last reply received (p50, p99):
   *  the skew of the reply instants, see sampleAll. */
  replyWindowMs: { p50: number; p99: number };
  /**
   * Per sample, max over agents of |rate relative to the host| x reply window: how far the reply
   * skew alone could have moved the spread (see Observer.sample). The rate counts the agent's
   * --virtual-drift, its frequency correction and a slew in progress (up to --max-slew-ppm).
   */
  skewBoundNs: { p50: number; p99: number; max: number };
  /** Every sample in order: ms since the phase began, spread (NaN if incomplete), reply window, skew bound. */
  series: { tMs: number[]; spreadNs: number[]; replyWindowMs: number[]; skewBoundNs: number[] };
}

export interface MachineFacts {
  nproc: number;
  cpuModel: string;
  nodeVersion: string;
  kernel: string;
  /** 1-minute load average when the run started (other work on the machine skews the numbers). */
  loadAverage1m: number;
}

export interface RealBenchParameters {
  agents: number;
  nodeIds: string[];
  probes: number;
  probesPassed: boolean;
  pollIntervalS: number;
  discoveryWindowS: number | null;
  nodeFlags: string[];
  measureS: number;
  failoverS: number;
  sampleIntervalMs: number;
  offsetsS: number[];
  driftsPpm: number[];
}

export interface RealBenchReport {
  bench: 'real';
  startedAt: string;
  parameters: RealBenchParameters;
  machine: MachineFacts;
  /** From spawning the first agent to the first sample with one master, all synchronized, spread < 1 ms. */
  timeToAgreementMs: number;
  /**
   * From agreement until the frequencies have locked (every clock's rate against the host,
   * --virtual-drift + frequencyPpm, within LOCKED_RATE_SPREAD_PPM of the others): the steady
   * window starts there. Times from spawning the first agent; the largest spread on the way.
   */
  pullIn: { timeToLockMs: number; spreadNsMax: number; samples: number };
  masterId: string;
  steady: SpreadStats & {
    /** The same over the second half of the window (frequencies locked). */
    secondHalf: Pick<SpreadStats, 'spreadNs' | 'samples' | 'rmsFromMeanNs'>;
    /** Samples in which some agent other than the agreed master called itself master. */
    otherMasterSamples: number;
    frequencyPpm: { min: number; max: number };
    /**
     * max - min across agents of (--virtual-drift + status frequencyPpm), i.e. of the virtual
     * clocks' rates relative to the host as src/clock/virtual.ts computes them, in the first and
     * the last complete sample of the window: how well the frequency discipline has locked.
     */
    rateSpreadPpm: { atStart: number; atEnd: number };
  };
  failover: SpreadStats & {
    killedMasterId: string;
    newMasterId: string | null;
    /** kill -9 to the first sample in which all survivors name one new master and are synchronized. */
    timeToNewMasterMs: number | null;
    /** ... and their spread is under 1 ms again. */
    timeToAgreementMs: number | null;
    newMasterElection: { algorithm: string; durationMs: number } | null;
  };
  chrony: ChronyOutcome;
  /** 1-minute load average when the run ended. */
  loadAverage1mAtEnd: number;
  /** Our steady p99 spread / chrony's p99 |offset| (null when chrony was skipped). */
  ratio: number | null;
}

export interface RealBenchSkipped {
  bench: 'real';
  skipped: string;
  machine: MachineFacts;
}

export type RealBenchResult = RealBenchReport | RealBenchSkipped;

/** The subset of an agent's GET /status the observer sends back. */
interface AgentSample {
  index: number;
  nodeId: string;
  role: string;
  masterId: string | null;
  term: number;
  hostOffsetNs: number;
  frequencyPpm: number;
  synchronized: boolean;
  slewRemainingNs: number;
  slewRatePpm: number;
  peers: number;
  lastElection: { algorithm: string; durationMs: number } | null;
  /** tracking.updates: corrections this agent's discipline has accepted. */
  updates: number;
}

interface Sample {
  /** Local time the last reply arrived (ms since epoch). */
  atMs: number;
  replyWindowMs: number;
  answers: AgentSample[];
  /** Indexes asked that gave no usable answer. */
  missing: number[];
}

// ---------------------------------------------------------------------------------------------
// Observer: one Node process in its own lab namespace that GETs every agent's /status concurrently
// (keep-alive connections over the lab bridge) when asked on stdin, and answers with one JSON line.
// One process for all agents keeps the requests close together in time and costs one runtime, not
// one curl per agent per sample.

const OBSERVER_SCRIPT = String.raw`
import { createInterface } from 'node:readline';
const urls = JSON.parse(process.argv[1]);
const pick = (index, s) => ({
  index, nodeId: s.nodeId, role: s.role, masterId: s.masterId, term: s.term,
  hostOffsetNs: s.clock.hostOffsetNs, frequencyPpm: s.clock.frequencyPpm, synchronized: s.clock.synchronized,
  slewRemainingNs: s.clock.slewRemainingNs ?? 0, slewRatePpm: s.clock.slewRatePpm ?? 0,
  peers: Array.isArray(s.peers) ? s.peers.length : -1,
  lastElection: s.election && s.election.last ? { algorithm: s.election.last.algorithm, durationMs: s.election.last.durationMs } : null,
  updates: s.tracking ? s.tracking.updates : 0,
});
createInterface({ input: process.stdin }).on('line', async (line) => {
  const request = JSON.parse(line);
  const firstSentMs = performance.now();
  const answers = await Promise.all(request.targets.map(async (index) => {
    try {
      const response = await fetch(urls[index], { signal: AbortSignal.timeout(request.timeoutMs) });
      if (!response.ok) return { index, error: 'HTTP ' + response.status };
      return pick(index, await response.json());
    } catch (err) {
      return { index, error: String((err && err.message) || err) };
    }
  }));
  const replyWindowMs = performance.now() - firstSentMs;
  process.stdout.write(JSON.stringify({ seq: request.seq, replyWindowMs, answers }) + '\n');
});
`;

class Observer {
  private seq = 0;
  private readonly lines: LineCollector;
  private consumed = 0;

  private constructor(
    private readonly lab: NetnsLab,
    private readonly child: ChildProcess,
  ) {
    this.lines = new LineCollector(child.stdout);
  }

  static async start(lab: NetnsLab, host: LabHost, urls: string[]): Promise<Observer> {
    const child = lab.spawn(host, process.execPath, ['--input-type=module', '-e', OBSERVER_SCRIPT, JSON.stringify(urls)], { label: `observer (${host.ns})` });
    const observer = new Observer(lab, child);
    await observer.sample([], OBSERVER_START_TIMEOUT_MS);
    return observer;
  }

  /**
   * GETs /status of the agents at `targets` (indexes into the URL list) all at once.
   *
   * clock.hostOffsetNs is computed by each agent at the moment it replies (its virtual clock minus
   * the host clock, read together), not measured over the network, so replies that arrive at
   * slightly different instants do not add their skew to the spread directly: an agent's offset
   * changes between two reply instants only at its rate relative to the host clock (the common
   * rate the cluster settled on, tens of ppm at most: 50 ppm over a 2 ms reply window is 100 ns).
   */
  async sample(targets: number[], timeoutMs = STATUS_TIMEOUT_MS): Promise<Sample> {
    const seq = ++this.seq;
    this.child.stdin?.write(`${JSON.stringify({ seq, targets, timeoutMs })}\n`);
    const line = await this.lines
      .waitFor((text) => text.startsWith(`{"seq":${seq},`), timeoutMs + 5_000, `observer answer ${seq}`, this.consumed)
      .catch((err: unknown) => {
        throw new Error(`observer did not answer: ${err instanceof Error ? err.message.slice(0, 300) : String(err)}\n${this.lab.outputOf(this.child)}`);
      });
    // Answers come in order (one request at a time); drop what was read so lines do not pile up.
    this.consumed = this.lines.lines.length;
    const parsed = JSON.parse(line) as { replyWindowMs: number; answers: Array<AgentSample | { index: number; error: string }> };
    const answers = parsed.answers.filter((answer): answer is AgentSample => !('error' in answer) && typeof answer.hostOffsetNs === 'number');
    const answered = new Set(answers.map((answer) => answer.index));
    return { atMs: Date.now(), replyWindowMs: parsed.replyWindowMs, answers, missing: targets.filter((index) => !answered.has(index)) };
  }
}

// ---------------------------------------------------------------------------------------------
// The benchmark

export async function runRealBench(options: RealBenchOptions = {}): Promise<RealBenchResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const parameters = makeParameters(options);
  const machine = machineFacts();
  const available = netnsAvailable();
  if (!available.ok) {
    log(`real bench SKIPPED: ${available.reason}`);
    return { bench: 'real', skipped: available.reason, machine };
  }
  const n = parameters.agents;
  const startedAt = new Date().toISOString();
  // Hosts 1..n: agents; n+1 and n+2: chronyd server and client; n+3: the observer.
  const lab = await NetnsLab.create({ hosts: n + 3, prefix: 'bench' });
  let chronyPair: ChronyPair | null = null;
  try {
    const agentHosts = lab.hosts.slice(0, n);
    const [chronyServerHost, chronyClientHost, observerHost] = lab.hosts.slice(n) as [LabHost, LabHost, LabHost];

    // chrony first, so its start-up (iburst, first filter fill) overlaps the agents' convergence.
    let chrony: ChronyOutcome | null = null;
    if (options.chrony === false) {
      chrony = { skipped: 'disabled (--no-chrony)' };
    } else {
      const chronyd = findChronyd();
      if (chronyd === null) {
        chrony = { skipped: 'chronyd not found (Debian: apt-get install -y chrony); the chrony comparison is skipped' };
        log(`real bench: ${chrony.skipped}`);
      } else {
        try {
          chronyPair = await ChronyPair.start(lab, chronyServerHost, chronyClientHost, chronyd);
          log(`real bench: chronyd server ${chronyServerHost.address}, client ${chronyClientHost.address} (both -x)`);
        } catch (err) {
          chrony = { skipped: `chronyd did not start: ${errorText(err)}` };
          log(`real bench: ${chrony.skipped}`);
        }
      }
    }

    // Control servers listen on the lab addresses so the observer (its own namespace) reaches
    // them over the lab bridge; nothing in the root namespace can.
    const urls = agentHosts.map((host) => `http://${host.address}:${HTTP_PORT_DEFAULT}/status`);
    const observer = await Observer.start(lab, observerHost, urls);

    const agents: AgentProcess[] = [];
    const startedMs = Date.now();
    for (const [i, host] of agentHosts.entries()) {
      // Spawned here rather than through agents.ts startAgent so this file alone decides the
      // command line: --clock virtual exactly once (the agent rejects a repeated option, and the
      // kernel clock must never be touched).
      const args = [
        ...parameters.nodeFlags,
        AGENT_BIN,
        '--node-id', parameters.nodeIds[i]!,
        '--log-format', 'json',
        '--interface', host.iface,
        '--http', `${host.address}:${HTTP_PORT_DEFAULT}`,
        '--clock', 'virtual',
        '--virtual-offset', String(parameters.offsetsS[i]),
        '--virtual-drift', String(parameters.driftsPpm[i]),
        '--poll-interval', String(parameters.pollIntervalS),
      ];
      if (parameters.probesPassed) args.push('--probes', String(parameters.probes));
      if (parameters.discoveryWindowS !== null) args.push('--discovery-window', String(parameters.discoveryWindowS));
      if (args.filter((arg) => arg === '--clock').length !== 1 || args[args.indexOf('--clock') + 1] !== 'virtual') throw new Error('agents must run with --clock virtual');
      const child = lab.spawn(host, process.execPath, args, { label: `agent ${parameters.nodeIds[i]} (${host.ns})` });
      agents.push({ host, nodeId: parameters.nodeIds[i]!, child, alive: true });
    }
    const all = agents.map((_, i) => i);
    log(`real bench: ${n} agents started; waiting for agreement (one master, all synchronized, spread < 1 ms)`);

    // Agreement.
    let masterId: string | null = null;
    let timeToAgreementMs = 0;
    let last: Sample | null = null;
    while (masterId === null) {
      const exited = agents.filter((agent) => agent.child.exitCode !== null || agent.child.signalCode !== null);
      if (exited.length > 0) throw new Error(`agent(s) exited before agreement:\n${agentDiagnostics(lab, exited)}`);
      if (Date.now() - startedMs > AGREEMENT_TIMEOUT_MS) {
        throw new Error(`no agreement within ${AGREEMENT_TIMEOUT_MS} ms; last sample: ${JSON.stringify(last?.answers ?? [])}\n${agentDiagnostics(lab, agents)}`);
      }
      const due = Date.now() + SAMPLE_INTERVAL_MS;
      last = await observer.sample(all);
      const agreedId = agreedMaster(last, n);
      if (agreedId !== null && spreadOf(last) < SPREAD_LIMIT_NS) {
        masterId = agreedId;
        timeToAgreementMs = last.atMs - startedMs;
        break;
      }
      await sleep(Math.max(0, due - Date.now()));
    }
    log(`real bench: agreed on ${masterId} after ${(timeToAgreementMs / 1000).toFixed(1)} s; waiting for the frequencies to lock (rates within ${LOCKED_RATE_SPREAD_PPM} ppm)`);

    // Convergence: every agent past initial synchronization and frequency acquisition. The spread
    // on the way (the loop's pull-in) is reported too, not hidden.
    const pullInSamples: Sample[] = [];
    for (;;) {
      if (Date.now() - startedMs > AGREEMENT_TIMEOUT_MS) throw new Error(`frequencies not locked within ${AGREEMENT_TIMEOUT_MS} ms; last sample: ${JSON.stringify(pullInSamples.at(-1)?.answers ?? [])}`);
      const due = Date.now() + SAMPLE_INTERVAL_MS;
      const sample = await observer.sample(all);
      pullInSamples.push(sample);
      if (sample.answers.length === n && rateSpreadOf(sample, parameters.driftsPpm) < LOCKED_RATE_SPREAD_PPM) break;
      await sleep(Math.max(0, due - Date.now()));
    }
    const pullInSpreads = pullInSamples.filter((sample) => sample.answers.length === n).map(spreadOf);
    const pullIn = { timeToLockMs: (pullInSamples.at(-1) as Sample).atMs - startedMs, spreadNsMax: pullInSpreads.length > 0 ? Math.max(...pullInSpreads) : Number.NaN, samples: pullInSpreads.length };
    log(`real bench: locked after ${(pullIn.timeToLockMs / 1000).toFixed(1)} s (pull-in spread max ${formatNs(pullIn.spreadNsMax)}); measuring ${parameters.measureS} s`);

    // Steady state.
    const steadyStartMs = Date.now();
    const steadySamples = await sampleFor(observer, () => all, parameters.measureS * 1000);
    const steadyEndMs = Date.now();
    const steadyStats = spreadStats(steadySamples, n, parameters.driftsPpm, steadyStartMs);
    const frequencies = steadySamples.flatMap((sample) => sample.answers.map((answer) => answer.frequencyPpm));
    // The first seconds after agreement are the frequency loop's acquisition: the second half of the
    // window shows the spread once the frequencies are locked.
    const halfMs = (parameters.measureS * 1000) / 2;
    const secondHalf = spreadStats(steadySamples.filter((sample) => sample.atMs - steadyStartMs >= halfMs), n, parameters.driftsPpm, steadyStartMs + halfMs);
    const steady = {
      ...steadyStats,
      secondHalf: { spreadNs: secondHalf.spreadNs, samples: secondHalf.samples, rmsFromMeanNs: secondHalf.rmsFromMeanNs },
      otherMasterSamples: steadySamples.filter((sample) => sample.answers.some((answer) => answer.role === 'master' && answer.nodeId !== masterId)).length,
      frequencyPpm: { min: Math.min(...frequencies), max: Math.max(...frequencies) },
      rateSpreadPpm: {
        atStart: rateSpreadOf(steadySamples.find((sample) => sample.answers.length === n), parameters.driftsPpm),
        atEnd: rateSpreadOf(steadySamples.findLast((sample) => sample.answers.length === n), parameters.driftsPpm),
      },
    };
    log(`real bench: steady spread p50 ${formatNs(steady.spreadNs.p50)}, p99 ${formatNs(steady.spreadNs.p99)}, max ${formatNs(steady.spreadNs.max)}`);

    // chrony over the same window, read now and stopped so the failover phase runs without it.
    if (chronyPair !== null) {
      try {
        chrony = await chronyPair.collect(steadyStartMs, steadyEndMs);
      } catch (err) {
        chrony = { skipped: `chrony measurements unusable: ${errorText(err)}` };
      }
      await chronyPair.stop();
      chronyPair = null;
    }
    chrony ??= { skipped: 'not run' };

    // Failover: kill -9 the master (no LEAVE, no mDNS goodbye) and watch the survivors.
    const masterIndex = agents.findIndex((agent) => agent.nodeId === masterId);
    const master = agents[masterIndex]!;
    const killedMs = Date.now();
    process.kill(-master.child.pid!, 'SIGKILL');
    master.alive = false;
    const survivors = all.filter((i) => i !== masterIndex);
    log(`real bench: killed master ${masterId} (kill -9); sampling ${survivors.length} survivors for ${parameters.failoverS} s`);
    const failoverSamples = await sampleFor(observer, () => survivors, parameters.failoverS * 1000);
    const failover = failoverReport(failoverSamples, survivors.length, masterId, killedMs, parameters.driftsPpm);
    log(
      `real bench: new master ${failover.newMasterId ?? 'none'} after ` +
        `${failover.timeToNewMasterMs === null ? '-' : `${(failover.timeToNewMasterMs / 1000).toFixed(1)} s`}; ` +
        `survivor spread p99 ${formatNs(failover.spreadNs.p99)}`,
    );

    const ratio = 'skipped' in chrony || chrony.p99AbsOffsetNs <= 0 ? null : steady.spreadNs.p99 / chrony.p99AbsOffsetNs;
    const loadAverage1mAtEnd = round(loadavg()[0] ?? 0, 2);
    return { bench: 'real', startedAt, parameters, machine, timeToAgreementMs, pullIn, masterId, steady, failover, chrony, loadAverage1mAtEnd, ratio };
  } finally {
    await chronyPair?.stop();
    await lab.cleanup();
  }
}

/** The output tails of some agents (the lab's own diagnostics would also dump the observer's chatter). */
function agentDiagnostics(lab: NetnsLab, agents: AgentProcess[]): string {
  return agents
    .map((agent) => `--- ${agent.nodeId} (exit ${agent.child.exitCode ?? agent.child.signalCode ?? 'running'}) ---\n${lab.outputOf(agent.child).slice(-1500)}`)
    .join('\n');
}

/** Samples `targets()` every SAMPLE_INTERVAL_MS (on a fixed schedule; a late sample skips slots) for durationMs. */
async function sampleFor(observer: Observer, targets: () => number[], durationMs: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  const startMs = Date.now();
  let slot = 0;
  while (Date.now() - startMs < durationMs) {
    samples.push(await observer.sample(targets()));
    slot = Math.max(slot + 1, Math.ceil((Date.now() - startMs) / SAMPLE_INTERVAL_MS));
    const dueMs = startMs + slot * SAMPLE_INTERVAL_MS;
    if (dueMs - startMs >= durationMs) break;
    await sleep(Math.max(0, dueMs - Date.now()));
  }
  return samples;
}

function failoverReport(samples: Sample[], survivors: number, killedMasterId: string, killedMs: number, driftsPpm: number[]): RealBenchReport['failover'] {
  let newMasterId: string | null = null;
  let timeToNewMasterMs: number | null = null;
  let timeToAgreementMs: number | null = null;
  let newMasterElection: { algorithm: string; durationMs: number } | null = null;
  for (const sample of samples) {
    const agreedId = agreedMaster(sample, survivors);
    if (agreedId === null || agreedId === killedMasterId) continue;
    if (timeToNewMasterMs === null) {
      newMasterId = agreedId;
      timeToNewMasterMs = sample.atMs - killedMs;
      newMasterElection = sample.answers.find((answer) => answer.nodeId === agreedId)?.lastElection ?? null;
    }
    if (timeToAgreementMs === null && spreadOf(sample) < SPREAD_LIMIT_NS) timeToAgreementMs = sample.atMs - killedMs;
  }
  return { ...spreadStats(samples, survivors, driftsPpm, killedMs), killedMasterId, newMasterId, timeToNewMasterMs, timeToAgreementMs, newMasterElection };
}

/** The master every agent names, when all `expected` answered, exactly one is master and all are synchronized. */
function agreedMaster(sample: Sample, expected: number): string | null {
  if (sample.answers.length !== expected) return null;
  const masters = sample.answers.filter((answer) => answer.role === 'master');
  if (masters.length !== 1) return null;
  const id = masters[0]!.nodeId;
  return sample.answers.every((answer) => answer.masterId === id && answer.synchronized) ? id : null;
}

function spreadOf(sample: Sample): number {
  const offsets = sample.answers.map((answer) => answer.hostOffsetNs);
  return Math.max(...offsets) - Math.min(...offsets);
}

function rateSpreadOf(sample: Sample | undefined, driftsPpm: number[]): number {
  if (sample === undefined) return Number.NaN;
  const rates = sample.answers.map((answer) => (driftsPpm[answer.index] ?? 0) + answer.frequencyPpm);
  return round(Math.max(...rates) - Math.min(...rates), 3);
}

/** Upper bound on what the reply skew of one sample adds to its spread (see SpreadStats.skewBoundNs). */
function skewBoundOf(sample: Sample, driftsPpm: number[]): number {
  let ratePpmMax = 0;
  for (const answer of sample.answers) {
    const slewPpm = answer.slewRemainingNs === 0 ? 0 : Math.abs(answer.slewRatePpm);
    // Drift and frequency added in absolute value: an over-estimate if the status's frequencyPpm
    // already includes the drift, never an under-estimate.
    ratePpmMax = Math.max(ratePpmMax, Math.abs(driftsPpm[answer.index] ?? 0) + Math.abs(answer.frequencyPpm) + slewPpm);
  }
  // 1 ppm over 1 ms is 1 ns.
  return ratePpmMax * sample.replyWindowMs;
}

function spreadStats(samples: Sample[], expected: number, driftsPpm: number[], phaseStartMs: number): SpreadStats {
  const complete = samples.filter((sample) => sample.answers.length === expected);
  const spreads = complete.map(spreadOf);
  let squares = 0;
  let count = 0;
  for (const sample of complete) {
    const mean = sample.answers.reduce((sum, answer) => sum + answer.hostOffsetNs, 0) / sample.answers.length;
    for (const answer of sample.answers) {
      squares += (answer.hostOffsetNs - mean) ** 2;
      count += 1;
    }
  }
  const windows = samples.map((sample) => sample.replyWindowMs);
  const bounds = samples.map((sample) => skewBoundOf(sample, driftsPpm));
  return {
    spreadNs: { p50: percentile(spreads, 0.5), p99: percentile(spreads, 0.99), max: spreads.length > 0 ? Math.max(...spreads) : Number.NaN },
    rmsFromMeanNs: count > 0 ? Math.sqrt(squares / count) : Number.NaN,
    samples: complete.length,
    incompleteSamples: samples.length - complete.length,
    notAgreedSamples: samples.filter((sample) => agreedMaster(sample, expected) === null).length,
    replyWindowMs: { p50: percentile(windows, 0.5), p99: percentile(windows, 0.99) },
    skewBoundNs: { p50: percentile(bounds, 0.5), p99: percentile(bounds, 0.99), max: Math.max(...bounds) },
    series: {
      tMs: samples.map((sample) => sample.atMs - phaseStartMs),
      spreadNs: samples.map((sample) => (sample.answers.length === expected ? spreadOf(sample) : Number.NaN)),
      replyWindowMs: windows.map((ms) => round(ms, 3)),
      skewBoundNs: bounds.map((ns) => Math.round(ns)),
    },
  };
}

function makeParameters(options: RealBenchOptions): RealBenchParameters {
  const agents = options.agents ?? AGENTS_DEFAULT;
  if (!Number.isInteger(agents) || agents < 2 || agents > AGENTS_MAX) throw new RangeError(`agents must be a whole number in 2..${AGENTS_MAX}, got ${agents}`);
  const measureS = options.measureS ?? MEASURE_S_DEFAULT;
  const failoverS = options.failoverS ?? FAILOVER_S_DEFAULT;
  for (const [name, value] of [['measureS', measureS], ['failoverS', failoverS]] as const) {
    if (!Number.isFinite(value) || value <= 0 || value > 24 * 3600) throw new RangeError(`${name} must be a number of seconds in (0, 86400], got ${value}`);
  }
  const probes = options.probes ?? PROBES_PER_ROUND_DEFAULT;
  if (!Number.isInteger(probes) || probes < 1 || probes > PROBES_PER_ROUND_MAX) throw new RangeError(`probes must be a whole number in 1..${PROBES_PER_ROUND_MAX}, got ${probes}`);
  const discoveryWindowS = options.discoveryWindowS ?? null;
  if (discoveryWindowS !== null && !(Number.isFinite(discoveryWindowS) && discoveryWindowS >= 0)) throw new RangeError(`discoveryWindowS must be a number of seconds >= 0, got ${discoveryWindowS}`);
  // Evenly over [-span/2, +span/2] (so the extremes are exactly 2 s and 100 ppm apart), in an order
  // that is deterministic but not monotonic in node id: the master (highest id) is not an extreme,
  // and offset and drift are not correlated.
  const offsetsS = spreadEvenly(agents, OFFSET_SPAN_S, 3).map((x) => round(x, 6));
  const driftsPpm = spreadEvenly(agents, DRIFT_SPAN_PPM, 5).map((x) => round(x, 3));
  const width = String(agents).length;
  return {
    agents,
    nodeIds: Array.from({ length: agents }, (_, i) => `bench-${String(i + 1).padStart(width, '0')}`),
    probes,
    probesPassed: options.probes !== undefined,
    pollIntervalS: POLL_INTERVAL_S,
    discoveryWindowS,
    nodeFlags: options.nodeFlags ?? [...AGENT_NODE_FLAGS],
    measureS,
    failoverS,
    sampleIntervalMs: SAMPLE_INTERVAL_MS,
    offsetsS,
    driftsPpm,
  };
}

/** n values evenly over [-span/2, span/2], value k going to position (k * stride) mod n. */
function spreadEvenly(n: number, span: number, stride: number): number[] {
  let step = stride;
  while (gcd(step, n) !== 1) step += 1;
  const values = new Array<number>(n);
  for (let k = 0; k < n; k++) values[(k * step) % n] = -span / 2 + (span * k) / (n - 1);
  return values;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale + 0;
}

function machineFacts(): MachineFacts {
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    nodeVersion: process.version,
    kernel: release(),
    loadAverage1m: round(loadavg()[0] ?? 0, 2),
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// Output

function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return '-';
  const abs = Math.abs(ns);
  if (abs >= 1e9) return `${(ns / 1e9).toFixed(2)} s`;
  if (abs >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (abs >= 1e3) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${ns.toFixed(0)} ns`;
}

function formatMs(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`;
}

export function formatRealBench(result: RealBenchResult): string {
  if ('skipped' in result) return `real-process benchmark SKIPPED: ${result.skipped}`;
  const { parameters: p, machine: m, steady, failover, chrony } = result;
  const rows: string[][] = [['', 'p50', 'p99', 'max', 'samples']];
  const spreadRow = (label: string, stats: SpreadStats): string[] => [label, formatNs(stats.spreadNs.p50), formatNs(stats.spreadNs.p99), formatNs(stats.spreadNs.max), `${stats.samples}${stats.incompleteSamples > 0 ? ` (+${stats.incompleteSamples} incomplete)` : ''}`];
  rows.push(spreadRow(`steady spread, ${p.agents} agents`, steady));
  rows.push([`  its second half (locked)`, formatNs(steady.secondHalf.spreadNs.p50), formatNs(steady.secondHalf.spreadNs.p99), formatNs(steady.secondHalf.spreadNs.max), String(steady.secondHalf.samples)]);
  rows.push(spreadRow(`after kill -9, ${p.agents - 1} survivors`, failover));
  if ('skipped' in chrony) {
    rows.push(['chrony |offset|', 'skipped', '', '', '']);
  } else {
    rows.push(['chrony |offset|, 2 namespaces', formatNs(chrony.p50AbsOffsetNs), formatNs(chrony.p99AbsOffsetNs), formatNs(chrony.maxAbsOffsetNs), String(chrony.samples)]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const table = rows.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
  const lines = [
    `real-process benchmark: ${p.agents} agents over mDNS in network namespaces, poll ${p.pollIntervalS} s, probes ${p.probes}${p.probesPassed ? '' : ' (default)'}, node ${p.nodeFlags.join(' ') || '(no flags)'}, ` +
      `clocks started ${OFFSET_SPAN_S} s / ${DRIFT_SPAN_PPM} ppm apart; ${p.measureS} s measured; ${m.nproc} CPUs, Node ${m.nodeVersion}, ` +
      `load ${m.loadAverage1m} at start, ${result.loadAverage1mAtEnd} at end`,
    ...table,
    `agreement after start: ${formatMs(result.timeToAgreementMs)} (master ${result.masterId}); frequencies locked (steady window starts) after ${formatMs(result.pullIn.timeToLockMs)}, spread on the way up to ${formatNs(result.pullIn.spreadNsMax)}; steady RMS from the mean ${formatNs(steady.rmsFromMeanNs)}; ` +
      `not agreed in ${steady.notAgreedSamples} of ${steady.samples + steady.incompleteSamples} samples; ` +
      `clock rates (drift + frequency) ${steady.rateSpreadPpm.atStart} ppm apart at the start of the window, ${steady.rateSpreadPpm.atEnd} ppm at the end`,
    `reply skew: window p50 ${steady.replyWindowMs.p50.toFixed(1)} ms, p99 ${steady.replyWindowMs.p99.toFixed(1)} ms; ` +
      `what it can add to a spread: p50 ${formatNs(steady.skewBoundNs.p50)}, p99 ${formatNs(steady.skewBoundNs.p99)}`,
    `failover: killed ${failover.killedMasterId}; new master ${failover.newMasterId ?? 'none'} agreed after ${formatMs(failover.timeToNewMasterMs)}` +
      `${failover.newMasterElection ? ` (${failover.newMasterElection.algorithm} election)` : ''}, spread < 1 ms after ${formatMs(failover.timeToAgreementMs)}`,
  ];
  if ('skipped' in chrony) {
    lines.push(`chrony: skipped: ${chrony.skipped}`);
  } else {
    lines.push(
      `chrony (true offset 0): RMS ${formatNs(chrony.rmsOffsetNs)}, p99 |offset| ${formatNs(chrony.p99AbsOffsetNs)} over ${chrony.samples} samples ` +
        `(${chrony.interleavedKernelSamples} interleaved with kernel timestamps, median delay ${formatNs(chrony.p50DelayNs)})` +
        `${chrony.tracking ? `; chronyc tracking RMS offset ${formatNs(chrony.tracking.rmsOffsetNs)}` : ''}`,
    );
    lines.push(
      `ours vs chrony: steady p99 spread ${formatNs(steady.spreadNs.p99)} vs chrony RMS ${formatNs(chrony.rmsOffsetNs)} / p99 ${formatNs(chrony.p99AbsOffsetNs)}: ` +
        `ratio (our p99 spread / chrony p99 |offset|) ${result.ratio === null ? '-' : `${result.ratio.toFixed(1)}x`}`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Command line

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(resolve(entry)) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      agents: { type: 'string' },
      'measure-s': { type: 'string' },
      'failover-s': { type: 'string' },
      probes: { type: 'string' },
      'discovery-window': { type: 'string' },
      'node-flags': { type: 'string' },
      'no-chrony': { type: 'boolean', default: false },
      out: { type: 'string', default: OUT_DEFAULT },
    },
  });
  const number = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed)) throw new RangeError(`--${name} must be a number, got '${value}'`);
    return parsed;
  };
  let options: RealBenchOptions;
  try {
    options = {
      agents: number('agents', values.agents),
      measureS: number('measure-s', values['measure-s']),
      failoverS: number('failover-s', values['failover-s']),
      probes: number('probes', values.probes),
      discoveryWindowS: number('discovery-window', values['discovery-window']),
      nodeFlags: values['node-flags']?.split(/\s+/).filter((flag) => flag !== ''),
      chrony: !values['no-chrony'],
    };
    makeParameters(options);
  } catch (err) {
    process.stderr.write(`real bench: ${errorText(err)}\n`);
    process.exit(2);
  }
  const result = await runRealBench(options);
  const out = resolve(values.out ?? OUT_DEFAULT);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${formatRealBench(result)}\n(written to ${out})\n`);
}

if (isMain()) {
  main().catch((err: unknown) => {
    process.stderr.write(`real bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
