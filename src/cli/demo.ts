// `demo`: a local cluster of N agents in this process, on loopback with static peers (no mDNS, no
// root), virtual clocks started up to 2 s and 100 ppm apart. Shows a live table while they elect
// and converge, stops the master half-way to show a failover, and ends with a summary that says
// where the clocks settled and why (the start rule of src/core/sync/berkeley.ts).
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { HostClock } from '../clock/host.ts';
import { buildRunConfig } from '../daemon/config.ts';
import { startDaemon, StartupError, type RunningDaemon } from '../daemon/daemon.ts';
import type { StatusReport } from '../daemon/status.ts';
import { berkeleyRound, type ReferenceBasis } from '../core/sync/berkeley.ts';
import { formatOffsetNs, formatDurationNs } from './format.ts';
import { DEMO_CONVERGED_SPREAD_NS } from '../core/limits.ts';

export interface DemoOptions {
  nodes: number;
  durationS: number;
  pollIntervalS: number;
  failover: boolean;
  json: boolean;
  /** Serve agent k's dashboard on 127.0.0.1:(dashboardPort + k - 1); 0 = any free ports; null = none. */
  dashboardPort: number | null;
  /** Seed-free by design: a demo shows a different random start each time. */
  out: NodeJS.WriteStream;
}

export interface DemoSummary {
  nodes: number;
  durationS: number;
  master: string | null;
  term: number;
  /** From start until every running agent named the same master. */
  electedAfterS: number | null;
  /** From start until the spread first fell under 1 ms with every agent synchronized. */
  convergedAfterS: number | null;
  failover: { stopped: string; newMaster: string | null; agreedAfterS: number | null } | null;
  /** The agents' dashboard addresses (with --dashboard-port). */
  dashboards: string[];
  finalSpreadNs: number | null;
  /** Largest spread seen once converged (and outside the failover). */
  spreadMaxAfterConvergenceNs: number | null;
  /** Where the clocks settled and why: see settlement(). */
  settlement: Settlement;
  ok: boolean;
}

export interface Settlement {
  /** Each agent's virtual clock minus the host's at the start (--virtual-offset). */
  startOffsetsNs: Record<string, number>;
  /** How the start rule picks the cluster's time from those clocks, and which clocks it follows. */
  basis: ReferenceBasis;
  followed: string[];
  /** Where that puts the cluster (clock minus host), ignoring drift. */
  expectedNs: number;
  /** The running agents' mean clock minus host at the end (null if none answered). */
  settledNs: number | null;
}

/**
 * Where a cluster of clocks that were never synchronized settles: the first round applies the
 * start rule (berkeleyRound with nobody synchronized) to the offsets, whoever the master is.
 */
export function settlement(startOffsetsNs: Record<string, number>, thresholdNs: number): Omit<Settlement, 'settledNs'> {
  const entries = Object.entries(startOffsetsNs);
  const [masterId, masterNs] = entries[0] as [string, number];
  const members = new Map(entries.slice(1).map(([id, offsetNs]) => [id, offsetNs - masterNs]));
  const round = berkeleyRound(masterId, members, thresholdNs, () => false);
  return { startOffsetsNs, basis: round.basis, followed: round.included.sort(), expectedNs: round.averageNs + masterNs };
}

/** One sentence: where the clocks settled and why. */
export function explainSettlement(settled: Settlement): string {
  const starts = Object.values(settled.startOffsetsNs);
  const started = `clocks started ${formatOffsetNs(Math.min(...starts))} to ${formatOffsetNs(Math.max(...starts))} from the host`;
  const why =
    settled.basis === 'majority'
      ? `more than half of them agreed, so the cluster took their average`
      : settled.basis === 'middle'
        ? `no majority agreed, so the cluster took the agreeing group at the middle (${settled.followed.join(', ')})`
        : `no two agreed, so the cluster took the middle ${settled.followed.length === 1 ? `clock (${settled.followed[0]})` : `two clocks' mean (${settled.followed.join(', ')})`}, never an extreme one`;
  const end = settled.settledNs === null ? '' : `: settled at ${formatOffsetNs(settled.settledNs)} from the host (expected ${formatOffsetNs(settled.expectedNs)}; drift moves it a little)`;
  return `${started}; ${why}${end}`;
}

/** Terms are large (a master's term carries its slot in the low 24 bits). */
const TERM_WIDTH = 10;

interface DemoNode {
  id: string;
  daemon: RunningDaemon;
  running: boolean;
}

function spreadOf(statuses: StatusReport[]): number | null {
  if (statuses.length === 0) return null;
  const offsets = statuses.map((status) => status.clock.hostOffsetNs);
  return Math.max(...offsets) - Math.min(...offsets);
}

function agreedMaster(statuses: StatusReport[]): string | null {
  const first = statuses[0]?.masterId ?? null;
  if (first === null) return null;
  const masters = statuses.filter((status) => status.role === 'master');
  return statuses.every((status) => status.masterId === first) && masters.length === 1 && masters[0]?.nodeId === first ? first : null;
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const events: string[] = [];
  const EVENTS_SHOWN = 6;
  const pushEvent = (line: string) => {
    events.push(line);
    if (events.length > EVENTS_SHOWN) events.shift();
  };
  const eventLog = new Writable({
    write(chunk, _encoding, callback) {
      try {
        const entry = JSON.parse(String(chunk)) as { node?: string; msg?: string; term?: number; algorithm?: string; masterId?: string; to?: string; durationMs?: number };
        if (entry.msg === 'election finished' || entry.msg === 'role changed' || entry.msg === 'clock stepped') {
          const detail =
            entry.msg === 'election finished'
              ? `term ${entry.term}: ${entry.masterId} elected (${entry.algorithm}, ${entry.durationMs} ms)`
              : entry.msg === 'role changed'
                ? `now ${entry.to}, term ${entry.term}`
                : 'clock stepped';
          pushEvent(`${entry.node}: ${detail}`);
        }
      } catch {
        // not JSON: ignore
      }
      callback();
    },
  });
  const hostClock = new HostClock();
  const nodes: DemoNode[] = [];
  const startOffsetsNs: Record<string, number> = {};
  let thresholdNs = 0;
  const startMs = performance.now();
  const elapsedS = () => (performance.now() - startMs) / 1000;
  try {
    for (let index = 1; index <= options.nodes; index += 1) {
      const id = `demo-${index}`;
      const offsetS = (Math.random() * 4 - 2).toFixed(6);
      startOffsetsNs[id] = Math.round(Number(offsetS) * 1e9);
      const config = buildRunConfig({
        'node-id': id,
        port: 0,
        bind: '127.0.0.1',
        mdns: false,
        http: options.dashboardPort === null ? 'none' : `127.0.0.1:${options.dashboardPort === 0 ? 0 : options.dashboardPort + index - 1}`,
        // The demo never touches the kernel clock, even as root.
        clock: 'virtual',
        // No NTP server: N agents on one box would fight over port 123 (N - 1 warnings, or N without
        // root). Run agents with --ntp-port to query them with chronyd -Q or ntpdate -q.
        'ntp-port': 0,
        'poll-interval': options.pollIntervalS,
        'discovery-window': 1,
        'virtual-offset': offsetS,
        'virtual-drift': (Math.random() * 200 - 100).toFixed(3),
      });
      thresholdNs = config.outlierThresholdNs;
      const logger = pino({ level: 'info', base: { node: id } }, eventLog);
      let daemon: RunningDaemon;
      try {
        daemon = await startDaemon(config, logger, hostClock);
      } catch (error) {
        // The daemon's advice names --http, which the demo does not have.
        if (error instanceof StartupError && error.message.startsWith('--http:') && config.http !== null) {
          throw new StartupError(error.code, `--dashboard-port: cannot serve ${id}'s dashboard on ${config.http.host}:${config.http.port}: ${error.code} (choose another --dashboard-port, or 0 for any free ports)`);
        }
        throw error;
      }
      nodes.push({ id, daemon, running: true });
    }
    for (const node of nodes) for (const other of nodes) if (other !== node) node.daemon.agent.addPeer(other.daemon.listen);
    const dashboards = nodes.flatMap((node) => (node.daemon.httpPort === null ? [] : [`http://127.0.0.1:${node.daemon.httpPort}/`]));
    if (dashboards.length > 0 && !options.json) options.out.write(`dashboards: ${nodes.map((node, index) => `${node.id} ${dashboards[index]}`).join(', ')}\n`);

    const summary: DemoSummary = {
      nodes: options.nodes,
      durationS: options.durationS,
      master: null,
      term: 0,
      electedAfterS: null,
      convergedAfterS: null,
      failover: null,
      dashboards,
      finalSpreadNs: null,
      spreadMaxAfterConvergenceNs: null,
      settlement: { ...settlement(startOffsetsNs, thresholdNs), settledNs: null },
      ok: false,
    };
    const isTty = options.out.isTTY === true && !options.json;
    let linesDrawn = 0;
    let failoverAtS = options.failover && options.nodes >= 2 ? options.durationS / 2 : Number.POSITIVE_INFINITY;
    let lastPrintS = -1;
    while (elapsedS() < options.durationS) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const now = elapsedS();
      const running = nodes.filter((node) => node.running);
      const statuses = running.map((node) => node.daemon.agent.status());
      const master = agreedMaster(statuses);
      const spreadNs = spreadOf(statuses);
      const synchronized = statuses.every((status) => status.clock.synchronized);
      if (master !== null && summary.electedAfterS === null) summary.electedAfterS = now;
      if (summary.convergedAfterS === null && master !== null && synchronized && spreadNs !== null && spreadNs < DEMO_CONVERGED_SPREAD_NS) summary.convergedAfterS = now;
      if (summary.failover && summary.failover.agreedAfterS === null && master !== null && master !== summary.failover.stopped) {
        summary.failover.newMaster = master;
        summary.failover.agreedAfterS = now - failoverAtS;
      }
      const inFailover = summary.failover !== null && (summary.failover.agreedAfterS === null || now - failoverAtS < summary.failover.agreedAfterS + 2 * options.pollIntervalS);
      if (summary.convergedAfterS !== null && !inFailover && spreadNs !== null) {
        summary.spreadMaxAfterConvergenceNs = Math.max(summary.spreadMaxAfterConvergenceNs ?? 0, spreadNs);
      }
      // Fail over only once the cluster has converged: stopping a master that was never followed
      // by all shows nothing.
      if (now >= failoverAtS && summary.failover === null && master !== null && summary.convergedAfterS !== null) {
        const victim = running.find((node) => node.id === master);
        if (victim) {
          victim.running = false;
          await victim.daemon.stopAbruptly();
          summary.failover = { stopped: victim.id, newMaster: null, agreedAfterS: null };
          failoverAtS = elapsedS();
          pushEvent(`demo: stopped master ${victim.id} abruptly (no goodbye)`);
        }
      } else if (now >= failoverAtS && summary.failover === null) {
        failoverAtS = now + 1; // not converged yet: try again shortly
      }
      if (isTty) {
        const rows = statuses.map((status) => {
          const mark = status.role === 'master' ? '*' : ' ';
          return `${mark} ${status.nodeId.padEnd(8)} ${status.role.padEnd(9)} ${String(status.masterId ?? '-').padEnd(8)} ${String(status.term).padStart(TERM_WIDTH)}  ${formatOffsetNs(status.clock.hostOffsetNs).padStart(12)}  ${status.clock.synchronized ? 'yes' : 'no '}`;
        });
        const screen = [
          `berkeley-agent demo: ${options.nodes} agents on loopback, ${now.toFixed(1)} s / ${options.durationS} s`,
          `  NODE     ROLE      MASTER   ${'TERM'.padStart(TERM_WIDTH)}  ${'CLOCK-HOST'.padStart(12)}  SYNC`,
          ...rows,
          ...nodes.filter((node) => !node.running).map((node) => `x ${node.id.padEnd(8)} stopped`),
          `spread (max - min of clocks): ${formatDurationNs(spreadNs)}${master ? `   master: ${master}` : '   electing...'}`,
          'recent events:',
          ...events.map((event) => `  ${event}`),
        ];
        options.out.write((linesDrawn > 0 ? `\x1b[${linesDrawn}A\x1b[0J` : '') + screen.join('\n') + '\n');
        linesDrawn = screen.length;
      } else if (!options.json && Math.floor(now) > lastPrintS) {
        lastPrintS = Math.floor(now);
        options.out.write(`t=${now.toFixed(1)}s master=${master ?? '-'} spread=${formatDurationNs(spreadNs)} synchronized=${statuses.filter((s) => s.clock.synchronized).length}/${statuses.length}\n`);
      }
      summary.master = master;
      summary.term = Math.max(0, ...statuses.map((status) => status.term));
      summary.finalSpreadNs = spreadNs;
    }
    const finalStatuses = nodes.filter((node) => node.running).map((node) => node.daemon.agent.status());
    if (finalStatuses.length > 0) summary.settlement.settledNs = finalStatuses.reduce((sum, status) => sum + status.clock.hostOffsetNs, 0) / finalStatuses.length;
    summary.ok =
      summary.master !== null &&
      summary.finalSpreadNs !== null &&
      summary.finalSpreadNs < DEMO_CONVERGED_SPREAD_NS &&
      finalStatuses.every((status) => status.clock.synchronized) &&
      (summary.failover === null || summary.failover.newMaster !== null);
    return summary;
  } finally {
    await Promise.all(nodes.filter((node) => node.running).map((node) => node.daemon.stop()));
  }
}

export function formatDemoSummary(summary: DemoSummary): string {
  const parts = [`demo: ${summary.nodes} agents, ${summary.durationS} s`];
  parts.push(summary.master ? `master ${summary.master} (term ${summary.term})` : 'no agreed master');
  parts.push(summary.electedAfterS !== null ? `first master agreed after ${summary.electedAfterS.toFixed(1)} s` : 'never agreed on a master');
  parts.push(summary.convergedAfterS !== null ? `clocks within 1 ms after ${summary.convergedAfterS.toFixed(1)} s` : 'clocks never within 1 ms');
  if (summary.failover) {
    parts.push(
      summary.failover.agreedAfterS !== null
        ? `failover from ${summary.failover.stopped} to ${summary.failover.newMaster} in ${summary.failover.agreedAfterS.toFixed(1)} s`
        : `no new master after stopping ${summary.failover.stopped}`,
    );
  }
  parts.push(`final spread ${formatDurationNs(summary.finalSpreadNs)}`);
  if (summary.spreadMaxAfterConvergenceNs !== null) parts.push(`worst spread once converged ${formatDurationNs(summary.spreadMaxAfterConvergenceNs)}`);
  parts.push(summary.ok ? 'OK' : 'NOT CONVERGED');
  return `${parts.join('; ')}\n${explainSettlement(summary.settlement)}`;
}
