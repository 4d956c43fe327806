// The error bound measured on real processes (issue 17), shared by scripts/bench/error-bound.ts and
// test/e2e/error-bound.test.ts: N agents in network namespaces, static peers, virtual clocks started
// up to 2 s apart, a fraction of every host's sends dropped at random (a tc egress filter), kill -9
// of the master half-way. About three times a second every agent's status is read; for each member
// that has a bound and follows the live master, its distance to the master's clock (the difference
// of their clock.hostOffsetNs: namespaces share the host clock) is compared with its
// clock.errorBoundNs. The comparison allows for what reading two statuses a few ms apart cannot
// see: both processes' host-anchor error (clock.host.anchorErrorNs) and the slews in progress
// (clock.slewRemainingNs).
import { once } from 'node:events';
import type { StatusReport } from '../../src/daemon/status.ts';
import { percentile, startStaticAgent, statuses, waitForAgreement, type AgentProcess } from './agents.ts';
import { NetnsLab, sleep } from './netns.ts';

const SAMPLE_INTERVAL_MS = 300;
/** The bound needs synchronized clocks, and the loops a little time to lock. */
const SETTLE_MS = 10_000;

export interface ErrorBoundSample {
  atS: number;
  memberId: string;
  boundNs: number;
  distanceNs: number;
  allowanceNs: number;
}

export interface ErrorBoundRun {
  agents: number;
  lossPercent: number;
  measureS: number;
  killedMasterAtS: number | null;
  masterBefore: string;
  masterAfter: string | null;
  samples: ErrorBoundSample[];
  /** Samples of synchronized members without a bound while following the master (its first round not in yet). */
  nullWhileFollowing: number;
  violations: ErrorBoundSample[];
}

const summary = (values: number[]) => ({ p50: percentile(values, 0.5), p90: percentile(values, 0.9), p99: percentile(values, 0.99), max: Math.max(...values) });

export function summarize(run: ErrorBoundRun) {
  return { bound: summary(run.samples.map((sample) => sample.boundNs)), distance: summary(run.samples.map((sample) => sample.distanceNs)) };
}

export async function measureErrorBound(options: { agents: number; measureS: number; lossPercent: number; prefix: string }): Promise<ErrorBoundRun> {
  const { agents: agentCount, measureS, lossPercent } = options;
  const lab = await NetnsLab.create({ hosts: agentCount, prefix: options.prefix });
  const agents: AgentProcess[] = [];
  try {
    for (const host of lab.hosts) {
      const offsetS = (host.index - 1) * (2 / (agentCount - 1)) - 1;
      agents.push(startStaticAgent(lab, host, `eb-${host.index}`, ['--poll-interval', '1', '--discovery-window', '5', '--ntp-port', '0', '--virtual-offset', offsetS.toFixed(3)]));
    }
    const first = await waitForAgreement(lab, agents, 120_000);
    if (lossPercent > 0) for (const host of lab.hosts) await lab.setEgressLoss(host, lossPercent / 100);
    await sleep(SETTLE_MS);
    const samples: ErrorBoundSample[] = [];
    let nullWhileFollowing = 0;
    const startedMs = Date.now();
    let killedAtS: number | null = null;
    let masterAfter: string | null = null;
    while (Date.now() - startedMs < measureS * 1000) {
      const atS = (Date.now() - startedMs) / 1000;
      if (killedAtS === null && atS >= measureS / 2) {
        const master = agents.find((agent) => agent.nodeId === first.masterId && agent.alive);
        if (master) {
          const exited = once(master.child, 'exit');
          process.kill(-master.child.pid!, 'SIGKILL');
          master.alive = false;
          await exited;
          killedAtS = atS;
        }
      }
      const reports = await statuses(lab, agents);
      const masters = reports.filter((report) => report.role === 'master');
      if (masters.length === 1) {
        const master = masters[0] as StatusReport;
        if (killedAtS !== null) masterAfter = master.nodeId;
        for (const report of reports) {
          if (report.role !== 'slave' || report.masterId !== master.nodeId || report.term !== master.term) continue;
          const boundNs = report.clock.errorBoundNs;
          if (boundNs === null || boundNs === undefined) {
            if (report.clock.synchronized) nullWhileFollowing += 1;
            continue;
          }
          const distanceNs = Math.abs(report.clock.hostOffsetNs - master.clock.hostOffsetNs);
          const allowanceNs =
            report.clock.host.anchorErrorNs + master.clock.host.anchorErrorNs + Math.abs(report.clock.slewRemainingNs) + Math.abs(master.clock.slewRemainingNs);
          samples.push({ atS, memberId: report.nodeId, boundNs, distanceNs, allowanceNs });
        }
      }
      await sleep(SAMPLE_INTERVAL_MS);
    }
    const violations = samples.filter((sample) => sample.distanceNs > sample.boundNs + sample.allowanceNs);
    return { agents: agentCount, lossPercent, measureS, killedMasterAtS: killedAtS, masterBefore: first.masterId, masterAfter, samples, nullWhileFollowing, violations };
  } finally {
    await lab.cleanup();
  }
}
