// A host floods every agent's UDP port with garbage for 10 s (random bytes, truncated and mutated
// frames, frames of another protocol version). The cluster must keep its master and its spread
// under 1 ms, the rejected counters must show the flood, and each agent's memory must stay bounded.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable, sleep } from '../../lab/netns/netns.ts';
import { SPREAD_LIMIT_NS, spreadNs, startAgent, statuses, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`SKIPPED e2e flood test: ${availability.reason}`);

const FLOOD = fileURLToPath(new URL('./fixtures/flood.mjs', import.meta.url));
const FLOOD_S = 10;

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : Number.NaN;
}

describe.skipIf(!availability.ok)('a garbage flood (real processes in namespaces)', () => {
  let lab: NetnsLab;
  let agents: AgentProcess[];

  beforeAll(async () => {
    lab = await NetnsLab.create({ hosts: 4, prefix: 'flood' });
    agents = lab.hosts.slice(0, 3).map((host) => startAgent(lab, host, `node-${host.index}`, ['--interface', host.iface, '--poll-interval', '0.5', '--discovery-window', '2', '--virtual-offset', String(host.index * 0.3)]));
    await waitForAgreement(lab, agents, 40_000);
  }, 90_000);

  afterAll(async () => {
    await lab?.cleanup();
  });

  it(`keeps its master and its clocks together through ${FLOOD_S} s of garbage; the flood is counted; memory stays bounded`, async () => {
    const before = await statuses(lab, agents);
    const masterId = before[0]!.masterId;
    const rssBeforeKb = agents.map((agent) => rssKb(agent.child.pid!));
    const flooder = lab.hosts[3]!;
    const targets = lab.hosts.slice(0, 3).map((host) => `${host.address}:7412`);
    const flood = lab.exec(flooder, process.execPath, [FLOOD, String(FLOOD_S), ...targets], { timeoutMs: (FLOOD_S + 20) * 1000 });
    const spreads: number[] = [];
    const rssMaxKb = [...rssBeforeKb];
    const deadline = Date.now() + FLOOD_S * 1000;
    while (Date.now() < deadline) {
      const reports = await statuses(lab, agents);
      expect(reports).toHaveLength(3);
      for (const report of reports) expect(report.masterId, 'the master held through the flood').toBe(masterId);
      spreads.push(spreadNs(reports));
      agents.forEach((agent, index) => (rssMaxKb[index] = Math.max(rssMaxKb[index]!, rssKb(agent.child.pid!))));
      await sleep(500);
    }
    const result = await flood;
    const sent = (JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { sent?: number }).sent ?? 0;
    const after = await statuses(lab, agents);
    const rejected = after.reduce((sum, report) => sum + report.counters.framesRejected, 0) - before.reduce((sum, report) => sum + report.counters.framesRejected, 0);
    const worstSpreadNs = Math.max(...spreads);
    console.info(
      `e2e flood: ${sent} datagrams in ${FLOOD_S} s (${Math.round(sent / FLOOD_S)}/s), ${rejected} rejected by the agents; worst spread ${(worstSpreadNs / 1000).toFixed(1)} µs; ` +
        `RSS before/max ${rssBeforeKb.map((kb, index) => `${Math.round(kb / 1024)}/${Math.round(rssMaxKb[index]! / 1024)}`).join(', ')} MB`,
    );
    expect(sent).toBeGreaterThan(10_000);
    // The flood reached the agents and what they read was refused and counted. How much of it the
    // kernel dropped at full sockets depends on the machine's load (49.5% reached them in one CI
    // run, over half in others), so the count is held to a floor, not a share of what was sent.
    expect(rejected).toBeGreaterThan(10_000);
    for (const report of after) {
      expect((report.counters.framesRejectedByReason.malformed ?? 0) + (report.counters.framesRejectedByReason['bad-version'] ?? 0)).toBeGreaterThan(0);
      expect(report.masterId).toBe(masterId);
    }
    expect(worstSpreadNs).toBeLessThan(SPREAD_LIMIT_NS);
    // Bounded: nothing of the flood is kept (a generous 50 MB over the start covers V8's heap growth).
    for (const [index, maxKb] of rssMaxKb.entries()) expect(maxKb - rssBeforeKb[index]!).toBeLessThan(50 * 1024);
  }, 90_000);
});
