// mDNS discovery: unit tests of the pure helpers (no sockets), then end-to-end tests with real
// bonjour-service traffic between network namespaces this file creates. mDNS never runs in the
// root namespace: MdnsDiscovery.start() is only ever called inside the lab's fixture processes.

import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DiscoveryError,
  MdnsDiscovery,
  decodePeerTxt,
  inSubnet,
  instanceNameFor,
  resolveInterface,
  type DiscoveredPeer,
  type DiscoveryLogger,
} from '../../src/net/mdns.ts';
import { LineCollector, NetnsLab, netnsAvailable, sleep, type LabHost } from '../../lab/netns/netns.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`[mdns.test] end-to-end tests SKIPPED: network namespaces unavailable: ${availability.reason}`);

const FIXTURE = fileURLToPath(new URL('./fixtures/mdns-peer.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DISCOVERY_TIMEOUT_MS = 15_000;

const silentLogger: DiscoveryLogger = { debug() {}, info() {}, warn() {}, error() {} };

function info(address: string, netmask: string, internal = false): os.NetworkInterfaceInfo {
  return { address, netmask, family: 'IPv4', mac: '02:00:00:00:00:01', internal, cidr: `${address}/24` };
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(DiscoveryError);
  expect((thrown as DiscoveryError).code).toBe(code);
  if (message) expect((thrown as Error).message).toMatch(message);
}

describe('resolveInterface', () => {
  const interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = {
    lo: [info('127.0.0.1', '255.0.0.0', true)],
    eth0: [
      { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
      info('198.18.0.7', '255.255.255.0'),
    ],
    v6only: [{ address: 'fe80::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:02', internal: false, cidr: 'fe80::2/64', scopeid: 3 }],
  };

  it('resolves a name to its IPv4 address and netmask', () => {
    expect(resolveInterface('eth0', interfaces)).toEqual({ name: 'eth0', address: '198.18.0.7', netmask: '255.255.255.0' });
    expect(resolveInterface('lo', interfaces)).toEqual({ name: 'lo', address: '127.0.0.1', netmask: '255.0.0.0' });
  });

  it('accepts a local IPv4 address instead of a name', () => {
    expect(resolveInterface('198.18.0.7', interfaces).name).toBe('eth0');
  });

  it('throws EINTERFACE naming the interface and listing the available ones', () => {
    expectCode(() => resolveInterface('wlan9', interfaces), 'EINTERFACE', /"wlan9" not found.*lo \(127\.0\.0\.1\).*eth0 \(198\.18\.0\.7\).*v6only \(no IPv4\)/);
    expectCode(() => resolveInterface('v6only', interfaces), 'EINTERFACE', /"v6only" has no IPv4 address/);
    expectCode(() => resolveInterface('10.9.9.9', interfaces), 'EINTERFACE', /not found/);
    expectCode(() => resolveInterface('__proto__', interfaces), 'EINTERFACE', /not found/);
    expectCode(() => resolveInterface('eth0', {}), 'EINTERFACE', /available: none/);
  });

  it('uses os.networkInterfaces() by default', () => {
    expect(resolveInterface('lo').address).toBe('127.0.0.1');
    expectCode(() => resolveInterface('no-such-interface-xyz'), 'EINTERFACE', /no-such-interface-xyz/);
  });
});

describe('mdns helpers', () => {
  it('instanceNameFor keeps names within one DNS label and unique', () => {
    expect(instanceNameFor('node-1')).toBe('berkeley-agent node-1');
    const long = instanceNameFor('x'.repeat(64));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long).not.toBe(instanceNameFor(`${'x'.repeat(63)}y`));
    // Dots are label separators; a.b and a-b must not collide after sanitising.
    expect(instanceNameFor('a.b')).not.toContain('.');
    expect(instanceNameFor('a.b')).not.toBe(instanceNameFor('a-b'));
  });

  it('decodePeerTxt validates strictly and never throws', () => {
    const txt = (...entries: string[]): Buffer[] => entries.map((e) => Buffer.from(e));
    expect(decodePeerTxt(txt('id=n1', 'prio=5', 'cluster=lab', 'pv=1'))).toEqual({
      ok: true,
      value: { nodeId: 'n1', priority: 5, cluster: 'lab', protocolVersion: 1 },
    });
    // Keys are case-insensitive, the first occurrence wins, unknown keys are ignored.
    expect(decodePeerTxt(txt('ID=n1', 'id=n2', 'prio=0', 'cluster=lab', 'pv=0', 'extra=1', 'flag'))).toMatchObject({ ok: true, value: { nodeId: 'n1', priority: 0 } });
    for (const bad of [
      txt('prio=5', 'cluster=lab', 'pv=1'),
      txt('id=', 'prio=5', 'cluster=lab', 'pv=1'),
      txt('id=has space', 'prio=5', 'cluster=lab', 'pv=1'),
      txt(`id=${'x'.repeat(65)}`, 'prio=5', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=05', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=-1', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=1e3', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=99999999999', 'cluster=lab', 'pv=1'),
      txt('id=n1', 'prio=5', 'pv=1'),
      txt('id=n1', 'prio=5', 'cluster=lab', 'pv=65536'),
      [Buffer.from([0x69, 0x64, 0x3d, 0xff]), ...txt('prio=5', 'cluster=lab', 'pv=1')],
    ]) {
      expect(decodePeerTxt(bad).ok, bad.map(String).join(' ')).toBe(false);
    }
    for (const garbage of [undefined, null, 'id=n1', 42, {}, [1, 2], [{}]]) expect(decodePeerTxt(garbage).ok).toBe(false);
  });

  it('inSubnet compares under the netmask', () => {
    expect(inSubnet('198.18.0.200', '198.18.0.1', '255.255.255.0')).toBe(true);
    expect(inSubnet('198.18.1.2', '198.18.0.1', '255.255.255.0')).toBe(false);
    expect(inSubnet('198.19.1.2', '198.18.0.1', '255.254.0.0')).toBe(true);
    expect(inSubnet('not-an-ip', '198.18.0.1', '255.255.255.0')).toBe(false);
  });

  it('the constructor rejects bad options with EINVAL/EINTERFACE without opening sockets', () => {
    const base = { nodeId: 'n1', priority: 1, cluster: 'lab', port: 7412, protocolVersion: 1, onUp() {}, onDown() {}, logger: silentLogger };
    expectCode(() => new MdnsDiscovery({ ...base, nodeId: '' }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, nodeId: 'a b' }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, cluster: 'x'.repeat(65) }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, priority: -1 }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, port: 0 }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, queryIntervalMs: 0 }), 'EINVAL');
    expectCode(() => new MdnsDiscovery({ ...base, interfaceAddress: 'eth0' }), 'EINVAL', /resolveInterface/);
    // An address no local interface has: its netmask cannot be found.
    expectCode(() => new MdnsDiscovery({ ...base, interfaceAddress: '198.19.255.254' }), 'EINTERFACE');
    // Construction alone is inert: stop() without start() resolves at once.
    return new MdnsDiscovery(base).stop();
  });
});

// ---------------------------------------------------------------------------------------------

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
