// Following an upstream on real processes (issue 18), shared by test/e2e/upstream.test.ts and
// scripts/bench/upstream.ts. A NetnsLab with:
// - h1: chronyd -x (`local stratum 1`, never touches the clock) serving the host clock: "the
//   upstream". It is stopped and started again by the scenario. Namespaces share the host clock,
//   so an agent's clock.hostOffsetNs is its distance to the upstream.
// - h2..h(N+1): N agents, virtual clocks started up to +-2 s and +-100 ppm off (deliberately not
//   centred on the host, so the cluster's own average is far from the upstream), static peers,
//   some or all of them with --upstream h1.
// - optionally (`disagreement`), beside them and independent of them: two more chronyd (B, C), a
//   "wrong upstream" W (our own NTP server, src/net/ntp-server.ts through lab/ntp/upstream-probe.ts,
//   serving the host clock + 3 s as a synchronized stratum-10 server), and two lone agents: one
//   with --upstream B and W (two servers seconds apart: no majority), one with B, C and W (W is a
//   falseticker). They start 1 s off the host, so "followed the right one" (-> 0), "followed the
//   wrong one" (-> +3 s) and "followed neither" (stays at +1 s) tell apart.
// Phases (runPhases; each also a method): optionally let the cluster keep its own time first and
// only then start the upstream (lateUpstreamMs: an upstream appearing over an established cluster),
// wait until the cluster follows the upstream, let it settle, observe a window, stop the upstream
// and observe the holdover, start it again and wait for the return. Every status read is kept as a Snapshot, so the test asserts and the bench measures the
// same records. Agents always run --clock virtual. Cleanup (close()) kills every process and deletes
// every namespace; the lab also does so from exit and signal handlers.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChronydServer } from '../ntp/chronyd-server.ts';
import type { ProbeConfig } from '../ntp/upstream-probe.ts';
import { startAgent, startStaticAgent, statusOf, type AgentProcess } from './agents.ts';
import { NetnsLab, sleep, type LabHost } from './netns.ts';

const PROBE = fileURLToPath(new URL('../ntp/upstream-probe.ts', import.meta.url));
export const CHRONY_PORT = 11123;
export const WRONG_PORT = 11124;
/** The wrong upstream's offset from the host clock. */
export const WRONG_OFFSET_NS = 3_000_000_000;
/** Where the disagreement agents start: neither on the right upstream (0) nor on the wrong one. */
export const DISAGREEMENT_START_OFFSET_NS = 1_000_000_000;
/** How long the wrong upstream serves (it is killed with the lab long before). */
const WRONG_SERVER_LIFETIME_MS = 6 * 3600_000;
const STATUS_TIMEOUT_MS = 3_000;

/** The upstream part of `status --json` (issue 18's contract), read loosely: fields may be absent. */
export interface UpstreamStatusView {
  mode?: 'acquiring' | 'standby' | 'following' | 'holdover' | 'refused';
  healthy?: boolean;
  /** Estimates turned into corrections of the clock (as master). */
  corrections?: number;
  servers?: { host?: string; port?: number; reachable?: boolean; offsetNs?: number | null; stratum?: number | null; verdict?: string | null; reason?: string | null }[];
  selection?: { ok?: boolean; offsetNs?: number | null; errorBoundNs?: number | null; code?: string | null; reason?: string | null; servers?: { id?: string; verdict?: string; reason?: string }[] };
}

/** One agent's status at one instant, reduced to what the scenario reasons about. */
export interface AgentSample {
  nodeId: string;
  role: string;
  masterId: string | null;
  term: number;
  synchronized: boolean;
  hostOffsetNs: number;
  steps: number;
  frequencyPpm: number;
  /** The virtual clock's deliberate oscillator error (--virtual-drift): frequencyPpm + this is what is left uncorrected. */
  virtualDriftPpm: number;
  reference: string | null;
  clockClass: number | null;
  upstream: UpstreamStatusView | null;
}

export interface Snapshot {
  /** ms since the scenario started its agents. */
  atMs: number;
  phase: string;
  /** Agents that answered (a missing one did not). */
  agents: AgentSample[];
}

export interface UpstreamScenarioOptions {
  prefix: string;
  agents: number;
  /** 0-based indices of the agents given --upstream, or 'all'. */
  withUpstream: number[] | 'all';
  /** --poll-interval of the agents, s. */
  pollIntervalS?: number;
  /** --upstream-poll, s. */
  upstreamPollS?: number;
  /**
   * Start the upstream only once the cluster has agreed on its own time and kept it this long
   * (an upstream appearing over an established cluster: one takeover, then slewed onto it); by
   * default it runs before the agents start.
   */
  lateUpstreamMs?: number;
  /** More options for every agent (e.g. --max-slew-ppm). */
  agentArgs?: string[];
  /** Also start the disagreement part (two more chronyd, a wrong upstream, two lone agents). */
  disagreement?: boolean;
  chronydBinary: string;
  log?: (line: string) => void;
}

const num = (value: unknown): number => (typeof value === 'number' ? value : Number.NaN);

function reduce(report: Record<string, unknown>): AgentSample {
  const clock = (report.clock ?? {}) as Record<string, unknown>;
  return {
    nodeId: String(report.nodeId),
    role: String(report.role),
    masterId: (report.masterId as string | null) ?? null,
    term: num(report.term),
    synchronized: clock.synchronized === true,
    hostOffsetNs: num(clock.hostOffsetNs),
    steps: num(clock.steps),
    frequencyPpm: num(clock.frequencyPpm),
    virtualDriftPpm: num(clock.virtualDriftPpm),
    reference: typeof clock.reference === 'string' ? clock.reference : typeof report.reference === 'string' ? report.reference : null,
    clockClass: typeof report.clockClass === 'number' ? report.clockClass : null,
    upstream: (report.upstream as UpstreamStatusView | null | undefined) ?? null,
  };
}

/** Default starting offsets: evenly from +2 s down to -1 s (mean +0.5 s: not on the upstream). */
export function startOffsetS(index: number, count: number): number {
  return count === 1 ? 2 : 2 - (3 * index) / (count - 1);
}

/** Default oscillator errors: evenly from -100 to +100 ppm. */
export function startDriftPpm(index: number, count: number): number {
  return count === 1 ? 100 : -100 + (200 * index) / (count - 1);
}

export class UpstreamScenario {
  readonly snapshots: Snapshot[] = [];
  readonly agents: AgentProcess[] = [];
  /** The lone agents of the disagreement part: [two servers, three servers]. */
  readonly disagreementAgents: AgentProcess[] = [];
  private upstream: ChildProcess | null = null;
  private startedMs = 0;
  private phase = 'start';
  private readonly log: (line: string) => void;

  private constructor(
    readonly lab: NetnsLab,
    readonly options: UpstreamScenarioOptions,
    private readonly dir: string,
  ) {
    this.log = options.log ?? (() => {});
  }

  /** Builds the lab, starts the upstream and the agents. On failure, cleans up before throwing. */
  static async start(options: UpstreamScenarioOptions): Promise<UpstreamScenario> {
    const extraHosts = options.disagreement === true ? 5 : 0;
    const lab = await NetnsLab.create({ hosts: 1 + options.agents + extraHosts, prefix: options.prefix });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'upstream-scenario-'));
    const scenario = new UpstreamScenario(lab, options, dir);
    try {
      await scenario.launch();
    } catch (error) {
      const diagnostics = lab.diagnostics();
      await scenario.close();
      throw new Error(`${(error as Error).message}\n${diagnostics}`);
    }
    return scenario;
  }

  get upstreamHost(): LabHost {
    return this.lab.hosts[0] as LabHost;
  }

  private agentHosts(): LabHost[] {
    return this.lab.hosts.slice(1, 1 + this.options.agents);
  }

  private async launch(): Promise<void> {
    const { options, lab } = this;
    const upstreamArg = ['--upstream', `${this.upstreamHost.address}:${CHRONY_PORT}`];
    const pollArgs = ['--upstream-poll', String(options.upstreamPollS ?? 1)];
    const common = ['--poll-interval', String(options.pollIntervalS ?? 1), '--discovery-window', '3', '--ntp-port', '0', ...(options.agentArgs ?? [])];
    if (options.lateUpstreamMs === undefined) this.upstream = await startChronydServer(lab, this.upstreamHost, { binary: options.chronydBinary, port: CHRONY_PORT, dir: this.dir });
    if (options.disagreement === true) await this.launchDisagreement(pollArgs, common);
    this.startedMs = Date.now();
    const hosts = this.agentHosts();
    for (const [index, host] of hosts.entries()) {
      const upstream = options.withUpstream === 'all' || options.withUpstream.includes(index) ? [...upstreamArg, ...pollArgs] : [];
      const offsetS = startOffsetS(index, hosts.length);
      const driftPpm = startDriftPpm(index, hosts.length);
      this.agents.push(startStaticAgent(lab, host, `up-${index + 1}`, [
        ...common, '--virtual-offset', offsetS.toFixed(3), '--virtual-drift', driftPpm.toFixed(1), ...upstream,
      ], hosts));
      this.log(`agent up-${index + 1} in h${host.index}: offset ${offsetS.toFixed(3)} s, drift ${driftPpm.toFixed(1)} ppm${upstream.length > 0 ? ', --upstream' : ''}`);
    }
  }

  private async launchDisagreement(pollArgs: string[], common: string[]): Promise<void> {
    const { lab, options } = this;
    const base = 1 + options.agents;
    const [chronyB, chronyC, wrong, two, three] = lab.hosts.slice(base, base + 5) as [LabHost, LabHost, LabHost, LabHost, LabHost];
    await startChronydServer(lab, chronyB, { binary: options.chronydBinary, port: CHRONY_PORT, dir: this.dir });
    await startChronydServer(lab, chronyC, { binary: options.chronydBinary, port: CHRONY_PORT, dir: this.dir });
    // The wrong upstream: the probe with no client runs, only its NTP server, serving host + 3 s.
    const config: ProbeConfig = { durationMs: WRONG_SERVER_LIFETIME_MS, pollIntervalMs: 1000, runs: [], ntpServer: { address: wrong.address, port: WRONG_PORT, offsetNs: WRONG_OFFSET_NS } };
    lab.spawn(wrong, process.execPath, ['--import', 'tsx', PROBE, JSON.stringify(config)], { label: `wrong upstream (host + 3 s) h${wrong.index}` });
    const server = (host: LabHost, port: number) => ['--upstream', `${host.address}:${port}`];
    const lone = ['--no-mdns', '--virtual-offset', (DISAGREEMENT_START_OFFSET_NS / 1e9).toFixed(3), ...pollArgs, ...common];
    this.disagreementAgents.push(
      startAgent(lab, two, 'dis-2', [...lone, '--bind', two.address, ...server(chronyB, CHRONY_PORT), ...server(wrong, WRONG_PORT)]),
      startAgent(lab, three, 'dis-3', [...lone, '--bind', three.address, ...server(chronyB, CHRONY_PORT), ...server(wrong, WRONG_PORT), ...server(chronyC, CHRONY_PORT)]),
    );
    this.log(`disagreement: dis-2 with chronyd h${chronyB.index} + wrong h${wrong.index}; dis-3 with chronyd h${chronyB.index}, wrong h${wrong.index}, chronyd h${chronyC.index}`);
  }

  /** ms since the agents were started. */
  elapsedMs(): number {
    return Date.now() - this.startedMs;
  }

  setPhase(phase: string): void {
    this.phase = phase;
    this.log(`[${(this.elapsedMs() / 1000).toFixed(1)} s] phase ${phase}`);
  }

  /** Reads every main agent's status once and records it. */
  async sample(): Promise<Snapshot> {
    const reports = await Promise.all(this.agents.map((agent) => statusOf(this.lab, agent)));
    const snapshot: Snapshot = {
      atMs: this.elapsedMs(),
      phase: this.phase,
      agents: reports.filter((report) => report !== null).map((report) => reduce(report as unknown as Record<string, unknown>)),
    };
    this.snapshots.push(snapshot);
    return snapshot;
  }

  /** The disagreement agents' statuses, [two servers, three servers] (null: no answer). */
  async disagreementSamples(): Promise<(AgentSample | null)[]> {
    const reports = await Promise.all(this.disagreementAgents.map((agent) => statusOf(this.lab, agent)));
    return reports.map((report) => (report === null ? null : reduce(report as unknown as Record<string, unknown>)));
  }

  /**
   * Samples until `done(snapshot)` holds (returns that snapshot) or timeoutMs passes (throws with
   * the last snapshot and the lab's diagnostics).
   */
  async waitFor(what: string, timeoutMs: number, done: (snapshot: Snapshot) => boolean, intervalMs = 500): Promise<Snapshot> {
    const deadline = Date.now() + timeoutMs;
    let last: Snapshot | null = null;
    while (Date.now() < deadline) {
      last = await this.sample();
      if (done(last)) return last;
      await sleep(intervalMs);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last snapshot:\n${describeSnapshot(last)}\n${this.lab.diagnostics()}`);
  }

  /** Samples for durationMs; returns the snapshots of this window. */
  async observe(durationMs: number, intervalMs = 500): Promise<Snapshot[]> {
    const window: Snapshot[] = [];
    const deadline = Date.now() + durationMs;
    while (Date.now() < deadline) {
      window.push(await this.sample());
      await sleep(intervalMs);
    }
    return window;
  }

  /** Stops the upstream chronyd (SIGTERM to its process group) and waits for it to exit. */
  async stopUpstream(): Promise<void> {
    const child = this.upstream;
    if (child === null || child.exitCode !== null || child.signalCode !== null) throw new Error('the upstream is not running');
    const exited = once(child, 'exit');
    process.kill(-(child.pid as number), 'SIGTERM');
    await exited;
    this.upstream = null;
  }

  async startUpstream(): Promise<void> {
    if (this.upstream !== null) throw new Error('the upstream is already running');
    this.upstream = await startChronydServer(this.lab, this.upstreamHost, { binary: this.options.chronydBinary, port: CHRONY_PORT, dir: this.dir });
  }

  async close(): Promise<void> {
    await this.lab.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Reading snapshots

export function describeSnapshot(snapshot: Snapshot | null): string {
  if (snapshot === null) return '(none)';
  return JSON.stringify(
    snapshot.agents.map((agent) => ({
      id: agent.nodeId, role: agent.role, master: agent.masterId, term: agent.term, sync: agent.synchronized, offUs: Math.round(agent.hostOffsetNs / 1e3),
      steps: agent.steps, ref: agent.reference, cls: agent.clockClass, mode: agent.upstream?.mode ?? null, sel: agent.upstream?.selection?.code ?? (agent.upstream?.selection?.ok === true ? 'ok' : null),
    })),
    null,
    1,
  );
}

/** The one master every answering agent names, or null (none, several, or not all agree). */
export function agreedMaster(snapshot: Snapshot, expected: number): string | null {
  if (snapshot.agents.length !== expected) return null;
  const masters = snapshot.agents.filter((agent) => agent.role === 'master');
  if (masters.length !== 1) return null;
  const masterId = (masters[0] as AgentSample).nodeId;
  return snapshot.agents.every((agent) => agent.masterId === masterId) ? masterId : null;
}

export function maxAbsOffsetNs(snapshot: Snapshot): number {
  return Math.max(...snapshot.agents.map((agent) => Math.abs(agent.hostOffsetNs)));
}

export function spreadNs(snapshot: Snapshot): number {
  const offsets = snapshot.agents.map((agent) => agent.hostOffsetNs);
  return Math.max(...offsets) - Math.min(...offsets);
}

/**
 * The cluster follows the upstream: one agreed master, every agent synchronized with reference
 * 'upstream', the master's upstream mode 'following', and every clock within toleranceNs of the host.
 */
export function following(snapshot: Snapshot, expected: number, toleranceNs: number): boolean {
  const masterId = agreedMaster(snapshot, expected);
  if (masterId === null) return false;
  const master = snapshot.agents.find((agent) => agent.nodeId === masterId) as AgentSample;
  return master.upstream?.mode === 'following'
    && snapshot.agents.every((agent) => agent.synchronized && agent.reference === 'upstream')
    && maxAbsOffsetNs(snapshot) < toleranceNs;
}

/** Distinct (master, term) pairs over a window, in order, counting only snapshots with one agreed master. */
export function mastersSeen(window: Snapshot[], expected: number): { masterId: string; term: number }[] {
  const seen: { masterId: string; term: number }[] = [];
  for (const snapshot of window) {
    const masterId = agreedMaster(snapshot, expected);
    if (masterId === null) continue;
    const term = (snapshot.agents.find((agent) => agent.nodeId === masterId) as AgentSample).term;
    const last = seen.at(-1);
    if (last === undefined || last.masterId !== masterId || last.term !== term) seen.push({ masterId, term });
  }
  return seen;
}

/** Per agent: clock.steps at the first and last snapshot of a window where it answered. */
export function stepsOver(window: Snapshot[]): Map<string, { first: number; last: number }> {
  const steps = new Map<string, { first: number; last: number }>();
  for (const snapshot of window) {
    for (const agent of snapshot.agents) {
      const entry = steps.get(agent.nodeId);
      if (entry === undefined) steps.set(agent.nodeId, { first: agent.steps, last: agent.steps });
      else entry.last = agent.steps;
    }
  }
  return steps;
}

/** Snapshots that had no single agreed master (an election in progress, or disagreement). */
export function withoutAgreedMaster(window: Snapshot[], expected: number): number {
  return window.filter((snapshot) => agreedMaster(snapshot, expected) === null).length;
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

export function distribution(values: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  return { n: values.length, p50: percentile(values, 0.5), p90: percentile(values, 0.9), p99: percentile(values, 0.99), max: values.length === 0 ? Number.NaN : Math.max(...values) };
}

/** |hostOffsetNs| of every agent in every snapshot of a window. */
export function absOffsetsNs(window: Snapshot[]): number[] {
  return window.flatMap((snapshot) => snapshot.agents.map((agent) => Math.abs(agent.hostOffsetNs)));
}

/** The master's upstream modes over a window, collapsed ('following', 'holdover', ...). */
export function masterModes(window: Snapshot[], expected: number): string[] {
  const modes: string[] = [];
  for (const snapshot of window) {
    const masterId = agreedMaster(snapshot, expected);
    const mode = snapshot.agents.find((agent) => agent.nodeId === masterId)?.upstream?.mode ?? 'none';
    if (masterId !== null && modes.at(-1) !== mode) modes.push(mode);
  }
  return modes;
}

// ---------------------------------------------------------------------------------------------
// The phases in order, as the test and the benchmark run them

export interface PhaseTimings {
  /** Give up waiting for the cluster to follow after this long. */
  followTimeoutMs: number;
  /** |hostOffsetNs| under which an agent counts as on the upstream. */
  followToleranceNs: number;
  /** Once following, let the loops settle this long (the frequency is learned in the first polls). */
  settleMs: number;
  /** Then observe this long. */
  followWindowMs: number;
  /** Keep the upstream stopped this long; null: end after the follow window (no holdover, no return). */
  holdoverMs: number | null;
  /** Give up waiting for the return after this long. */
  returnTimeoutMs: number;
  /** Observe this long after the return. */
  returnWindowMs: number;
  intervalMs?: number;
}

export interface UpstreamRun {
  agents: number;
  withUpstream: number[] | 'all';
  /** From starting the agents until following() held. */
  followAtMs: number;
  /** When the upstream was started (0: before the agents; later with lateUpstreamMs), ms since the agents started. */
  upstreamStartedAtMs: number;
  /** With lateUpstreamMs: the snapshots while the cluster kept its own time, before the upstream started. */
  establishedWindow: Snapshot[];
  /** Every snapshot until then. */
  acquireWindow: Snapshot[];
  /** Per agent: first time its |hostOffsetNs| was under the tolerance (and stayed so to followAtMs). */
  agentOnUpstreamAtMs: Record<string, number>;
  masterFollowing: string;
  /** From following until the follow window. */
  settleWindow: Snapshot[];
  followWindow: Snapshot[];
  stoppedAtMs: number;
  holdoverWindow: Snapshot[];
  restartedAtMs: number;
  /** From restarting the upstream until following() held again. */
  returnAfterMs: number;
  returnWindow: Snapshot[];
}

/** Runs phases b-d (the scenario has started its agents: phase a). */
export async function runPhases(scenario: UpstreamScenario, timings: PhaseTimings): Promise<UpstreamRun> {
  const expected = scenario.agents.length;
  const intervalMs = timings.intervalMs ?? 500;
  const tolerance = timings.followToleranceNs;
  let upstreamStartedAtMs = 0;
  let establishedWindow: Snapshot[] = [];
  if (scenario.options.lateUpstreamMs !== undefined) {
    scenario.setPhase('establish');
    await scenario.waitFor('the cluster to agree on its own time', timings.followTimeoutMs, (snapshot) => agreedMaster(snapshot, expected) !== null && snapshot.agents.every((agent) => agent.synchronized), intervalMs);
    establishedWindow = await scenario.observe(scenario.options.lateUpstreamMs, intervalMs);
    await scenario.startUpstream();
    upstreamStartedAtMs = scenario.elapsedMs();
  }
  scenario.setPhase('acquire');
  const followed = await scenario.waitFor('the cluster to follow the upstream', timings.followTimeoutMs, (snapshot) => following(snapshot, expected, tolerance), intervalMs);
  const followAtMs = followed.atMs;
  const agentOnUpstreamAtMs: Record<string, number> = {};
  for (const agent of followed.agents) {
    // The earliest snapshot from which on this agent stayed within the tolerance.
    let since = followAtMs;
    for (const snapshot of [...scenario.snapshots].reverse()) {
      if (snapshot.atMs < upstreamStartedAtMs) break;
      const sample = snapshot.agents.find((entry) => entry.nodeId === agent.nodeId);
      if (sample === undefined || Math.abs(sample.hostOffsetNs) >= tolerance) break;
      since = snapshot.atMs;
    }
    agentOnUpstreamAtMs[agent.nodeId] = since;
  }
  const masterFollowing = agreedMaster(followed, expected) as string;
  const acquireWindow = scenario.snapshots.filter((snapshot) => snapshot.phase === 'acquire');
  scenario.setPhase('settle');
  const settleWindow = await scenario.observe(timings.settleMs, intervalMs);
  scenario.setPhase('follow');
  const followWindow = await scenario.observe(timings.followWindowMs, intervalMs);
  const common = {
    agents: expected, withUpstream: scenario.options.withUpstream, followAtMs, upstreamStartedAtMs, establishedWindow, agentOnUpstreamAtMs, masterFollowing, acquireWindow, settleWindow, followWindow,
  };
  if (timings.holdoverMs === null) return { ...common, stoppedAtMs: Number.NaN, holdoverWindow: [], restartedAtMs: Number.NaN, returnAfterMs: Number.NaN, returnWindow: [] };
  scenario.setPhase('holdover');
  await scenario.stopUpstream();
  const stoppedAtMs = scenario.elapsedMs();
  const holdoverWindow = await scenario.observe(timings.holdoverMs, intervalMs);
  scenario.setPhase('return');
  await scenario.startUpstream();
  const restartedAtMs = scenario.elapsedMs();
  const back = await scenario.waitFor('the cluster to follow the upstream again', timings.returnTimeoutMs, (snapshot) => following(snapshot, expected, tolerance), intervalMs);
  const returnAfterMs = back.atMs - restartedAtMs;
  scenario.setPhase('back');
  const afterReturn = await scenario.observe(timings.returnWindowMs, intervalMs);
  const returnWindow = scenario.snapshots.filter((snapshot) => snapshot.atMs >= restartedAtMs && !afterReturn.includes(snapshot)).concat(afterReturn);
  return { ...common, stoppedAtMs, holdoverWindow, restartedAtMs, returnAfterMs, returnWindow };
}
