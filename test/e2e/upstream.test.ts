// End to end (issue 18): one agent follows chronyd as its upstream. chronyd runs in its own
// network namespace with -x (it never touches the clock) and `local stratum 1`, so it serves this
// machine's clock; the agent runs in a second namespace with a virtual clock started 1.5 s ahead
// (`--virtual-offset 1.5`) and `--upstream <chronyd>`. Namespaces share one clock, so the agent's
// status clock.hostOffsetNs is how far it is from chronyd's time.
// - It ends following: status upstream.mode 'following', clock.reference 'upstream', the verdict
//   synchronized, the selection on chronyd at stratum 1, and hostOffsetNs within 1 ms of 0 (from 1.5 s: a wrong sign, a
//   missed clockAdjusted or an ignored estimate all fail that).
// - Its NTP port answers, measured by chronyd -Q (a client we did not write), at chronyd's
//   stratum + 1, with chronyd's address as refid and no leap warning.
// Root only (namespaces, chronyd -u root); skipped with the reason otherwise.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable, sleep, type LabHost } from '../../lab/netns/netns.ts';
import { startAgent, statusOf, type AgentProcess } from '../../lab/netns/agents.ts';
import { startChronydServer } from '../../lab/ntp/chronyd-server.ts';
import { findChronyd, runChronyQ } from '../../lab/ntp/chrony-q.ts';
import type { StatusReport } from '../../src/daemon/status.ts';

const availability = netnsAvailable();
const chronyd = findChronyd();
const skipReason = !availability.ok ? availability.reason : 'skip' in chronyd ? chronyd.skip : null;
if (skipReason !== null) console.warn(`[upstream e2e] SKIPPED: ${skipReason}`);

const CHRONY_PORT = 11123;
/** Where the agent must end, from chronyd's (the host's) time. */
const FOLLOWED_NS = 1_000_000;
const START_OFFSET_S = 1.5;

const hex = (address: string) => address.split('.').map((octet) => Number(octet).toString(16).padStart(2, '0')).join('').toUpperCase();

describe.skipIf(skipReason !== null)('an agent following chronyd -x as its upstream', () => {
  const binary = 'path' in chronyd ? chronyd.path : '';
  let lab: NetnsLab | undefined;
  let dir = '';
  let agent: AgentProcess;
  let upstreamHost: LabHost;
  let followed: StatusReport;
  let waitedMs = 0;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'upstream-e2e-'));
    lab = await NetnsLab.create({ hosts: 2, prefix: 'upst' });
    const l = lab;
    const [server, client] = l.hosts as [LabHost, LabHost];
    upstreamHost = server;
    try {
      await startChronydServer(l, server, { binary, port: CHRONY_PORT, dir });
      agent = startAgent(l, client, 'upstream-a', [
        '--interface', client.iface, '--no-mdns', '--ntp-port', '123', '--poll-interval', '1', '--discovery-window', '1',
        '--virtual-offset', String(START_OFFSET_S), '--upstream', `${server.address}:${CHRONY_PORT}`, '--upstream-poll', '2',
      ]);
      const startedMs = Date.now();
      const deadlineMs = startedMs + 120_000;
      let last: StatusReport | null = null;
      for (;;) {
        last = await statusOf(l, agent);
        // Synchronized too: that takes the discipline's initial corrections, one per new filter choice,
        // and under load the NTP client's filter may keep an older low-delay sample for several polls.
        if (last?.upstream?.mode === 'following' && last.clock.reference === 'upstream' && last.verdict === 'synchronized' && Math.abs(last.clock.hostOffsetNs) < FOLLOWED_NS / 2) break;
        if (Date.now() > deadlineMs) {
          throw new Error(`not following within 120 s; last status: ${JSON.stringify(last && { role: last.role, verdict: last.verdict, verdictReason: last.verdictReason, clock: last.clock, upstream: last.upstream })}\n${l.diagnostics()}`);
        }
        await sleep(500);
      }
      waitedMs = Date.now() - startedMs;
      // A few more polls: it must stay there, not pass through.
      await sleep(6_000);
      followed = (await statusOf(l, agent)) as StatusReport;
    } catch (error) {
      console.error(l.diagnostics());
      throw error;
    }
  }, 180_000);

  afterAll(async () => {
    await lab?.cleanup();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('ends following chronyd: mode following, reference upstream, within 1 ms of the host clock', () => {
    const upstream = followed.upstream;
    expect(upstream, 'status.upstream').not.toBeNull();
    if (upstream === null) return;
    console.info(
      `[upstream e2e] from +${START_OFFSET_S} s: following and synchronized after ${(waitedMs / 1000).toFixed(1)} s; 6 s later hostOffsetNs ${followed.clock.hostOffsetNs} ns, ` +
        `selection offset ${upstream.selection.ok ? upstream.selection.offsetNs : '-'} ns ± ${upstream.selection.ok ? upstream.selection.errorBoundNs : '-'} ns, ` +
        `${upstream.corrections} corrections, ${followed.clock.steps} steps, ${followed.clock.slews} slews`,
    );
    expect(followed.role).toBe('master');
    // Alone, but with a reference: synchronized, not "alone".
    expect(followed.verdict, followed.verdictReason).toBe('synchronized');
    expect(followed.clockClass).toBe(1);
    expect(followed.clock.reference).toBe('upstream');
    expect(upstream).toMatchObject({ mode: 'following', healthy: true, clockClass: 1 });
    expect(upstream.corrections).toBeGreaterThan(0);
    expect(upstream.servers).toHaveLength(1);
    expect(upstream.servers[0]).toMatchObject({ host: upstreamHost.address, port: CHRONY_PORT, address: upstreamHost.address, reachable: true, stratum: 1, verdict: 'truechimer' });
    expect(upstream.selection).toMatchObject({ ok: true, systemPeer: `${upstreamHost.address}:${CHRONY_PORT}`, stratum: 1 });
    expect(Math.abs(followed.clock.hostOffsetNs)).toBeLessThan(FOLLOWED_NS);
  });

  it('serves NTP at chronyd\'s stratum + 1, with chronyd\'s address as refid (chronyd -Q)', async () => {
    const l = lab as NetnsLab;
    const run = await runChronyQ(binary, agent.host.address, 123, 10, { netns: agent.host.ns });
    expect(run.measurements.length, run.output).toBeGreaterThan(0);
    for (const measurement of run.measurements) expect(measurement).toMatchObject({ server: agent.host.address, leap: 'N', stratum: 2, refid: hex(upstreamHost.address) });
    expect(run.wrongByNs, run.output).not.toBeNull();
    const after = (await statusOf(l, agent)) as StatusReport;
    console.info(`[upstream e2e] chronyd -Q: stratum ${run.measurements[0]?.stratum}, refid ${run.measurements[0]?.refid}, clock wrong by ${((run.wrongByNs as number) / 1e6).toFixed(3)} ms (status hostOffsetNs ${(after.clock.hostOffsetNs / 1e6).toFixed(3)} ms)`);
    // chrony measured the agent's clock against the host's: it is the host's time within the same 1 ms.
    expect(Math.abs(run.wrongByNs as number)).toBeLessThan(FOLLOWED_NS);
  }, 60_000);
});

// Two agents: b (priority 200, no upstream, 0.8 s behind and 30 ppm fast) starts first and becomes
// master; a (priority 100, 1.5 s ahead, 40 ppm slow, --upstream chronyd) joins. Once a's upstream
// is healthy its clock class outranks b's priority: a becomes master, steers its clock
// onto chronyd's and b's onto its own. Both end within 1 ms of the host clock, b's reference is
// 'upstream' through its master, and chronyd -Q reads b at chronyd's stratum + 2, refid a.
describe.skipIf(skipReason !== null)('a two-agent cluster whose lower-priority agent has the upstream', () => {
  const binary = 'path' in chronyd ? chronyd.path : '';
  let lab: NetnsLab | undefined;
  let dir = '';
  let withUpstream: AgentProcess;
  let without: AgentProcess;
  let reports: [StatusReport, StatusReport];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'upstream-e2e-'));
    lab = await NetnsLab.create({ hosts: 3, prefix: 'upsc' });
    const l = lab;
    const [server, a, b] = l.hosts as [LabHost, LabHost, LabHost];
    try {
      await startChronydServer(l, server, { binary, port: CHRONY_PORT, dir });
      const common = ['--no-mdns', '--ntp-port', '123', '--poll-interval', '1', '--discovery-window', '1'];
      without = startAgent(l, b, 'upstream-b', ['--interface', b.iface, ...common, '--priority', '200', '--virtual-offset', '-0.8', '--virtual-drift', '30', '--peer', `${a.address}:7412`]);
      await sleep(3_000);
      withUpstream = startAgent(l, a, 'upstream-a', [
        '--interface', a.iface, ...common, '--priority', '100', '--virtual-offset', String(START_OFFSET_S), '--virtual-drift', '-40',
        '--peer', `${b.address}:7412`, '--upstream', `${server.address}:${CHRONY_PORT}`, '--upstream-poll', '2',
      ]);
      const deadlineMs = Date.now() + 120_000;
      for (;;) {
        const [ra, rb] = await Promise.all([statusOf(l, withUpstream), statusOf(l, without)]);
        const done = ra !== null && rb !== null && ra.upstream?.mode === 'following' && rb.role === 'slave' && rb.masterId === 'upstream-a'
          && rb.clock.reference === 'upstream' && rb.clock.synchronized && Math.abs(ra.clock.hostOffsetNs) < FOLLOWED_NS / 2 && Math.abs(rb.clock.hostOffsetNs) < FOLLOWED_NS / 2;
        if (done) {
          reports = [ra, rb];
          break;
        }
        if (Date.now() > deadlineMs) {
          const brief = (r: StatusReport | null) => r && { id: r.nodeId, role: r.role, master: r.masterId, ref: r.clock.reference, host: r.clock.hostOffsetNs, mode: r.upstream?.mode };
          throw new Error(`the cluster did not follow the upstream within 120 s: ${JSON.stringify([brief(ra), brief(rb)])}\n${l.diagnostics()}`);
        }
        await sleep(500);
      }
    } catch (error) {
      console.error(l.diagnostics());
      throw error;
    }
  }, 180_000);

  afterAll(async () => {
    await lab?.cleanup();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('the agent with the upstream becomes master and both follow chronyd within 1 ms', () => {
    const [a, b] = reports;
    console.info(`[upstream e2e] cluster: a (master, following) ${a.clock.hostOffsetNs} ns, b (member) ${b.clock.hostOffsetNs} ns from the host clock; a master in term ${a.term} (a's elections: ${JSON.stringify(a.election.byAlgorithm)})`);
    expect(a).toMatchObject({ role: 'master', clockClass: 1, clock: { reference: 'upstream' } });
    expect(b).toMatchObject({ role: 'slave', masterId: 'upstream-a', clockClass: 0, upstream: null, clock: { reference: 'upstream' } });
    expect(b.verdict, b.verdictReason).toBe('synchronized');
  });

  it('the member serves NTP at chronyd\'s stratum + 2, its master\'s address as refid', async () => {
    const run = await runChronyQ(binary, without.host.address, 123, 10, { netns: without.host.ns });
    expect(run.measurements.length, run.output).toBeGreaterThan(0);
    for (const measurement of run.measurements) expect(measurement).toMatchObject({ leap: 'N', stratum: 3, refid: hex(withUpstream.host.address) });
    expect(Math.abs(run.wrongByNs as number), run.output).toBeLessThan(FOLLOWED_NS);
  }, 60_000);
});
