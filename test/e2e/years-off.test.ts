// End to end: a box whose clock is years off (RTC battery dead: it boots at 1970) is brought onto
// the cluster's time by its first correction. Five real agents in network namespaces, static peers
// with mDNS off, virtual clocks never synchronized: one at the Unix epoch (--virtual-offset of minus
// the host's epoch seconds, plus 10 s), one 400 days ahead, three on the host's time.
// The agreeing majority decides; the 1970 box steps 56 years once and ends within 1 ms of the
// others; the majority never steps back. Once with the 1970 box as a member, once as the master.
import { afterEach, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable } from '../../lab/netns/netns.ts';
import { SPREAD_LIMIT_NS, startStaticAgent, statuses, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';
import { INITIAL_STEPS } from '../../src/core/limits.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`SKIPPED e2e years-off tests: ${availability.reason}`);

const DAY_S = 86_400;
/** Where the majority ends up, give or take scheduling noise: nowhere near a wild clock. */
const MAJORITY_BOUND_NS = 0.5e9;

/** The "clock stepped" log lines of an agent, as { correctionNs, why }. */
function steps(output: string): { correctionNs: number; why: string }[] {
  return output
    .split('\n')
    .filter((line) => line.includes('"msg":"clock stepped"'))
    .map((line) => JSON.parse(line) as { correctionNs: number; why: string });
}

describe.skipIf(!availability.ok)('a box at 1970 and one 400 days ahead join three agreeing boxes (real processes in namespaces)', () => {
  let lab: NetnsLab | undefined;

  afterEach(async () => {
    await lab?.cleanup();
    lab = undefined;
  });

  it.each([
    ['a member', 100],
    ['the master', 200],
  ])('the 1970 box as %s is stepped onto the majority\'s time with its first correction', async (role, epochPriority) => {
    lab = await NetnsLab.create({ hosts: 5, prefix: `years${epochPriority}` });
    const hostNowS = Math.floor(Date.now() / 1000);
    // years-1 at 1970-01-01T00:00:10Z, years-2 400 days ahead, years-3..5 on the host's time (all
    // at 0: any step of theirs beyond the measurement noise would be a drag by a wild clock).
    const offsetsS = [-hostNowS + 10, 400 * DAY_S, 0, 0, 0];
    const agents: AgentProcess[] = lab.hosts.map((host) => startStaticAgent(lab!, host, `years-${host.index}`, [
      '--poll-interval', '1',
      // Five processes starting at once on a 2-core machine take ~3 s to load.
      '--discovery-window', '5',
      '--virtual-offset', String(offsetsS[host.index - 1]),
      '--priority', String(host.index === 1 ? epochPriority : 100),
    ]));
    const agreement = await waitForAgreement(lab, agents, 45_000);
    // Equal priorities: the highest node id (years-5) is master; priority 200 makes it years-1.
    expect(agreement.masterId).toBe(epochPriority > 100 ? 'years-1' : 'years-5');
    const reports = await statuses(lab, agents);
    expect(reports).toHaveLength(5);
    const byId = new Map(reports.map((report) => [report.nodeId, report]));
    console.info(
      `e2e years off (1970 box as ${role}, master ${agreement.masterId}): settled at ` +
        reports.map((report) => `${report.nodeId} ${(report.clock.hostOffsetNs / 1e6).toFixed(3)} ms (${report.clock.steps} steps)`).join(', '),
    );
    // Everyone synchronized at the majority's time (the host's, within scheduling noise), within 1 ms of each other.
    for (const report of reports) {
      expect(report.clock.synchronized, report.nodeId).toBe(true);
      expect(Math.abs(report.clock.hostOffsetNs), `${report.nodeId} on the agreeing majority's time`).toBeLessThan(MAJORITY_BOUND_NS);
    }
    const epochBox = byId.get('years-1')!;
    const others = reports.filter((report) => report !== epochBox).map((report) => report.clock.hostOffsetNs);
    for (const otherNs of others) expect(Math.abs(epochBox.clock.hostOffsetNs - otherNs)).toBeLessThan(SPREAD_LIMIT_NS);

    // The 1970 box: one step of ~56 years (its first correction), the rest of its initial steps
    // are the noise of a freshly started process (microseconds).
    const epochSteps = steps(lab.outputOf(agents[0]!.child));
    const expectedNs = (hostNowS - 10) * 1e9;
    const big = epochSteps.filter((step) => Math.abs(step.correctionNs) > 1e9);
    expect(big, JSON.stringify(epochSteps)).toHaveLength(1);
    expect(epochSteps[0]).toBe(big[0]);
    expect(Math.abs(big[0]!.correctionNs - expectedNs), 'the step of 56 years is as far as the clock was off').toBeLessThan(30e9);
    expect(epochBox.clock.steps).toBeLessThanOrEqual(INITIAL_STEPS);
    for (const step of epochSteps.slice(1)) expect(Math.abs(step.correctionNs)).toBeLessThan(SPREAD_LIMIT_NS);

    // The box 400 days ahead: stepped back ~400 days, once.
    const aheadBig = steps(lab.outputOf(agents[1]!.child)).filter((step) => Math.abs(step.correctionNs) > 1e9);
    expect(aheadBig).toHaveLength(1);
    expect(Math.abs(aheadBig[0]!.correctionNs + 400 * DAY_S * 1e9)).toBeLessThan(30e9);

    // The agreeing majority was never dragged: no step back (nor forward) beyond the noise.
    for (const agent of agents.slice(2)) {
      for (const step of steps(lab.outputOf(agent.child))) {
        expect(step.correctionNs, `${agent.nodeId} ${JSON.stringify(step)}`).toBeGreaterThan(-SPREAD_LIMIT_NS);
        expect(step.correctionNs, `${agent.nodeId} ${JSON.stringify(step)}`).toBeLessThan(SPREAD_LIMIT_NS);
      }
    }
    // Every correction could be sent: the master reports none it could not.
    const master = byId.get(agreement.masterId)!;
    expect(master.counters.correctionsUnsendable).toBe(0);
    for (const peer of master.peers) expect(peer.correctionUnsendable, peer.nodeId).toBe(false);
    for (const agent of agents) expect(lab.outputOf(agent.child)).not.toMatch(/correction not sent|own correction not applied/);
  }, 90_000);
});
