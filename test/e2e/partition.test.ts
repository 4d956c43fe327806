// End to end, real processes in network namespaces: a network split and heal, and repeated kill -9
// and restart of random nodes (issue 3, "End-to-end tests in network namespaces").
//
// 1. Six hosts on one bridge elect node-6. Hosts 4-6 are moved to a second bridge, so {1,2,3} and
//    {4,5,6} cannot talk: {1,2,3} elects node-3 after the master timeout, {4,5,6} keeps node-6.
//    Moving 4-6 back heals the split: the two masters meet, the higher key (node-6) stays master and
//    all six name it. Prints the time from heal to agreement and the clock spread after it.
// 2. Ten cycles of kill -9 of one or two random agents (seeded; the seed is printed, and
//    PARTITION_E2E_SEED=<n> replays a run) and their restart with the same node ids: the survivors
//    agree on one master (a new one only if the master was killed), and the restarted agents adopt
//    it, even when their key is higher. Prints per-cycle times.
//
// Both write their figures to test-artifacts/e2e-partition-*.json.
import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { claimTerm } from '../../src/core/election/terms.ts';
import { SeededRandom } from '../../src/sim/random.ts';
import { NetnsLab, netnsAvailable, sleep } from '../../lab/netns/netns.ts';
import { ARTIFACTS_DIR, SPREAD_LIMIT_NS, agreed, spreadNs, startAgent, statuses, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';
import type { StatusReport } from '../../src/daemon/status.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`SKIPPED e2e partition tests: ${availability.reason}`);

/** One line per report: enough to see who follows whom in which term. */
function summarize(reports: StatusReport[]): string {
  return JSON.stringify(
    reports.map((r) => ({
      id: r.nodeId,
      role: r.role,
      master: r.masterId,
      term: r.term,
      sync: r.clock.synchronized,
      offNs: r.clock.hostOffsetNs,
      elections: r.election.started,
      inProgress: r.election.inProgress,
      last: r.election.last ? { term: r.election.last.term, algo: r.election.last.algorithm, winner: r.election.last.winner } : null,
      suspect: r.peers.filter((p) => p.suspect).map((p) => p.nodeId),
      lastCorrection: r.lastCorrection,
      slewRemainingNs: r.clock.slewRemainingNs,
      ...(r.role === 'master'
        ? {
            lastRound: r.lastRound,
            peers: r.peers.map((p) => ({ id: p.nodeId, offNs: p.offsetNs, delayNs: p.delayNs, excluded: p.excluded, discarded: p.sampleDiscarded })),
          }
        : {}),
    })),
    null,
    1,
  );
}

function failure(lab: NetnsLab, what: string, reports: StatusReport[]): Error {
  return new Error(`${what}; last statuses:\n${summarize(reports)}\n${lab.diagnostics()}`);
}

/** Like expect(condition).toBe(true), but a failure carries the statuses and every child's output. */
function check(lab: NetnsLab, condition: boolean, what: string, reports: StatusReport[]): void {
  if (!condition) throw failure(lab, what, reports);
}

function keyOrder(a: string, b: string): number {
  // All agents here run at the default priority, so the key order is the node id order.
  return a < b ? -1 : a > b ? 1 : 0;
}

function highestId(agents: AgentProcess[]): string {
  return agents.map((agent) => agent.nodeId).sort(keyOrder).at(-1)!;
}

interface SideResult {
  /** null unless the side agrees. */
  masterId: string | null;
  reports: StatusReport[];
  /** Date.now() when every side was first seen agreeing (set by waitForSides). */
  atMs?: number;
}

/** One side of a split: every agent of `side` answers, exactly one is master, all name it. */
async function sideAgreement(lab: NetnsLab, side: AgentProcess[]): Promise<SideResult> {
  const reports = await statuses(lab, side);
  return { masterId: agreed(reports, side.length), reports };
}

/**
 * Waits until every side independently agrees on one master of its own, then checks that the
 * agreement holds for `holdMs` (no flapping). Throws with statuses and child output on timeout.
 */
async function waitForSides(lab: NetnsLab, sides: AgentProcess[][], timeoutMs: number, holdMs: number): Promise<SideResult[]> {
  const deadline = Date.now() + timeoutMs;
  let results: SideResult[] = [];
  while (Date.now() < deadline) {
    results = await Promise.all(sides.map((side) => sideAgreement(lab, side)));
    if (results.every((result) => result.masterId !== null)) {
      const agreedOn = results.map((result) => result.masterId);
      const atMs = Date.now();
      const holdUntil = Date.now() + holdMs;
      while (Date.now() < holdUntil) {
        await sleep(250);
        const again = await Promise.all(sides.map((side) => sideAgreement(lab, side)));
        if (!again.every((result, i) => result.masterId === agreedOn[i])) {
          throw failure(lab, `side agreement on ${agreedOn.join(' / ')} did not hold for ${holdMs} ms`, again.flatMap((result) => result.reports));
        }
      }
      return results.map((result) => ({ ...result, atMs }));
    }
    await sleep(200);
  }
  const names = sides.map((side) => `{${side.map((agent) => agent.nodeId).join(',')}}`).join(' ');
  throw failure(lab, `sides ${names} did not each agree within ${timeoutMs} ms`, results.flatMap((result) => result.reports));
}

/**
 * Samples the spread about once a second (each sample also checks that all still name
 * `expectMaster`): at least `minSamples`, then on until one is under the limit or `maxSamples` are
 * taken; returns the best and all samples. Best-of-several because on a loaded 2-core machine one
 * round's measurements can be hundreds of µs (at times several ms) off — process wake-up latency,
 * and this test's own status requests spawn a process per host — and the spread wanders with them.
 */
async function bestSpread(lab: NetnsLab, agents: AgentProcess[], expectMaster: string, minSamples: number, maxSamples: number): Promise<{ bestNs: number; samplesNs: number[] }> {
  const samplesNs: number[] = [];
  while (samplesNs.length < maxSamples) {
    const reports = await statuses(lab, agents);
    if (agreed(reports, agents.length) !== expectMaster) throw failure(lab, `agreement on ${expectMaster} lost while sampling the spread`, reports);
    samplesNs.push(spreadNs(reports));
    if (samplesNs.length >= minSamples && Math.min(...samplesNs) < SPREAD_LIMIT_NS) break;
    await sleep(1_000);
  }
  return { bestNs: Math.min(...samplesNs), samplesNs };
}

/** SIGKILL to the agent's whole process group (`ip netns exec` and node), then wait for the exit. */
async function killHard(agent: AgentProcess): Promise<void> {
  const exited = agent.child.exitCode !== null || agent.child.signalCode !== null ? Promise.resolve() : once(agent.child, 'exit');
  process.kill(-agent.child.pid!, 'SIGKILL');
  agent.alive = false;
  await exited;
}

/**
 * Every agent process's log tail (JSON lines) to test-artifacts/<dir>/<node id>.<incarnation>.log,
 * for post-mortems; the directory is replaced on each run.
 */
function writeLogs(lab: NetnsLab, dir: string, started: AgentProcess[]): void {
  const path = `${ARTIFACTS_DIR}${dir}`;
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
  const incarnations = new Map<string, number>();
  for (const agent of started) {
    const n = (incarnations.get(agent.nodeId) ?? 0) + 1;
    incarnations.set(agent.nodeId, n);
    writeFileSync(`${path}/${agent.nodeId}.${n}.log`, lab.outputOf(agent.child));
  }
}

function writeArtifact(name: string, results: unknown): void {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  writeFileSync(`${ARTIFACTS_DIR}${name}`, `${JSON.stringify(results, null, 2)}\n`);
}

describe.skipIf(!availability.ok)('partitions and crashes (real processes in namespaces)', () => {
  let lab: NetnsLab | undefined;
  /** Every agent process the current test started (restarts included), and where its logs go. */
  let started: AgentProcess[] = [];
  let logDir = '';

  afterEach(async () => {
    try {
      if (lab && logDir) writeLogs(lab, logDir, started);
    } finally {
      await lab?.cleanup();
      lab = undefined;
      started = [];
      logDir = '';
    }
  });

  it('split six hosts: each side ends with one master; heal: node-6 (the higher key) stays master of all', async () => {
    lab = await NetnsLab.create({ hosts: 6, prefix: 'split' });
    const l = lab;
    const OFFSETS_S = [0.4, -0.3, 0.8, -0.6, 0.2, -0.1];
    // Small opposite drifts so the two sides' clocks drift apart during the split.
    const DRIFTS_PPM = [20, 20, 20, -20, -20, -20];
    const argsOf = (index: number): string[] => [
      '--interface', 'eth0',
      '--poll-interval', '1',
      '--discovery-window', '5',
      '--virtual-offset', String(OFFSETS_S[index - 1]),
      '--virtual-drift', String(DRIFTS_PPM[index - 1]),
    ];
    const agents = l.hosts.map((host) => startAgent(l, host, `node-${host.index}`, argsOf(host.index)));
    started.push(...agents);
    logDir = 'e2e-partition-split-logs';
    const sideA = agents.slice(0, 3);
    const sideB = agents.slice(3);

    const first = await waitForAgreement(l, agents, 60_000);
    check(l, first.masterId === 'node-6', `first master is ${first.masterId}, expected node-6`, first.reports);
    const termBeforeSplit = first.reports.find((r) => r.nodeId === 'node-6')!.term;

    // Split: hosts 4-6 to bridge 1. Every link stays up; the two groups share no bridge.
    const splitMs = Date.now();
    for (const agent of sideB) await l.moveToBridge(agent.host, 1);
    const [a, b] = await waitForSides(l, [sideA, sideB], 30_000, 3_000);
    const splitAgreedMs = a!.atMs! - splitMs;
    const sideReports = [...a!.reports, ...b!.reports];
    check(l, a!.masterId === 'node-3' && b!.masterId === 'node-6', `sides agree on ${a!.masterId} / ${b!.masterId}, expected node-3 / node-6`, sideReports);
    // Side {4,5,6} kept its master: no election there, the term is unchanged.
    check(l, b!.reports.every((report) => report.term === termBeforeSplit), `side {4,5,6} left term ${termBeforeSplit}`, sideReports);
    // Side {1,2,3} elected in a newer term, all of it in the same term.
    const termA = a!.reports[0]!.term;
    check(l, termA > termBeforeSplit && a!.reports.every((report) => report.term === termA), `side {1,2,3} is not in one term above ${termBeforeSplit}`, sideReports);
    // Let the two sides' clocks drift apart a little more before healing.
    await sleep(3_000);
    const preHeal = await statuses(l, agents);
    const preHealSpreadNs = spreadNs(preHeal);

    // Heal: hosts 4-6 back to bridge 0.
    for (const agent of sideB) await l.moveToBridge(agent.host, 0);
    const healedMs = Date.now();
    let healAgreedMs = Number.NaN;
    let last: StatusReport[] = [];
    const healDeadline = healedMs + 30_000;
    while (Date.now() < healDeadline) {
      last = await statuses(l, agents);
      if (agreed(last, agents.length) !== null) {
        healAgreedMs = Date.now() - healedMs;
        break;
      }
      await sleep(50);
    }
    if (Number.isNaN(healAgreedMs)) throw failure(l, 'no single master for all six within 30 s of the heal', last);
    check(l, agreed(last, agents.length) === 'node-6', `after the heal all six agree on ${agreed(last, agents.length)}, expected node-6 (the higher key)`, last);
    console.info(`e2e partition: heal to one master (node-6) named by all six: ${healAgreedMs} ms`);

    // The agreement holds: one master, one term, for a few poll intervals.
    const holdUntil = Date.now() + 4_000;
    let held: StatusReport[] = last;
    while (Date.now() < holdUntil) {
      await sleep(250);
      held = await statuses(l, agents);
      if (agreed(held, agents.length) !== 'node-6') throw failure(l, 'agreement on node-6 after the heal did not hold', held);
    }
    const healedTerm = held[0]!.term;
    if (!held.every((report) => report.term === healedTerm)) throw failure(l, 'all six name node-6 but not in one term', held);
    check(l, healedTerm > termA, `healed term ${healedTerm} is not above side {1,2,3}'s term ${termA}`, held);
    const masterReport = held.find((report) => report.nodeId === 'node-6')!;

    // The clocks come together again: the best of several samples within 1 ms.
    const spread = await bestSpread(l, agents, 'node-6', 5, 15);
    if (spread.bestNs >= SPREAD_LIMIT_NS) throw failure(l, `clock spread after the heal: best ${spread.bestNs} ns of ${JSON.stringify(spread.samplesNs)}`, held);

    // Observed, not asserted (see the README's "Two masters"): how many takeovers node-6 made at
    // the heal (one is the design), and which of its own members briefly followed node-3 first.
    const takeoversAtHeal = lab.outputOf(agents[5]!.child).split('\n').filter((line) => line.includes('"algorithm":"takeover"') && line.includes('"msg":"election finished"')).length;
    const sideBFollowedNode3 = sideB.filter((agent) => agent.nodeId !== 'node-6' && lab!.outputOf(agent.child).includes('"masterId":"node-3"')).map((agent) => agent.nodeId);
    // One takeover, one term above side {1,2,3}'s, and node-6's own members never followed node-3.
    check(l, takeoversAtHeal === 1, `node-6 took over ${takeoversAtHeal} times at the heal (expected once)`, held);
    // node-6 takes over in the first term of its own above side {1,2,3}'s (terms carry the master's slot).
    check(l, healedTerm === claimTerm('node-6', termA + 1), `healed term ${healedTerm} is not node-6's first term above side {1,2,3}'s term ${termA}`, held);
    check(l, sideBFollowedNode3.length === 0, `members of node-6 followed node-3 at the heal: ${sideBFollowedNode3.join(', ')}`, held);

    const results = {
      hosts: 6,
      termBeforeSplit,
      splitToSideAgreementMs: splitAgreedMs,
      sideTerms: { a: termA, b: termBeforeSplit },
      preHealSpreadNs,
      healToAgreementMs: healAgreedMs,
      healedTerm,
      healElection: masterReport.election.last,
      takeoversAtHeal,
      sideBFollowedNode3,
      afterHealSpreadNs: spread,
    };
    writeArtifact('e2e-partition-split.json', results);
    console.info(`e2e partition: ${JSON.stringify(results)}`);
    expect(healAgreedMs).toBeLessThan(10_000);
  }, 180_000);

  it('ten cycles of kill -9 and restart of random nodes: every cycle ends with one master named by all', async () => {
    const seed = process.env.PARTITION_E2E_SEED !== undefined ? Number(process.env.PARTITION_E2E_SEED) : Date.now() % 2 ** 31;
    console.info(`e2e kill/restart: seed ${seed} (replay with PARTITION_E2E_SEED=${seed})`);
    // The simulator's seeded PRNG, so a failing kill/restart sequence can be replayed.
    const seeded = new SeededRandom(seed);
    const random = () => seeded.next();
    lab = await NetnsLab.create({ hosts: 5, prefix: 'crash' });
    const l = lab;
    const OFFSETS_S = [0.3, -0.5, 0.1, 0.7, -0.2];
    const argsOf = (index: number): string[] => [
      '--interface', 'eth0',
      '--poll-interval', '0.5',
      '--discovery-window', '2',
      '--virtual-offset', String(OFFSETS_S[index - 1]),
    ];
    const agents: AgentProcess[] = l.hosts.map((host) => startAgent(l, host, `node-${host.index}`, argsOf(host.index)));
    started.push(...agents);
    logDir = 'e2e-partition-crash-logs';

    const first = await waitForAgreement(l, agents, 60_000, { requireSpread: false });
    check(l, first.masterId === 'node-5', `first master is ${first.masterId}, expected node-5`, first.reports);
    let masterId = first.masterId;

    const cycles: Array<{ cycle: number; killed: string[]; masterBefore: string; survivorsMaster: string; masterAfter: string; survivorsAgreeMs: number; allAgreeMs: number }> = [];
    for (let cycle = 1; cycle <= 10; cycle++) {
      const count = random() < 0.5 ? 1 : 2;
      const pool = [...agents];
      const victims: AgentProcess[] = [];
      for (let i = 0; i < count; i++) victims.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!);
      const killedIds = victims.map((victim) => victim.nodeId).sort(keyOrder);
      const masterBefore = masterId;

      const killedAtMs = Date.now();
      await Promise.all(victims.map((victim) => killHard(victim)));
      const survivors = agents.filter((agent) => agent.alive);
      let survivorsAgreed;
      try {
        survivorsAgreed = await waitForAgreement(l, survivors, 30_000, { requireSpread: false });
      } catch (err) {
        throw new Error(`cycle ${cycle} (seed ${seed}): after killing ${killedIds.join(', ')} (master was ${masterBefore}), the survivors did not agree: ${(err as Error).message}`);
      }
      const survivorsAgreeMs = Date.now() - killedAtMs;
      // A surviving master stays master; a killed one is replaced by the highest surviving key.
      const expectedSurvivorsMaster = killedIds.includes(masterBefore) ? highestId(survivors) : masterBefore;
      if (survivorsAgreed.masterId !== expectedSurvivorsMaster) {
        throw failure(l, `cycle ${cycle} (seed ${seed}): killed ${killedIds.join(', ')} (master was ${masterBefore}); survivors agree on ${survivorsAgreed.masterId}, expected ${expectedSurvivorsMaster}`, survivorsAgreed.reports);
      }
      masterId = survivorsAgreed.masterId;

      // Restart with the same node ids and arguments: each must adopt the existing master.
      const restartedAtMs = Date.now();
      for (const victim of victims) {
        const index = agents.indexOf(victim);
        agents[index] = startAgent(l, victim.host, victim.nodeId, argsOf(victim.host.index));
        started.push(agents[index]!);
      }
      let allAgreed;
      try {
        allAgreed = await waitForAgreement(l, agents, 40_000, { requireSpread: false });
      } catch (err) {
        throw new Error(`cycle ${cycle} (seed ${seed}): after restarting ${killedIds.join(', ')} (master ${masterId}), the five did not agree: ${(err as Error).message}`);
      }
      const allAgreeMs = Date.now() - restartedAtMs;
      if (allAgreed.masterId !== masterId) {
        throw failure(l, `cycle ${cycle} (seed ${seed}): restarted ${killedIds.join(', ')} and the cluster moved from ${masterId} to ${allAgreed.masterId}; a returning node must adopt the existing master`, allAgreed.reports);
      }
      const entry = { cycle, killed: killedIds, masterBefore, survivorsMaster: survivorsAgreed.masterId, masterAfter: allAgreed.masterId, survivorsAgreeMs, allAgreeMs };
      cycles.push(entry);
      console.info(`e2e kill/restart cycle ${cycle}: killed ${killedIds.join('+')} (master ${masterBefore}) -> survivors agree on ${entry.survivorsMaster} in ${survivorsAgreeMs} ms; restarted -> all five on ${entry.masterAfter} in ${allAgreeMs} ms`);
    }

    const final = await statuses(l, agents);
    if (agreed(final, agents.length) !== masterId) throw failure(l, `after ten cycles the five do not agree on ${masterId}`, final);
    writeArtifact('e2e-partition-crash.json', { seed, cycles });
  }, 240_000);
});
