// Following an upstream on real processes (issue 18): how long the cluster takes to get onto the
// upstream, how close it follows, how far it drifts in holdover, and how it comes back. The
// scenario is lab/netns/upstream.ts (the e2e test runs the same on shorter windows): chronyd -x
// (`local stratum 1`, never touches the clock) in its own namespace serving the host clock, N agents
// started +2 .. -1 s and -100 .. +100 ppm off with static peers, one (or all) with --upstream.
// Namespaces share the host clock, so clock.hostOffsetNs is each agent's distance to the upstream.
// Prints a table and writes every number (and the load average, before and after) to a JSON file.
//
// A benchmark, not a test: it reports; it fails only when the run cannot be made. Needs root for
// the namespaces and a chronyd binary. Agents run --clock virtual: nothing touches this machine's clock.
//
//   npm run bench:upstream -- [--agents 4] [--with-upstream one|all] [--settle-s 30] [--follow-window-s 60]
//     [--holdover-s 300] [--return-window-s 30] [--upstream-poll 1] [--late-upstream-s S]
//     [--max-slew-ppm N] [--out bench-results/upstream.json]
//
// --late-upstream-s S: chronyd starts only once the cluster agreed on its own time (about +0.5 s
// from the host) and kept it S seconds: an upstream appearing over an established cluster, which
// the master may only slew onto (at most --max-slew-ppm, 5000 ppm by default). Give S over 60: in
// its first minute a cluster's time is still provisional and may be stepped.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { netnsAvailable } from '../../lab/netns/netns.ts';
import { findChronyd } from '../../lab/ntp/chrony-q.ts';
import {
  UpstreamScenario,
  absOffsetsNs,
  distribution,
  mastersSeen,
  masterModes,
  maxAbsOffsetNs,
  runPhases,
  spreadNs,
  stepsOver,
  type Snapshot,
} from '../../lab/netns/upstream.ts';

function fail(message: string): never {
  process.stderr.write(`bench:upstream: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      agents: { type: 'string', default: '4' },
      'with-upstream': { type: 'string', default: 'one' },
      'settle-s': { type: 'string', default: '30' },
      'follow-window-s': { type: 'string', default: '60' },
      'holdover-s': { type: 'string', default: '300' },
      'return-window-s': { type: 'string', default: '30' },
      'upstream-poll': { type: 'string', default: '1' },
      'late-upstream-s': { type: 'string' },
      'max-slew-ppm': { type: 'string' },
      out: { type: 'string', default: 'bench-results/upstream.json' },
    },
  });
} catch (error) {
  fail((error as Error).message);
}
const { values } = parsed;
const agentCount = Number(values.agents);
const settleS = Number(values['settle-s']);
const followWindowS = Number(values['follow-window-s']);
const holdoverS = Number(values['holdover-s']);
const returnWindowS = Number(values['return-window-s']);
const upstreamPollS = Number(values['upstream-poll']);
const lateUpstreamS = values['late-upstream-s'] === undefined ? null : Number(values['late-upstream-s']);
const maxSlewPpm = values['max-slew-ppm'] === undefined ? null : Number(values['max-slew-ppm']);
if (!Number.isInteger(agentCount) || agentCount < 2 || agentCount > 16) fail(`--agents: must be an integer 2..16, got ${values.agents}`);
if (values['with-upstream'] !== 'one' && values['with-upstream'] !== 'all') fail(`--with-upstream: must be one or all, got ${values['with-upstream']}`);
if (!(settleS >= 0 && settleS <= 3600)) fail(`--settle-s: must be 0..3600, got ${values['settle-s']}`);
if (!(followWindowS >= 5 && followWindowS <= 3600)) fail(`--follow-window-s: must be 5..3600, got ${values['follow-window-s']}`);
// The upstream counts as lost only after 30 s without an answer: a shorter stop shows no holdover.
if (!(holdoverS >= 40 && holdoverS <= 6 * 3600)) fail(`--holdover-s: must be 40..21600, got ${values['holdover-s']}`);
if (!(returnWindowS >= 5 && returnWindowS <= 3600)) fail(`--return-window-s: must be 5..3600, got ${values['return-window-s']}`);
if (lateUpstreamS !== null && !(lateUpstreamS >= 0 && lateUpstreamS <= 3600)) fail(`--late-upstream-s: must be 0..3600, got ${values['late-upstream-s']}`);
if (maxSlewPpm !== null && !(Number.isInteger(maxSlewPpm) && maxSlewPpm >= 1 && maxSlewPpm <= 100_000)) fail(`--max-slew-ppm: must be an integer 1..100000, got ${values['max-slew-ppm']}`);
if (!Number.isInteger(upstreamPollS) || upstreamPollS < 1 || upstreamPollS > 64) fail(`--upstream-poll: must be an integer 1..64 (s), got ${values['upstream-poll']}`);

const ON_UPSTREAM_NS = 1_000_000;
const us = (ns: number) => (Number.isFinite(ns) ? `${(ns / 1e3).toFixed(1)} µs` : '-');
const dist = (name: string, d: ReturnType<typeof distribution>) => `${name}: p50 ${us(d.p50)}, p90 ${us(d.p90)}, p99 ${us(d.p99)}, max ${us(d.max)} (${d.n} samples)`;

/** The largest |hostOffsetNs| near each whole minute of the holdover (the snapshot closest to it). */
function driftByMinute(window: Snapshot[], stoppedAtMs: number): { minute: number; maxAbsOffsetNs: number; masterOffsetNs: number | null }[] {
  const rows = [];
  const lastMinute = Math.floor(((window.at(-1)?.atMs ?? stoppedAtMs) - stoppedAtMs) / 60_000);
  for (let minute = 1; minute <= lastMinute; minute += 1) {
    const target = stoppedAtMs + minute * 60_000;
    const nearest = window.reduce((best, snapshot) => (Math.abs(snapshot.atMs - target) < Math.abs(best.atMs - target) ? snapshot : best));
    const master = nearest.agents.find((agent) => agent.role === 'master');
    rows.push({ minute, maxAbsOffsetNs: maxAbsOffsetNs(nearest), masterOffsetNs: master?.hostOffsetNs ?? null });
  }
  return rows;
}

async function main(): Promise<void> {
  const available = netnsAvailable();
  if (!available.ok) {
    process.stdout.write(`bench:upstream: skipped: ${available.reason}\n`);
    return;
  }
  const chronyd = findChronyd();
  if ('skip' in chronyd) {
    process.stdout.write(`bench:upstream: skipped: ${chronyd.skip}\n`);
    return;
  }
  const loadBefore = os.loadavg();
  const withUpstream = values['with-upstream'] === 'all' ? 'all' : [0];
  const scenario = await UpstreamScenario.start({
    prefix: 'upb', agents: agentCount, withUpstream, upstreamPollS, ...(lateUpstreamS === null ? {} : { lateUpstreamMs: lateUpstreamS * 1000 }),
    ...(maxSlewPpm === null ? {} : { agentArgs: ['--max-slew-ppm', String(maxSlewPpm)] }), chronydBinary: chronyd.path, log: (line) => process.stderr.write(`  ${line}\n`),
  });
  let run;
  try {
    run = await runPhases(scenario, {
      followTimeoutMs: 600_000, followToleranceNs: ON_UPSTREAM_NS, settleMs: settleS * 1000, followWindowMs: followWindowS * 1000,
      holdoverMs: holdoverS * 1000, returnTimeoutMs: 600_000, returnWindowMs: returnWindowS * 1000,
    });
  } finally {
    await scenario.close();
  }
  const loadAfter = os.loadavg();

  const settle = distribution(absOffsetsNs(run.settleWindow));
  const follow = distribution(absOffsetsNs(run.followWindow));
  const followSpread = distribution(run.followWindow.map(spreadNs));
  const holdover = distribution(absOffsetsNs(run.holdoverWindow));
  const holdoverSpread = distribution(run.holdoverWindow.filter((snapshot) => snapshot.agents.length === agentCount).map(spreadNs));
  const byMinute = driftByMinute(run.holdoverWindow, run.stoppedAtMs);
  const holdoverEnd = run.holdoverWindow.at(-1) as Snapshot;
  // What each clock's rate was left with when the upstream went: its drift plus the correction learned.
  const beforeStop = run.followWindow.at(-1) as Snapshot;
  const residualPpm = Object.fromEntries(beforeStop.agents.map((agent) => [agent.nodeId, Number((agent.virtualDriftPpm + agent.frequencyPpm).toFixed(3))]));
  const back = distribution(absOffsetsNs(run.returnWindow.filter((snapshot) => snapshot.atMs >= run.restartedAtMs + run.returnAfterMs)));
  const steps = [...stepsOver([...run.settleWindow, ...run.followWindow, ...run.holdoverWindow, ...run.returnWindow])].map(([nodeId, s]) => ({ nodeId, ...s }));
  const stepped = steps.filter((entry) => entry.last !== entry.first);
  const masters = {
    acquiring: mastersSeen([...run.establishedWindow.slice(-1), ...run.acquireWindow], agentCount),
    holdover: mastersSeen([run.followWindow.at(-1) as Snapshot, ...run.holdoverWindow], agentCount),
    overall: mastersSeen([...run.settleWindow, ...run.followWindow, ...run.holdoverWindow, ...run.returnWindow], agentCount),
  };
  const acquireSteps = [...stepsOver([...run.establishedWindow.slice(-1), ...run.acquireWindow, ...run.settleWindow])].map(([nodeId, s]) => ({ nodeId, ...s }));
  const establishedOffsetNs = run.establishedWindow.length === 0 ? null : Math.round((run.establishedWindow.at(-1) as Snapshot).agents.reduce((sum, agent) => sum + agent.hostOffsetNs, 0) / agentCount);
  const load = (values: number[]) => values.map((value) => value.toFixed(2)).join(' ');

  const lines = [
    `upstream: ${agentCount} agents in namespaces (${withUpstream === 'all' ? 'all' : 'one'} with --upstream, poll 1 s, --upstream-poll ${upstreamPollS}${maxSlewPpm === null ? '' : `, --max-slew-ppm ${maxSlewPpm}`}), chronyd -x serving the host clock`,
    `load average before ${load(loadBefore)}, after ${load(loadAfter)} (${os.cpus().length} CPUs)`,
    ...(lateUpstreamS === null ? [] : [
      `chronyd started ${(run.upstreamStartedAtMs / 1000).toFixed(1)} s after the agents, over a cluster at ${((establishedOffsetNs ?? Number.NaN) / 1e6).toFixed(3)} ms from the host; `
        + `steps from then until the follow window: ${acquireSteps.filter((entry) => entry.last !== entry.first).map((entry) => `${entry.nodeId} ${entry.first} -> ${entry.last}`).join(', ') || 'none'}`,
    ]),
    `time to follow (${lateUpstreamS === null ? 'start' : 'chronyd started'} to every agent within 1 ms, reference upstream): ${((run.followAtMs - run.upstreamStartedAtMs) / 1000).toFixed(1)} s; per agent: ${Object.entries(run.agentOnUpstreamAtMs).map(([id, atMs]) => `${id} ${((atMs - run.upstreamStartedAtMs) / 1000).toFixed(1)} s`).join(', ')}`,
    `masters while acquiring: ${masters.acquiring.map((m) => `${m.masterId}@${m.term}`).join(' -> ')}`,
    dist(`|hostOffsetNs| settling (the ${settleS} s after that)`, settle),
    dist(`|hostOffsetNs| following (the ${followWindowS} s after those)`, follow),
    dist('spread following', followSpread),
    `holdover (${holdoverS} s, upstream stopped; master modes ${masterModes(run.holdoverWindow, agentCount).join(' -> ')}):`,
    `  ${dist('|hostOffsetNs|', holdover)}`,
    `  ${dist('spread', holdoverSpread)}`,
    ...byMinute.map((row) => `  after ${row.minute} min: max |hostOffsetNs| ${us(row.maxAbsOffsetNs)}, master ${row.masterOffsetNs === null ? '-' : us(row.masterOffsetNs)}`),
    `  at the end (${((holdoverEnd.atMs - run.stoppedAtMs) / 1000).toFixed(0)} s): max |hostOffsetNs| ${us(maxAbsOffsetNs(holdoverEnd))}`,
    `  rate error left when chronyd stopped (--virtual-drift + learned frequencyPpm): ${Object.entries(residualPpm).map(([id, ppm]) => `${id} ${ppm} ppm`).join(', ')}`,
    `  masters: ${masters.holdover.map((m) => `${m.masterId}@${m.term}`).join(' -> ')}`,
    `return: following again ${(run.returnAfterMs / 1000).toFixed(1)} s after chronyd restarted; ${dist('|hostOffsetNs| after', back)}`,
    `steps during follow/holdover/return: ${stepped.length === 0 ? 'none' : stepped.map((entry) => `${entry.nodeId} ${entry.first} -> ${entry.last}`).join(', ')}; master changes overall: ${masters.overall.length - 1}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const result = {
    generatedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter },
    parameters: { agents: agentCount, withUpstream, lateUpstreamS, maxSlewPpm, settleS, followWindowS, holdoverS, returnWindowS, upstreamPollS, pollIntervalS: 1 },
    followAtMs: run.followAtMs,
    upstreamStartedAtMs: run.upstreamStartedAtMs,
    followAfterUpstreamMs: run.followAtMs - run.upstreamStartedAtMs,
    establishedOffsetNs,
    acquireSteps,
    agentOnUpstreamAtMs: run.agentOnUpstreamAtMs,
    masterFollowing: run.masterFollowing,
    settleAbsOffsetNs: settle,
    followAbsOffsetNs: follow,
    followSpreadNs: followSpread,
    holdoverAbsOffsetNs: holdover,
    holdoverSpreadNs: holdoverSpread,
    holdoverDriftByMinute: byMinute,
    residualPpmAtStop: residualPpm,
    holdoverEndMaxAbsOffsetNs: maxAbsOffsetNs(holdoverEnd),
    holdoverMasterModes: masterModes(run.holdoverWindow, agentCount),
    returnAfterMs: run.returnAfterMs,
    returnAbsOffsetNs: back,
    steps,
    masters,
    snapshots: [...run.establishedWindow, ...run.acquireWindow, ...run.settleWindow, ...run.followWindow, ...run.holdoverWindow, ...run.returnWindow].map((snapshot) => ({
      atMs: snapshot.atMs, phase: snapshot.phase,
      agents: snapshot.agents.map((agent) => ({ id: agent.nodeId, role: agent.role, term: agent.term, hostOffsetNs: agent.hostOffsetNs, steps: agent.steps, mode: agent.upstream?.mode ?? null })),
    })),
  };
  mkdirSync(dirname(values.out as string), { recursive: true });
  writeFileSync(values.out as string, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`written to ${values.out}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:upstream: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
