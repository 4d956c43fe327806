// End-to-end checks of the network-namespace lab itself: unicast and multicast reach the other
// hosts, partitions (link down, split bridges) block traffic and heal, cleanup leaves nothing.
// All traffic stays inside namespaces this file creates (198.18.0.0/24).

import type { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LineCollector, NetnsLab, listNamespaces, netnsAvailable, sleep, type LabHost } from '../../lab/netns/netns.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`[netns.test] SKIPPED: network namespaces unavailable: ${availability.reason}`);

/** Port for the multicast checks: not 5353, so no mDNS responder could ever interfere. */
const MULTICAST_PORT = 15353;
const MULTICAST_GROUP = '224.0.0.251';
const UNICAST_PORT = 16000;
/** How long a "must not arrive" check listens. */
const SILENCE_MS = 1_200;

// Prints one JSON line per datagram; joins `group` on the interface with address `ifaceAddr`.
const RECEIVER = `
const dgram = require('node:dgram');
const [port, group, ifaceAddr] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (m, r) => console.log(JSON.stringify({ msg: m.toString(), from: r.address })));
s.bind(Number(port), '0.0.0.0', () => {
  if (group) s.addMembership(group, ifaceAddr);
  console.log('ready');
});
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

// Sends \`count\` datagrams 100 ms apart (UDP may drop one; the receiver needs only one).
const SENDER = `
const dgram = require('node:dgram');
const [addr, port, msg, count, ifaceAddr] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.bind(0, () => {
  if (ifaceAddr) s.setMulticastInterface(ifaceAddr);
  let sent = 0;
  const tick = () => {
    s.send(msg, Number(port), addr, (err) => { if (err) console.error('send error: ' + err.code); });
    if (++sent < Number(count)) setTimeout(tick, 100); else setTimeout(() => process.exit(0), 50);
  };
  tick();
});
`;

describe.skipIf(!availability.ok)('NetnsLab (network namespaces)', () => {
  let lab: NetnsLab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;

  beforeAll(async () => {
    lab = await NetnsLab.create({ hosts: 3, prefix: 'lab' });
    [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  afterEach((context) => {
    if (context.task.result?.state === 'fail' && lab) console.error(`[netns.test] child output:\n${lab.diagnostics()}`);
  });

  async function startReceiver(host: LabHost, port: number, group?: string): Promise<{ child: ChildProcess; lines: LineCollector }> {
    const args = ['-e', RECEIVER, String(port)];
    if (group) args.push(group, host.address);
    const child = lab.spawn(host, process.execPath, args, { label: `h${host.index} receiver :${port}` });
    const lines = new LineCollector(child.stdout);
    await lines.waitFor((l) => l === 'ready', 10_000, `receiver on h${host.index} ready`);
    return { child, lines };
  }

  async function send(from: LabHost, to: string, port: number, msg: string, count: number, multicast = false): Promise<void> {
    const args = ['-e', SENDER, to, String(port), msg, String(count)];
    if (multicast) args.push(from.address);
    const result = await lab.exec(from, process.execPath, args, { timeoutMs: 10_000 });
    expect(result.code, result.stderr).toBe(0);
  }

  function received(lines: LineCollector, msg: string): Array<{ msg: string; from: string }> {
    return lines
      .matching((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; from: string })
      .filter((d) => d.msg === msg);
  }

  function stop(child: ChildProcess): void {
    child.kill('SIGKILL');
  }

  it('gives each host its address, lo up and a default route', async () => {
    for (const host of lab.hosts) {
      const addr = await lab.exec(host, 'ip', ['-4', '-o', 'addr', 'show']);
      expect(addr.stdout).toContain(`${host.address}/24`);
      expect(addr.stdout).toMatch(/\blo\b.*127\.0\.0\.1/);
      const route = await lab.exec(host, 'ip', ['route', 'show', 'default']);
      expect(route.stdout).toContain(`dev ${host.iface}`);
    }
  });

  it('delivers a unicast UDP datagram from host 1 to host 3', async () => {
    const rx = await startReceiver(h3, UNICAST_PORT);
    try {
      await send(h1, h3.address, UNICAST_PORT, 'hello-unicast', 5);
      const line = await rx.lines.waitFor((l) => l.includes('hello-unicast'), 5_000, 'unicast datagram');
      expect(JSON.parse(line)).toEqual({ msg: 'hello-unicast', from: h1.address });
    } finally {
      stop(rx.child);
    }
  });

  it('delivers multicast to 224.0.0.251 to every other host', async () => {
    const rx2 = await startReceiver(h2, MULTICAST_PORT, MULTICAST_GROUP);
    const rx3 = await startReceiver(h3, MULTICAST_PORT, MULTICAST_GROUP);
    try {
      await send(h1, MULTICAST_GROUP, MULTICAST_PORT, 'hello-multicast', 5, true);
      for (const rx of [rx2, rx3]) {
        const line = await rx.lines.waitFor((l) => l.includes('hello-multicast'), 5_000, 'multicast datagram');
        expect(JSON.parse(line)).toEqual({ msg: 'hello-multicast', from: h1.address });
      }
    } finally {
      stop(rx2.child);
      stop(rx3.child);
    }
  });

  it('setLinkUp(false) partitions a host and setLinkUp(true) heals it', async () => {
    const rx2 = await startReceiver(h2, MULTICAST_PORT, MULTICAST_GROUP);
    const rx3 = await startReceiver(h3, MULTICAST_PORT, MULTICAST_GROUP);
    try {
      await lab.setLinkUp(h3, false);
      await send(h1, MULTICAST_GROUP, MULTICAST_PORT, 'while-down', 5, true);
      await rx2.lines.waitFor((l) => l.includes('while-down'), 5_000, 'multicast on the connected host');
      await sleep(SILENCE_MS);
      expect(received(rx3.lines, 'while-down')).toEqual([]);

      await lab.setLinkUp(h3, true);
      // The default route must be back, or host 3 could not even send multicast.
      const route = await lab.exec(h3, 'ip', ['route', 'show', 'default']);
      expect(route.stdout).toContain(`dev ${h3.iface}`);
      await send(h1, MULTICAST_GROUP, MULTICAST_PORT, 'after-up', 10, true);
      await rx3.lines.waitFor((l) => l.includes('after-up'), 5_000, 'multicast after the link came back');
      await send(h3, MULTICAST_GROUP, MULTICAST_PORT, 'from-h3', 5, true);
      await rx2.lines.waitFor((l) => l.includes('from-h3'), 5_000, 'multicast sent by the healed host');
    } finally {
      await lab.setLinkUp(h3, true);
      stop(rx2.child);
      stop(rx3.child);
    }
  });

  it('setLinkUp(false, { side: "switch" }) drops traffic silently', async () => {
    const rx3 = await startReceiver(h3, UNICAST_PORT);
    try {
      await lab.setLinkUp(h3, false, { side: 'switch' });
      await send(h1, h3.address, UNICAST_PORT, 'port-down', 5);
      await sleep(SILENCE_MS);
      expect(received(rx3.lines, 'port-down')).toEqual([]);
      await lab.setLinkUp(h3, true, { side: 'switch' });
      await send(h1, h3.address, UNICAST_PORT, 'port-up', 10);
      await rx3.lines.waitFor((l) => l.includes('port-up'), 5_000, 'unicast after the port came back');
    } finally {
      await lab.setLinkUp(h3, true, { side: 'switch' });
      stop(rx3.child);
    }
  });

  it('setEgressLoss drops about that fraction of a host\'s sends, and 0 removes it', async () => {
    const burst = async (msg: string): Promise<number> => {
      const rx = await startReceiver(h2, UNICAST_PORT + 7);
      try {
        // 1000 datagrams, 1 ms apart.
        const script = `const s=require('node:dgram').createSocket('udp4');let n=0;const t=setInterval(()=>{s.send('${msg}',${UNICAST_PORT + 7},'${h2.address}');if(++n===1000){clearInterval(t);setTimeout(()=>process.exit(0),200)}},1)`;
        const result = await lab.exec(h1, process.execPath, ['-e', script], { timeoutMs: 20_000 });
        expect(result.code, result.stderr).toBe(0);
        await sleep(300);
        return received(rx.lines, msg).length;
      } finally {
        stop(rx.child);
      }
    };
    // Clean first: it also resolves h2's MAC address (ARP requests are subject to the loss too).
    // (At least 990: a receiver starved on a loaded machine may overflow its socket buffer.)
    expect(await burst('clean')).toBeGreaterThanOrEqual(990);
    await lab.setEgressLoss(h1, 0.3);
    const lossy = await burst('lossy');
    // Binomial(1000, 0.7): mean 700, sd 14.5; these bounds are 10 sd away.
    expect(lossy).toBeGreaterThan(550);
    expect(lossy).toBeLessThan(850);
    await lab.setEgressLoss(h1, 0);
    expect(await burst('clean-again')).toBeGreaterThanOrEqual(990);
  });

  it('moveToBridge splits hosts into groups and back', async () => {
    const rx2 = await startReceiver(h2, MULTICAST_PORT, MULTICAST_GROUP);
    const rx3 = await startReceiver(h3, MULTICAST_PORT, MULTICAST_GROUP);
    try {
      await lab.moveToBridge(h3, 1);
      await send(h1, MULTICAST_GROUP, MULTICAST_PORT, 'split', 5, true);
      await rx2.lines.waitFor((l) => l.includes('split'), 5_000, 'multicast within the group');
      await sleep(SILENCE_MS);
      expect(received(rx3.lines, 'split')).toEqual([]);
      await lab.moveToBridge(h3, 0);
      await send(h1, MULTICAST_GROUP, MULTICAST_PORT, 'joined', 10, true);
      await rx3.lines.waitFor((l) => l.includes('joined'), 5_000, 'multicast after rejoining bridge 0');
    } finally {
      await lab.moveToBridge(h3, 0);
      stop(rx2.child);
      stop(rx3.child);
    }
  });

  it('addInterface gives a host a second interface on another bridge and subnet', async () => {
    const a = await lab.addInterface(h1, { bridge: 2, subnet: 1 });
    const b = await lab.addInterface(h2, { bridge: 2, subnet: 1 });
    expect(a).toEqual({ iface: 'eth1', address: '198.18.1.1', bridge: 2 });
    expect(b.address).toBe('198.18.1.2');
    const rx = await startReceiver(h2, UNICAST_PORT);
    try {
      await send(h1, b.address, UNICAST_PORT, 'second-net', 5);
      const line = await rx.lines.waitFor((l) => l.includes('second-net'), 5_000, 'unicast on the second network');
      expect(JSON.parse(line)).toEqual({ msg: 'second-net', from: a.address });
    } finally {
      stop(rx.child);
    }
  });

  it('cleanup kills children and deletes every namespace, idempotently', async () => {
    const own = await NetnsLab.create({ hosts: 2, prefix: 'cln' });
    const names = own.namespaceNames();
    expect(listNamespaces()).toEqual(expect.arrayContaining(names));
    const child = own.spawn(own.hosts[0]!, 'sleep', ['600']);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await Promise.all([own.cleanup(), own.cleanup()]);
    await own.cleanup();
    await exited;
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
    const left = listNamespaces();
    for (const name of names) expect(left).not.toContain(name);
    expect(() => own.spawn(own.hosts[0]!, 'true', [])).toThrow(/after cleanup/);
  });

  it('httpGetJson fetches JSON from a server inside a namespace', async () => {
    const server = lab.spawn(h2, process.execPath, [
      '-e',
      `require('node:http').createServer((q, r) => { r.setHeader('content-type', 'application/json'); r.end(JSON.stringify({ path: q.url, ok: true })); })
        .listen(18080, '127.0.0.1', () => console.log('ready'));`,
    ]);
    try {
      await new LineCollector(server.stdout).waitFor((l) => l === 'ready', 10_000, 'http server ready');
      expect(await lab.httpGetJson(h2, 'http://127.0.0.1:18080/status')).toEqual({ path: '/status', ok: true });
      // The server listens on h2's loopback: from h1 the connection must fail.
      await expect(lab.httpGetJson(h1, 'http://127.0.0.1:18080/status', { timeoutMs: 1_000 })).rejects.toThrow();
    } finally {
      stop(server);
    }
  });
});

describe.skipIf(!availability.ok)('NetnsLab after all labs are cleaned up', () => {
  it('leaves no namespace of this process behind', () => {
    const mine = listNamespaces().filter((ns) => ns.startsWith(`ba-${process.pid.toString(36)}-`));
    // The main lab of the describe above is cleaned in its afterAll, which ran before this.
    expect(mine).toEqual([]);
  });
});
