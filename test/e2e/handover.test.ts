// End to end, real processes in network namespaces: graceful handover on SIGTERM of the master,
// and a cluster formed from static peers with mDNS off.
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable } from '../../lab/netns/netns.ts';
import { startAgent, startStaticAgent, statuses, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`SKIPPED e2e handover tests: ${availability.reason}`);

describe.skipIf(!availability.ok)('handover and static peers (real processes in namespaces)', () => {
  let lab: NetnsLab | undefined;

  afterEach(async () => {
    await lab?.cleanup();
    lab = undefined;
  });

  it('SIGTERM on the master: it says LEAVE, the members elect at once, a new master within 2 s', async () => {
    lab = await NetnsLab.create({ hosts: 4, prefix: 'hand' });
    const agents = lab.hosts.map((host) =>
      startAgent(lab!, host, `node-${host.index}`, ['--interface', host.iface, '--poll-interval', '1', '--discovery-window', '4', '--virtual-offset', String(host.index * 0.2)]),
    );
    const first = await waitForAgreement(lab, agents, 40_000);
    expect(first.masterId).toBe('node-4');
    const master = agents.find((agent) => agent.nodeId === first.masterId)!;
    const exited = once(master.child, 'exit');
    const stoppedMs = Date.now();
    master.child.kill('SIGTERM');
    master.alive = false;
    const [exitCode] = (await exited) as [number | null];
    expect(exitCode).toBe(0);
    const second = await waitForAgreement(lab, agents, 10_000, { pollMs: 50, requireSpread: false });
    const failoverMs = Date.now() - stoppedMs;
    expect(second.masterId).toBe('node-3');
    // The new election was started by the LEAVE frame, not by the master timeout.
    const newMaster = second.reports.find((report) => report.nodeId === 'node-3')!;
    expect(newMaster.term).toBeGreaterThan(first.reports[0]!.term);
    const survivorLogs = agents.filter((agent) => agent.alive).map((agent) => lab!.outputOf(agent.child));
    // The first survivor to get the LEAVE starts the election; the others may join it through its
    // ring message before their own LEAVE arrives. Nobody waited for the master timeout.
    expect(survivorLogs.some((log) => log.includes('master left; electing now'))).toBe(true);
    for (const log of survivorLogs) expect(log).not.toContain('"reason":"master silent"');
    // The old master is forgotten by everyone.
    for (const report of second.reports) expect(report.peers.map((peer) => peer.nodeId)).not.toContain('node-4');
    expect(failoverMs).toBeLessThan(2000);
    console.info(`e2e handover: SIGTERM of the master to agreement on ${second.masterId}: ${failoverMs} ms`);
  }, 90_000);

  it('static peers with mDNS off form a working cluster', async () => {
    lab = await NetnsLab.create({ hosts: 3, prefix: 'static' });
    const agents: AgentProcess[] = lab.hosts.map((host) =>
      startStaticAgent(lab!, host, `static-${host.index}`, ['--poll-interval', '1', '--discovery-window', '4', '--virtual-offset', String(-host.index * 0.5)]));
    const agreement = await waitForAgreement(lab, agents, 40_000);
    expect(agreement.masterId).toBe('static-3');
    const reports = await statuses(lab, agents);
    for (const report of reports) {
      expect(report.peers.map((peer) => peer.nodeId).sort()).toEqual(agents.map((agent) => agent.nodeId).filter((id) => id !== report.nodeId).sort());
    }
    const master = reports.find((report) => report.nodeId === 'static-3')!;
    expect(master.lastRound?.answered).toBe(2);
  }, 90_000);
});
