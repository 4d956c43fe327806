// mDNS discovery end to end: real bonjour-service traffic between network namespaces this file
// creates (the pure helpers are tested in test/mdns.test.ts). mDNS never runs in the root
// namespace: MdnsDiscovery.start() is only ever called inside the lab's fixture processes.

import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DiscoveredPeer } from '../../src/net/mdns.ts';
import { LineCollector, NetnsLab, netnsAvailable, sleep, type LabHost } from '../../lab/netns/netns.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`[mdns.test] end-to-end tests SKIPPED: network namespaces unavailable: ${availability.reason}`);

const FIXTURE = fileURLToPath(new URL('./fixtures/mdns-peer.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DISCOVERY_TIMEOUT_MS = 15_000;

interface Agent {
  name: string;
  host: LabHost;
  child: ChildProcess;
  out: LineCollector;
  err: LineCollector;
  port: number;
  address: string;
}

type FixtureEvent = { event: 'ready'; port: number } | { event: 'up'; peer: DiscoveredPeer } | { event: 'down'; nodeId: string } | { event: 'stopped' };

function events(agent: Agent): FixtureEvent[] {
  return agent.out.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as FixtureEvent);
}

/** The latest announced state per node id, minus those that said goodbye since. */
function view(agent: Agent): Map<string, DiscoveredPeer> {
  const peers = new Map<string, DiscoveredPeer>();
  for (const e of events(agent)) {
    if (e.event === 'up') peers.set(e.peer.nodeId, e.peer);
    if (e.event === 'down') peers.delete(e.nodeId);
  }
  return peers;
}

function upsFrom(agent: Agent, nodeId: string): DiscoveredPeer[] {
  return events(agent).flatMap((e) => (e.event === 'up' && e.peer.nodeId === nodeId ? [e.peer] : []));
}

describe.skipIf(!availability.ok)('MdnsDiscovery between network namespaces', () => {
  let lab: NetnsLab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  /** Kept free of agents for the EADDRINUSE test. */
  let h4: LabHost;
  const agents = new Map<string, Agent>();

  async function startAgent(
    name: string,
    host: LabHost,
    opts: { priority: number; cluster: string; iface?: string; address?: string },
  ): Promise<Agent> {
    const config = { nodeId: name, priority: opts.priority, cluster: opts.cluster, interface: opts.iface ?? host.iface, queryIntervalMs: 1000 };
    const child = lab.spawn(host, process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(config)], {
      cwd: REPO_ROOT,
      label: `${name} on h${host.index}`,
    });
    const out = new LineCollector(child.stdout);
    const err = new LineCollector(child.stderr);
    const ready = await out.waitFor((l) => l.includes('"event":"ready"'), 20_000, `${name} ready`);
    const agent: Agent = { name, host, child, out, err, port: (JSON.parse(ready) as { port: number }).port, address: opts.address ?? host.address };
    agents.set(name, agent);
    return agent;
  }

  function waitForUp(observer: Agent, subject: Agent): Promise<string> {
    return observer.out.waitFor(
      (l) => {
        if (!l.includes('"event":"up"')) return false;
        const e = JSON.parse(l) as { peer: DiscoveredPeer };
        return e.peer.nodeId === subject.name && e.peer.port === subject.port;
      },
      DISCOVERY_TIMEOUT_MS,
      `${observer.name} to discover ${subject.name}`,
    );
  }

  beforeAll(async () => {
    lab = await NetnsLab.create({ hosts: 4, prefix: 'mdns' });
    [h1, h2, h3, h4] = lab.hosts as [LabHost, LabHost, LabHost, LabHost];
    // Three agents of cluster "lab", one per host, and one of cluster "other" sharing host 3
    // (two agents in one namespace also exercises bind 0.0.0.0 with SO_REUSEADDR on 5353).
    await Promise.all([
      startAgent('alpha', h1, { priority: 10, cluster: 'lab' }),
      startAgent('bravo', h2, { priority: 20, cluster: 'lab' }),
      startAgent('charlie', h3, { priority: 30, cluster: 'lab' }),
      startAgent('xray', h3, { priority: 99, cluster: 'other' }),
    ]);
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  afterEach((context) => {
    if (context.task.result?.state === 'fail' && lab) console.error(`[mdns.test] fixture output:\n${lab.diagnostics()}`);
  });

  const agent = (name: string): Agent => agents.get(name)!;

  it('each agent discovers the other two with correct id, priority, cluster, address and port', async () => {
    const lab3 = ['alpha', 'bravo', 'charlie'].map(agent);
    await Promise.all(lab3.flatMap((observer) => lab3.filter((s) => s !== observer).map((subject) => waitForUp(observer, subject))));
    const priorities: Record<string, number> = { alpha: 10, bravo: 20, charlie: 30 };
    for (const observer of lab3) {
      const seen = view(observer);
      expect([...seen.keys()].sort()).toEqual(lab3.filter((a) => a !== observer).map((a) => a.name).sort());
      for (const subject of lab3.filter((a) => a !== observer)) {
        expect(seen.get(subject.name)).toEqual({
          nodeId: subject.name,
          priority: priorities[subject.name],
          cluster: 'lab',
          protocolVersion: 1,
          address: subject.address,
          port: subject.port,
        });
      }
    }
  });

  it('never reports itself, and repeated answers do not repeat onUp', async () => {
    // Several query intervals (1 s each) have passed or pass now: every agent answered many times.
    await sleep(2500);
    for (const a of ['alpha', 'bravo', 'charlie', 'xray'].map(agent)) {
      expect(upsFrom(a, a.name)).toEqual([]);
    }
    for (const a of ['alpha', 'bravo', 'charlie'].map(agent)) {
      for (const other of ['alpha', 'bravo', 'charlie'].filter((n) => n !== a.name)) expect(upsFrom(a, other)).toHaveLength(1);
    }
  });

  it('ignores agents of another cluster, in both directions', async () => {
    for (const a of ['alpha', 'bravo', 'charlie'].map(agent)) expect(upsFrom(a, 'xray')).toEqual([]);
    expect(view(agent('xray')).size).toBe(0);
    // Sanity: xray really is on the air (its own logs show it ignoring "lab" peers).
    await agent('xray').err.waitFor((l) => l.includes('another cluster'), DISCOVERY_TIMEOUT_MS, 'xray to ignore a lab peer');
  });

  it('finds a late joiner that shares a namespace with another agent', async () => {
    const delta = await startAgent('delta', h1, { priority: 40, cluster: 'lab' });
    await Promise.all([waitForUp(agent('alpha'), delta), waitForUp(agent('bravo'), delta), waitForUp(agent('charlie'), delta)]);
    for (const subject of ['alpha', 'bravo', 'charlie'].map(agent)) await waitForUp(delta, subject);
    expect(view(agent('bravo')).get('delta')).toMatchObject({ address: h1.address, port: delta.port, priority: 40 });
    expect(view(delta).get('alpha')).toMatchObject({ address: h1.address, port: agent('alpha').port });
  });

  it('ignores responses that arrive through another interface (IP_MULTICAST_ALL)', async () => {
    // A second network (bridge 1, 198.18.1.0/24) between hosts 1 and 2.
    const e1 = await lab.addInterface(h1, { bridge: 1, subnet: 1 });
    const e2 = await lab.addInterface(h2, { bridge: 1, subnet: 1 });
    // A raw socket on host 1 that joins 224.0.0.251 on eth0 only: it shows the pitfall exists here.
    const spy = lab.spawn(h1, process.execPath, [
      '-e',
      `const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true });
       s.on('message', (m, r) => { if (r.address.startsWith('198.18.1.')) console.log('foreign ' + r.address); });
       s.bind(5353, '0.0.0.0', () => { s.addMembership('224.0.0.251', '${h1.address}'); console.log('ready'); });`,
    ]);
    const spyLines = new LineCollector(spy.stdout);
    await spyLines.waitFor((l) => l === 'ready', 10_000, 'spy ready');
    // echo on host 1 listens on eth1 (so host 1 joins the group on eth1); foxtrot on host 2 eth1.
    const echo = await startAgent('echo', h1, { priority: 50, cluster: 'lab', iface: e1.iface, address: e1.address });
    const foxtrot = await startAgent('foxtrot', h2, { priority: 60, cluster: 'lab', iface: e2.iface, address: e2.address });
    await waitForUp(echo, foxtrot);
    await waitForUp(foxtrot, echo);
    expect(view(echo).get('foxtrot')).toMatchObject({ address: e2.address, port: foxtrot.port });
    // The eth0 spy on host 1 receives host 2's eth1 traffic: the filter is needed...
    await spyLines.waitFor((l) => l === `foreign ${e2.address}`, DISCOVERY_TIMEOUT_MS, 'eth1 traffic on an eth0-only socket');
    await sleep(2500);
    // ...and the eth0 agents on host 1 filtered it out (so did everyone else on eth0).
    for (const a of ['alpha', 'bravo', 'charlie', 'delta'].map(agent)) {
      expect(upsFrom(a, 'echo')).toEqual([]);
      expect(upsFrom(a, 'foxtrot')).toEqual([]);
    }
    // The eth1 agents see only each other.
    expect([...view(echo).keys()]).toEqual(['foxtrot']);
    expect([...view(foxtrot).keys()]).toEqual(['echo']);
    spy.kill('SIGKILL');
  });

  it('a graceful stop (SIGTERM) sends a goodbye that produces onDown on the others', async () => {
    const charlie = agent('charlie');
    const exited = new Promise<number | null>((resolve) => charlie.child.on('exit', (code) => resolve(code)));
    charlie.child.kill('SIGTERM');
    await charlie.out.waitFor((l) => l.includes('"event":"stopped"'), 10_000, 'charlie to stop');
    expect(await exited).toBe(0);
    for (const observer of ['alpha', 'bravo', 'delta'].map(agent)) {
      await observer.out.waitFor((l) => l === JSON.stringify({ event: 'down', nodeId: 'charlie' }), 10_000, `${observer.name} to see charlie leave`);
      expect(view(observer).has('charlie')).toBe(false);
    }
    // The other cluster never knew charlie, so it gets no onDown either.
    expect(events(agent('xray')).some((e) => e.event === 'down')).toBe(false);
  });

  it('warns when another agent announces our node id', async () => {
    // A second "alpha" on host 2: the real alpha must warn instead of silently ignoring it.
    const impostor = lab.spawn(h2, process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify({ nodeId: 'alpha', priority: 1, cluster: 'lab', interface: 'eth0', queryIntervalMs: 1000 })], {
      cwd: REPO_ROOT,
      label: 'impostor alpha on h2',
    });
    try {
      await agent('alpha').err.waitFor((l) => l.includes('another agent announces our node id'), DISCOVERY_TIMEOUT_MS, 'alpha to warn about a duplicate id');
    } finally {
      impostor.kill('SIGKILL');
    }
  });

  it('survives EADDRINUSE on 5353 (logs it) and still stops cleanly', async () => {
    // Something on host 4 holds 5353 without SO_REUSEADDR, so multicast-dns cannot bind. Its
    // 'error' event would crash a process that has no listener for it.
    const blocker = lab.spawn(h4, process.execPath, [
      '-e',
      `const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: false });
       s.bind(5353, '0.0.0.0', () => console.log('ready'));`,
    ]);
    try {
      await new LineCollector(blocker.stdout).waitFor((l) => l === 'ready', 10_000, 'blocker ready');
      const golf = await startAgent('golf', h4, { priority: 1, cluster: 'lab' });
      await golf.err.waitFor((l) => l.includes('mdns socket error') && l.includes('EADDRINUSE'), 10_000, 'golf to log EADDRINUSE');
      await sleep(500);
      expect(golf.child.exitCode).toBeNull();
      const exited = new Promise<number | null>((resolve) => golf.child.on('exit', (code) => resolve(code)));
      golf.child.kill('SIGTERM');
      await golf.out.waitFor((l) => l.includes('"event":"stopped"'), 5_000, 'golf to stop');
      expect(await exited).toBe(0);
    } finally {
      blocker.kill('SIGKILL');
    }
  });
});
