// Soak run (issue 7): N agents (default 8) in network namespaces for a long time (default 30 min),
// sampling every 10 s each agent's RSS, the master's rounds and every member's corrections. Reports
// RSS growth per agent (first 2 minutes' mean against the last 2 minutes'; target under 10%), the
// rounds the master completed against the rounds expected at the poll interval, and the largest
// gap between two corrections at any member (in poll intervals; loss can be injected with --loss,
// a random drop on every host's sends). Writes bench-results/soak.json. Not part of `npm test`: a script.
// Needs root (namespaces); agents run with --clock virtual and the lab is always cleaned up.
//
//   npx tsx scripts/soak.ts [--agents 8] [--minutes 30] [--poll-interval 1] [--loss 0] [--key-file F] [--out FILE]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { NetnsLab, netnsAvailable, sleep } from '../lab/netns/netns.ts';
import { spreadNs, startAgent, statuses, waitForAgreement, type AgentProcess } from '../lab/netns/agents.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '8' },
    minutes: { type: 'string', default: '30' },
    'poll-interval': { type: 'string', default: '1' },
    loss: { type: 'string', default: '0' },
    'key-file': { type: 'string' },
    out: { type: 'string', default: 'bench-results/soak.json' },
  },
});

const SAMPLE_MS = 10_000;

function number(name: string, min: number, max: number): number {
  const value = Number(values[name as keyof typeof values]);
  if (!Number.isFinite(value) || value < min || value > max) {
    process.stderr.write(`soak: --${name}: must be a number in ${min}..${max} (got ${JSON.stringify(values[name as keyof typeof values])})\n`);
    process.exit(2);
  }
  return value;
}

function rssKb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);

async function main(): Promise<void> {
  const agentCount = number('agents', 2, 32);
  const minutes = number('minutes', 0.5, 24 * 60);
  const pollS = number('poll-interval', 0.1, 60);
  const lossPercent = number('loss', 0, 50);
  const availability = netnsAvailable();
  if (!availability.ok) {
    process.stderr.write(`soak: skipped: ${availability.reason}\n`);
    process.exitCode = 1;
    return;
  }
  const lab = await NetnsLab.create({ hosts: agentCount, prefix: 'soak' });
  const stop = () => void lab.cleanup();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    // Random loss on every host's sends (a tc egress filter; it throws rather than run without loss).
    if (lossPercent > 0) for (const host of lab.hosts) await lab.setEgressLoss(host, lossPercent / 100);
    const keyArgs = values['key-file'] ? ['--key-file', String(values['key-file'])] : [];
    const agents: AgentProcess[] = lab.hosts.map((host) =>
      startAgent(lab, host, `soak-${host.index}`, ['--interface', host.iface, '--poll-interval', String(pollS), '--virtual-offset', String((host.index % 5) * 0.3), '--log-level', 'warn', ...keyArgs]),
    );
    const { masterId } = await waitForAgreement(lab, agents, 60_000);
    process.stderr.write(`soak: ${agentCount} agents, master ${masterId}, ${minutes} min at --poll-interval ${pollS}${lossPercent ? `, ${lossPercent}% loss` : ''}\n`);
    const startMs = Date.now();
    const rss: number[][] = agents.map(() => []);
    let worstGapPolls = 0;
    let firstRounds: number | null = null;
    // Samples the master's delay filter discarded (that member gets no correction that round).
    let firstDiscarded: number | null = null;
    let lastDiscarded = 0;
    let lastRounds = 0;
    let masterChanges = 0;
    let worstSpreadNs = 0;
    // Per member: corrections applied at the first sample and at the last (missed = rounds - applied).
    const firstCorrections = new Map<string, number>();
    const lastCorrections = new Map<string, number>();
    while (Date.now() - startMs < minutes * 60_000) {
      await sleep(SAMPLE_MS);
      agents.forEach((agent, index) => rss[index]!.push(rssKb(agent.child.pid)));
      const reports = await statuses(lab, agents);
      const master = reports.find((report) => report.role === 'master');
      if (master && master.nodeId !== masterId) masterChanges += 1;
      if (master) {
        firstRounds ??= master.counters.roundsCompleted;
        firstDiscarded ??= master.counters.samplesDiscarded;
        lastDiscarded = master.counters.samplesDiscarded;
        lastRounds = master.counters.roundsCompleted;
      }
      if (reports.length === agents.length) worstSpreadNs = Math.max(worstSpreadNs, spreadNs(reports));
      for (const report of reports) {
        if (report.role !== 'master') {
          if (!firstCorrections.has(report.nodeId)) firstCorrections.set(report.nodeId, report.counters.correctionsApplied);
          lastCorrections.set(report.nodeId, report.counters.correctionsApplied);
        }
        const agoMs = report.lastCorrection?.agoMs;
        if (agoMs !== undefined) worstGapPolls = Math.max(worstGapPolls, agoMs / (pollS * 1000));
      }
      const elapsedMin = (Date.now() - startMs) / 60_000;
      process.stderr.write(`  ${elapsedMin.toFixed(1)} min: RSS ${rss.map((samples) => Math.round((samples.at(-1) ?? 0) / 1024)).join('/')} MB, rounds ${lastRounds - (firstRounds ?? 0)}\n`);
    }
    const window = Math.max(1, Math.round(120_000 / SAMPLE_MS));
    const growth = rss.map((samples) => {
      const first = mean(samples.slice(0, window));
      const last = mean(samples.slice(-window));
      return { firstMb: first / 1024, lastMb: last / 1024, growthPercent: ((last - first) / first) * 100, maxMb: Math.max(...samples) / 1024 };
    });
    const expectedRounds = Math.floor((minutes * 60) / pollS) - Math.ceil(SAMPLE_MS / (pollS * 1000));
    const roundsCompleted = lastRounds - (firstRounds ?? 0);
    // A member misses a round's correction when every probe or the CORRECT itself is lost: with
    // loss p on each host's sends, the CORRECT alone (sent once, by the master) is lost with p.
    const missed = [...lastCorrections].map(([nodeId, last]) => ({ nodeId, missed: roundsCompleted - (last - (firstCorrections.get(nodeId) ?? last)) }));
    const correctLossExpected = lossPercent / 100;
    const result = {
      startedAt: new Date(startMs).toISOString(),
      agents: agentCount,
      minutes,
      pollIntervalS: pollS,
      lossPercent,
      masterChanges,
      roundsCompleted,
      missedCorrectionsPerMember: missed,
      samplesDiscarded: lastDiscarded - (firstDiscarded ?? lastDiscarded),
      missedCorrectionsMaxPercent: (Math.max(0, ...missed.map((entry) => entry.missed)) / Math.max(1, roundsCompleted)) * 100,
      correctLossExpectedPercent: correctLossExpected * 100,
      roundsExpected: expectedRounds,
      worstCorrectionGapPolls: worstGapPolls,
      worstSpreadUs: worstSpreadNs / 1000,
      rss: growth,
      rssGrowthPercentMax: Math.max(...growth.map((entry) => entry.growthPercent)),
    };
    process.stdout.write(
      `soak: ${minutes} min, ${agentCount} agents: RSS growth max ${result.rssGrowthPercentMax.toFixed(1)}% (target < 10%), ` +
        `rounds ${result.roundsCompleted}/${expectedRounds} expected, corrections missed by a member at most ${result.missedCorrectionsMaxPercent.toFixed(2)}% of rounds (a CORRECT alone is lost ${result.correctLossExpectedPercent.toFixed(2)}% of the time at this loss), worst gap between corrections ${worstGapPolls.toFixed(1)} poll intervals, ` +
        `master changes ${masterChanges}, worst spread ${result.worstSpreadUs.toFixed(1)} µs\n`,
    );
    const out = String(values.out);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`written to ${out}\n`);
  } finally {
    await lab.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`soak: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
