// Following an upstream on real processes (issue 18), in network namespaces (lab/netns/upstream.ts):
// chronyd -x (`local stratum 1`; it never touches the clock) in its own namespace serves the host
// clock; four agents start +2 s .. -1 s and -100 .. +100 ppm off (their own average is 0.5 s from
// the host), only up-1 (the lowest node id) with --upstream. Namespaces share the host clock, so
// clock.hostOffsetNs is each agent's distance to the upstream. Asserted:
// - following: one master, up-1 (its clock class outranks the higher node ids; at most one master
//   change until then), every agent synchronized with clock.reference 'upstream' and, after 20 s
//   to settle, within 1 ms of the host clock;
// - chronyd stopped for a minute: one master kept (at most one change), no step (clock.steps
//   unchanged), the agents within 1 ms of each other and a few ms of the host; the master says
//   'holdover' once the upstream counts as lost;
// - chronyd started again: following again (after the health's hold-down, about 30 s here),
//   within 1 ms, still without a step, at most one master change in all;
// - beside them, lone agents started 1 s off: with two upstreams 3 s apart (chronyd and our own
//   NTP server serving host + 3 s) status says noMajority and the agent follows neither; with
//   three (two chronyd and the wrong one) the wrong one is a falseticker and the agent ends on the
//   chronyd's time.
// - in a second lab at the same time, three agents keep their own time (+0.5 s from the host) past
//   the provisional minute before chronyd starts: up-1 takes over (at most one master change) and
//   slews the cluster onto the upstream (at the default --max-slew-ppm: about 100 s) with no step.
// Thresholds are generous (a loaded 2-core machine); the precise numbers come from
// `npm run bench:upstream`. Needs root (namespaces) and a chronyd binary (the machine's, or
// Debian's package unpacked into the lab cache, never installed): else skipped, saying why.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsAvailable } from '../../lab/netns/netns.ts';
import { findChronyd } from '../../lab/ntp/chrony-q.ts';
import {
  DISAGREEMENT_START_OFFSET_NS,
  UpstreamScenario,
  WRONG_OFFSET_NS,
  WRONG_PORT,
  agreedMaster,
  describeSnapshot,
  mastersSeen,
  masterModes,
  maxAbsOffsetNs,
  runPhases,
  spreadNs,
  stepsOver,
  type AgentSample,
  type UpstreamRun,
} from '../../lab/netns/upstream.ts';

const availability = netnsAvailable();
const chronyd = findChronyd();
const skipReason = !availability.ok ? availability.reason : 'skip' in chronyd ? chronyd.skip : null;
if (skipReason !== null) console.warn(`[upstream e2e] SKIPPED: ${skipReason}`);

const AGENTS = 4;
const ON_UPSTREAM_NS = 1_000_000;
const AGREEMENT_NS = 1_000_000;
/** "Within a few ms of the host" through a minute of holdover. */
const HOLDOVER_NS = 5_000_000;
/** The late-upstream cluster: chronyd starts once it has kept its own time past the provisional minute. */
const LATE_AGENTS = 3;
const LATE_UPSTREAM_MS = 70_000;
const ms = (ns: number) => `${(ns / 1e6).toFixed(3)} ms`;

describe.skipIf(skipReason !== null)('following an upstream: chronyd -x and four agents in namespaces', () => {
  let scenario: UpstreamScenario | undefined;
  let run: UpstreamRun;
  let lateScenario: UpstreamScenario | undefined;
  let lateRun: UpstreamRun | undefined;
  let lateError: Error | undefined;

  beforeAll(async () => {
    const binary = 'path' in chronyd ? chronyd.path : '';
    // Both labs at once (the late one mostly waits): about 3.5 minutes in all.
    const [main, late] = await Promise.allSettled([
      (async () => {
        scenario = await UpstreamScenario.start({
          prefix: 'upt', agents: AGENTS, withUpstream: [0], disagreement: true, chronydBinary: binary, log: (line) => console.info(`[upstream e2e] ${line}`),
        });
        return runPhasesOrExplain(scenario);
      })(),
      (async () => {
        lateScenario = await UpstreamScenario.start({
          prefix: 'uptl', agents: LATE_AGENTS, withUpstream: [0], chronydBinary: binary, lateUpstreamMs: LATE_UPSTREAM_MS,
          log: (line) => console.info(`[upstream e2e, late] ${line}`),
        });
        // 0.5 s to slew at the default --max-slew-ppm (5,000 ppm): 100 s. The rate users get: a
        // runaway of the master's slew (its remaining slew grew to 16 s) showed only at this rate;
        // at 50,000 ppm the slew ended before it could build up.
        return runPhases(lateScenario, { followTimeoutMs: 200_000, followToleranceNs: ON_UPSTREAM_NS, settleMs: 5_000, followWindowMs: 8_000, holdoverMs: null, returnTimeoutMs: 0, returnWindowMs: 0 });
      })(),
    ]);
    if (late.status === 'fulfilled') lateRun = late.value;
    else lateError = late.reason as Error;
    if (main.status === 'rejected') throw main.reason;
    run = main.value;
    console.info(
      `[upstream e2e] following after ${(run.followAtMs / 1000).toFixed(1)} s (master ${run.masterFollowing}); `
        + `max |hostOffset| following ${ms(Math.max(...run.followWindow.map(maxAbsOffsetNs)))}, in holdover ${ms(Math.max(...run.holdoverWindow.map(maxAbsOffsetNs)))}; `
        + `back ${(run.returnAfterMs / 1000).toFixed(1)} s after chronyd restarted`,
    );
  }, 360_000);

  afterAll(async () => {
    await Promise.all([scenario?.close(), lateScenario?.close()]);
  });

  it('follows: up-1 (the one with --upstream) is master, every agent synchronized, reference upstream, within 1 ms of the host', () => {
    expect(run.masterFollowing).toBe('up-1');
    // Until then the master changed at most once (up-1 taking over when its upstream became healthy).
    const acquiring = mastersSeen(run.acquireWindow, AGENTS);
    console.info(`[upstream e2e] masters while acquiring: ${acquiring.map((m) => `${m.masterId}@${m.term}`).join(' -> ')}`);
    expect(acquiring.length, JSON.stringify(acquiring)).toBeLessThanOrEqual(2);
    // Settling after the first time all were within 1 ms: same master, no step, still on the upstream.
    for (const snapshot of run.settleWindow) {
      expect(agreedMaster(snapshot, AGENTS), describeSnapshot(snapshot)).toBe('up-1');
      expect(snapshot.agents.every((agent) => agent.reference === 'upstream'), describeSnapshot(snapshot)).toBe(true);
    }
    expect(run.followWindow.length).toBeGreaterThan(5);
    for (const snapshot of run.followWindow) {
      const context = describeSnapshot(snapshot);
      expect(agreedMaster(snapshot, AGENTS), context).toBe('up-1');
      expect(snapshot.agents.every((agent) => agent.synchronized && agent.reference === 'upstream'), context).toBe(true);
      expect(maxAbsOffsetNs(snapshot), context).toBeLessThan(ON_UPSTREAM_NS);
      const master = snapshot.agents.find((agent) => agent.nodeId === 'up-1') as AgentSample;
      expect(master.clockClass, context).toBe(1);
      expect(master.upstream?.mode, context).toBe('following');
      // The members have no upstream of their own: class 0, and nothing to report.
      for (const member of snapshot.agents.filter((agent) => agent.nodeId !== 'up-1')) expect(member.clockClass, context).toBe(0);
    }
  });

  it('upstream stopped: one master kept, no step, agreement within 1 ms, within a few ms of the host; the master says holdover', () => {
    const window = [run.followWindow.at(-1)!, ...run.holdoverWindow];
    const masters = mastersSeen(window, AGENTS);
    expect(masters.length, JSON.stringify(masters)).toBeGreaterThanOrEqual(1);
    expect(masters.length, JSON.stringify(masters)).toBeLessThanOrEqual(2);
    expect(masterModes(run.holdoverWindow, AGENTS)).toContain('holdover');
    for (const snapshot of run.holdoverWindow) {
      const context = describeSnapshot(snapshot);
      expect(snapshot.agents.filter((agent) => agent.role === 'master').length, context).toBeLessThanOrEqual(1);
      if (snapshot.agents.length === AGENTS) expect(spreadNs(snapshot), context).toBeLessThan(AGREEMENT_NS);
      expect(maxAbsOffsetNs(snapshot), context).toBeLessThan(HOLDOVER_NS);
    }
    for (const [nodeId, steps] of stepsOver([...run.settleWindow, ...run.followWindow, ...run.holdoverWindow])) expect(steps.last, `${nodeId} stepped in holdover`).toBe(steps.first);
  });

  it('upstream back: the cluster follows it again, within 1 ms, without a step and without churn', () => {
    expect(Number.isFinite(run.returnAfterMs)).toBe(true);
    const last = run.returnWindow.at(-1)!;
    expect(maxAbsOffsetNs(last), describeSnapshot(last)).toBeLessThan(ON_UPSTREAM_NS);
    expect(last.agents.every((agent) => agent.reference === 'upstream'), describeSnapshot(last)).toBe(true);
    for (const [nodeId, steps] of stepsOver([...run.settleWindow, ...run.followWindow, ...run.holdoverWindow, ...run.returnWindow])) expect(steps.last, `${nodeId} stepped`).toBe(steps.first);
    // From following, through the loss, to the return: the master changed at most once.
    const masters = mastersSeen([...run.settleWindow, ...run.followWindow, ...run.holdoverWindow, ...run.returnWindow], AGENTS);
    expect(masters.length, JSON.stringify(masters)).toBeLessThanOrEqual(2);
  });

  it('two upstreams 3 s apart: status says noMajority, and the agent follows neither', async () => {
    const [two] = await (scenario as UpstreamScenario).disagreementSamples();
    expect(two, 'dis-2 answered').not.toBeNull();
    const agent = two as AgentSample;
    const context = JSON.stringify(agent);
    expect(agent.upstream?.selection?.ok, context).toBe(false);
    expect(agent.upstream?.selection?.code, context).toBe('noMajority');
    expect(agent.upstream?.mode, context).not.toBe('following');
    expect(agent.reference, context).not.toBe('upstream');
    // Still where it started (1 s off): not moved towards chronyd (0) nor the wrong one (+3 s).
    expect(Math.abs(agent.hostOffsetNs - DISAGREEMENT_START_OFFSET_NS), context).toBeLessThan(100_000_000);
  });

  it('three upstreams, one 3 s off: that one is a falseticker, and the agent follows the two chronyd', async () => {
    const s = scenario as UpstreamScenario;
    // Read until the agent is following, within 1 ms of the host, with the wrong server judged a
    // falseticker (a lone agent's replies are at times unusable for a few polls, the wrong server's
    // too: it then reads 'unreachable'); every reading on the way must be nowhere near +3 s.
    const deadline = Date.now() + 60_000;
    const seen: AgentSample[] = [];
    const done = (agent: AgentSample) => Math.abs(agent.hostOffsetNs) < ON_UPSTREAM_NS && agent.upstream?.mode === 'following'
      && agent.upstream?.servers?.find((server) => server.port === WRONG_PORT)?.verdict === 'falseticker';
    do {
      const three = (await s.disagreementSamples())[1] ?? null;
      if (three !== null) seen.push(three);
      if (three !== null && done(three)) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } while (Date.now() < deadline);
    expect(seen.length, 'dis-3 answered').toBeGreaterThan(0);
    for (const reading of seen) expect(Math.abs(reading.hostOffsetNs), JSON.stringify(reading)).toBeLessThan(100_000_000);
    const agent = seen.at(-1) as AgentSample;
    const context = JSON.stringify(agent);
    expect(agent.upstream?.selection?.ok, context).toBe(true);
    const wrong = agent.upstream?.servers?.find((server) => server.port === WRONG_PORT);
    expect(wrong, context).toBeDefined();
    expect(wrong?.verdict, context).toBe('falseticker');
    // It is seen 3 s ahead of the agent's clock, which is on the host's.
    expect(Math.abs((wrong?.offsetNs ?? 0) - WRONG_OFFSET_NS), context).toBeLessThan(100_000_000);
    expect(agent.upstream?.servers?.filter((server) => server.verdict === 'truechimer').length, context).toBe(2);
    expect(agent.upstream?.mode, context).toBe('following');
    expect(agent.reference, context).toBe('upstream');
    expect(Math.abs(agent.hostOffsetNs), context).toBeLessThan(ON_UPSTREAM_NS);
    // And it stays there: its oscillator is not detuned, so its frequency stays near 0. Steered on
    // every server's reply, a few ms apart, it swung between the +-500 ppm limits and wandered by
    // ms (the master now steers once per sample of its system peer).
    const held: AgentSample[] = [];
    for (let reading = 0; reading < 10; reading += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const three = (await s.disagreementSamples())[1] ?? null;
      if (three !== null) held.push(three);
    }
    expect(held.length, 'dis-3 answered').toBeGreaterThan(5);
    for (const reading of held) {
      const readingContext = JSON.stringify({ hostOffsetNs: reading.hostOffsetNs, frequencyPpm: reading.frequencyPpm, mode: reading.upstream?.mode });
      expect(Math.abs(reading.frequencyPpm), readingContext).toBeLessThan(50);
      expect(Math.abs(reading.hostOffsetNs), readingContext).toBeLessThan(ON_UPSTREAM_NS);
    }
  }, 90_000);

  it('an upstream appearing over an established cluster: one takeover, slewed onto it without a step', () => {
    if (lateError !== undefined) throw lateError;
    const late = lateRun as UpstreamRun;
    const before = late.establishedWindow.at(-1)!;
    // The cluster kept its own time, far from the host's (its start offsets average +0.5 s).
    expect(agreedMaster(before, LATE_AGENTS), describeSnapshot(before)).not.toBeNull();
    const meanNs = before.agents.reduce((sum, agent) => sum + agent.hostOffsetNs, 0) / LATE_AGENTS;
    expect(Math.abs(meanNs), describeSnapshot(before)).toBeGreaterThan(100_000_000);
    const after = [before, ...late.acquireWindow, ...late.settleWindow, ...late.followWindow];
    const masters = mastersSeen(after, LATE_AGENTS);
    console.info(`[upstream e2e, late] cluster at ${ms(meanNs)}; following ${((late.followAtMs - late.upstreamStartedAtMs) / 1000).toFixed(1)} s after chronyd started; masters ${masters.map((m) => `${m.masterId}@${m.term}`).join(' -> ')}`);
    expect(masters.length, JSON.stringify(masters)).toBeLessThanOrEqual(2);
    expect(late.masterFollowing).toBe('up-1');
    for (const [nodeId, steps] of stepsOver(after)) expect(steps.last, `${nodeId} stepped onto the upstream`).toBe(steps.first);
    for (const snapshot of late.followWindow) {
      expect(maxAbsOffsetNs(snapshot), describeSnapshot(snapshot)).toBeLessThan(ON_UPSTREAM_NS);
      expect(snapshot.agents.every((agent) => agent.reference === 'upstream'), describeSnapshot(snapshot)).toBe(true);
    }
  });
});

/** The phases with the test's timings (about 3.5 minutes); on a timeout the error carries the last snapshot. */
async function runPhasesOrExplain(scenario: UpstreamScenario): Promise<UpstreamRun> {
  return runPhases(scenario, {
    // Once following, 20 s for the loops to learn the frequency before the window that is judged
    // (and before the holdover, which runs on that frequency).
    followTimeoutMs: 90_000, followToleranceNs: ON_UPSTREAM_NS, settleMs: 20_000, followWindowMs: 8_000,
    // The upstream counts as lost after 30 s without an answer (UPSTREAM_LOST_AFTER_MS_MIN): a
    // minute shows both halves of the holdover.
    holdoverMs: 60_000,
    // A recovered upstream counts as healthy again only after its 60 s hold-down.
    returnTimeoutMs: 120_000, returnWindowMs: 4_000,
  });
}
