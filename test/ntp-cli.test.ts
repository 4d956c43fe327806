// The cluster's time served by real agent processes on loopback (issue 17): --ntp-port parsing
// (exit 2, one line naming it, from the command line, the environment or the config file), the
// NTP server answering with the agent's clock (stratum, refid, leap indicator as meant), GET /time,
// `berkeley-agent now` (exit 0 synchronized, 1 not, 3 unreachable), status clock.errorBoundNs and
// the ntp section, the table's Bound and NTP lines, and a busy NTP port being a warning, not a crash.
//
// Safety: --no-mdns --bind 127.0.0.1 on ports picked free; no agent binds port 123 here; every child
// process is killed when the suite ends.
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../src/daemon/status.ts';
import type { TimeReport } from '../src/daemon/time-report.ts';
import { ipv4Refid, NtpLeap, NtpMode, ntpShortToNs, ntpToUnixNs, readHeader, unixNsToNtp, writeHeader, type NtpHeader } from '../src/ntp/packet.ts';
import { REFID_CLUSTER_MASTER } from '../src/ntp/server-reply.ts';
import { describeResult, freePort, getStatus, LOOPBACK_ONLY, runCli, spawnCli, stopAllChildren, stopChild, waitFor, type CliResult } from '../lab/processes.ts';

afterAll(stopAllChildren);

/** Test agents get BERKELEY_AGENT_NTP_PORT=0 (lab/processes.ts cleanEnv); these commands run without it. */
const WITHOUT_NTP_ENV = ['env', '-u', 'BERKELEY_AGENT_NTP_PORT'];

function expectUsageError(result: CliResult, option: RegExp): void {
  expect(result.code, describeResult(result)).toBe(2);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^berkeley-agent: /);
  expect(lines[0]).toMatch(option);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

describe('--ntp-port', () => {
  it('refuses a value that is not a port 0-65535, naming the option and where it came from (exit 2)', async () => {
    const harmless = ['run', ...LOOPBACK_ONLY, '--port', '0', '--http', 'none'];
    for (const value of ['abc', '65536', '-1', '1.5', '0x7b', '']) {
      expectUsageError(await runCli([...harmless, '--ntp-port', value]), /^berkeley-agent: --ntp-port: /);
    }
    expectUsageError(await runCli(harmless, { env: { BERKELEY_AGENT_NTP_PORT: 'ntp' } }), /^berkeley-agent: --ntp-port: must be a plain decimal number \(got "ntp" from BERKELEY_AGENT_NTP_PORT\)$/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ntp-port-config-'));
    try {
      const file = path.join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ 'ntp-port': 70000 }));
      expectUsageError(await runCli([...harmless, '--config', file], { prefix: WITHOUT_NTP_ENV }), /^berkeley-agent: --ntp-port: must be at most 65535 \(got 70000 in the config file .*config\.json\)$/);
      writeFileSync(file, JSON.stringify({ 'ntp-port': 1123 }));
      const fromFile = await runCli(['config', '--json', '--config', file], { prefix: WITHOUT_NTP_ENV });
      expect(JSON.parse(fromFile.stdout).options['ntp-port']).toEqual({ value: 1123, source: 'config file' });
      expect(JSON.parse(fromFile.stdout).effective.ntpPort).toBe(1123);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('defaults to 123 (config shows the default when nothing sets it)', async () => {
    const result = await runCli(['config', '--json'], { prefix: WITHOUT_NTP_ENV });
    expect(JSON.parse(result.stdout).effective.ntpPort).toBe(123);
    expect(JSON.parse(result.stdout).options['ntp-port'].source).toBe('default');
    expect((await runCli(['run', '--help'])).stdout).toMatch(/--ntp-port[\s\S]*\[default: 123\]/);
  });
});

/** One NTPv4 client request to 127.0.0.1:port; the parsed reply and when it was sent (host clock). */
async function ntpQuery(port: number): Promise<{ header: NtpHeader; bytes: number }> {
  const socket = dgram.createSocket('udp4');
  try {
    const request: NtpHeader = {
      leap: 0, version: 4, mode: NtpMode.client, stratum: 0, poll: 4, precision: -20, rootDelay: 0, rootDispersion: 0, refid: 0,
      referenceTs: 0n, originTs: 0n, receiveTs: 0n, transmitTs: unixNsToNtp(BigInt(Date.now()) * 1_000_000n),
    };
    const reply = new Promise<Buffer>((resolve, reject) => {
      socket.once('message', resolve);
      setTimeout(() => reject(new Error(`no NTP reply from 127.0.0.1:${port} within 3 s`)), 3000).unref();
    });
    socket.send(writeHeader(request), port, '127.0.0.1');
    const bytes = await reply;
    const header = readHeader(bytes);
    expect(header.originTs).toBe(request.transmitTs);
    return { header, bytes: bytes.length };
  } finally {
    socket.close();
  }
}

/** The status of the agent at `httpPort`, asked again while it does not answer (a loaded machine). */
function statusOf(httpPort: number): Promise<StatusReport> {
  return waitFor(`the status of 127.0.0.1:${httpPort}`, 15_000, async () => (await getStatus(httpPort)) ?? undefined);
}

interface Agent {
  nodeId: string;
  udpPort: number;
  httpPort: number;
  ntpPort: number;
  child: ChildProcess;
  output: string;
}

describe('agents serving the cluster time on loopback', () => {
  const agents: Agent[] = [];
  let lonely: Agent;
  const byId = (nodeId: string) => agents.find((agent) => agent.nodeId === nodeId) as Agent;

  async function start(nodeId: string, priority: number, offsetS: number, peers: number[], ntpPort: number, extra: string[] = []): Promise<Agent> {
    const agent: Agent = { nodeId, udpPort: await freePort(), httpPort: await freePort(), ntpPort, child: null as unknown as ChildProcess, output: '' };
    agent.child = spawnCli([
      'run', ...LOOPBACK_ONLY, '--port', String(agent.udpPort), '--http', `127.0.0.1:${agent.httpPort}`, '--node-id', nodeId,
      '--priority', String(priority), '--cluster', `ntp-cli-${process.pid}`, '--discovery-window', '0.5', '--poll-interval', '0.5',
      '--virtual-offset', String(offsetS), '--log-format', 'json', '--ntp-port', String(ntpPort),
      ...peers.flatMap((port) => ['--peer', `127.0.0.1:${port}`]), ...extra,
    ]);
    const keep = (chunk: string) => (agent.output = (agent.output + chunk).slice(-20_000));
    agent.child.stdout?.setEncoding('utf8').on('data', keep);
    agent.child.stderr?.setEncoding('utf8').on('data', keep);
    return agent;
  }

  beforeAll(async () => {
    const ports = [await freePort(), await freePort()];
    const a = await start('ntp-a', 200, 0, [], ports[0] as number);
    agents.push(a);
    const b = await start('ntp-b', 100, 0.25, [a.udpPort], ports[1] as number);
    agents.push(b);
    // ntp-b holds its NTP port before the next agent asks for the same one.
    await waitFor('ntp-b serving NTP', 30_000, async () => ((await getStatus(b.httpPort))?.ntp.serving ? true : undefined));
    // Alone with a peer that does not exist, and never master: no master, never synchronized. It
    // asks for ntp-b's NTP port, which is taken: a warning, and it runs on.
    lonely = await start('ntp-lonely', 100, 0, [await freePort()], ports[1] as number, ['--never-master']);
    await waitFor('ntp-a master and ntp-b synchronized with a bound', 60_000, async () => {
      const [sa, sb] = await Promise.all(agents.map((agent) => getStatus(agent.httpPort)));
      return sa?.role === 'master' && sb?.masterId === 'ntp-a' && sb.clock.synchronized && sb.clock.errorBoundNs !== null ? true : undefined;
    });
  }, 90_000);

  afterAll(async () => {
    await Promise.all([...agents, lonely].filter((agent) => agent?.child).map((agent) => stopChild(agent.child)));
  });

  it('status: clock.errorBoundNs (0 on the master, a number on a member, null alone) and the ntp section', async () => {
    const master = await statusOf(byId('ntp-a').httpPort);
    const member = await statusOf(byId('ntp-b').httpPort);
    const alone = await statusOf(lonely.httpPort);
    expect(master.clock.errorBoundNs).toBe(0);
    expect(member.clock.errorBoundNs).toBeTypeOf('number');
    expect(member.clock.errorBoundNs as number).toBeGreaterThanOrEqual(0);
    expect(alone.clock.errorBoundNs).toBeNull();
    console.info(`[ntp-cli] member error bound ${member.clock.errorBoundNs} ns`);
    expect(member.ntp).toMatchObject({ port: byId('ntp-b').ntpPort, serving: true, addresses: [`127.0.0.1:${byId('ntp-b').ntpPort}`], why: null });
    // The port was taken by ntp-b: not serving, why names the address and the error; the agent runs on.
    expect(alone.ntp.serving).toBe(false);
    expect(alone.ntp.addresses).toEqual([]);
    expect(alone.ntp.why).toMatch(new RegExp(`127\\.0\\.0\\.1:${lonely.ntpPort}: EADDRINUSE`));
    expect(lonely.output).toMatch(/NTP server not started: cannot bind 127\.0\.0\.1:\d+: EADDRINUSE/);
    expect(lonely.child.exitCode).toBeNull();
  });

  it('answers NTP requests with the agent clock: a member at stratum 11 naming the master, the master 10 BRKL', async () => {
    const member = byId('ntp-b');
    const before = await statusOf(member.httpPort);
    const { header, bytes } = await ntpQuery(member.ntpPort);
    expect(bytes).toBe(48);
    expect(header).toMatchObject({ leap: NtpLeap.none, mode: NtpMode.server, version: 4, stratum: 11, refid: ipv4Refid('127.0.0.1') });
    // The agent's clock: the host's plus its offset (the master follows the host clock, ~0 here), so
    // the served time is within a second of the host's (generous: a busy machine).
    const servedNs = ntpToUnixNs(header.transmitTs);
    const hostNs = BigInt(Date.now()) * 1_000_000n;
    expect(Math.abs(Number(servedNs - hostNs))).toBeLessThan(1e9);
    // Root distance (delay / 2 + dispersion) is at least the bound the status reported.
    expect(ntpShortToNs(header.rootDelay) / 2 + ntpShortToNs(header.rootDispersion)).toBeGreaterThan(0);
    const master = await ntpQuery(byId('ntp-a').ntpPort);
    expect(master.header).toMatchObject({ leap: NtpLeap.none, stratum: 10, refid: REFID_CLUSTER_MASTER, rootDelay: 0 });
    const after = await statusOf(member.httpPort);
    expect(after.ntp.counters.requests - before.ntp.counters.requests).toBe(1);
    expect(after.ntp.counters.replies - before.ntp.counters.replies).toBe(1);
  });

  it('GET /time and `now`: the time with its bound, exit 0 when synchronized', async () => {
    const member = byId('ntp-b');
    const response = await fetch(`http://127.0.0.1:${member.httpPort}/time`, { signal: AbortSignal.timeout(3000) });
    expect(response.status).toBe(200);
    const time = (await response.json()) as TimeReport;
    expect(time).toMatchObject({ synchronized: true, clockMode: 'virtual', masterId: 'ntp-a', role: 'slave' });
    expect(time.timeNs).toMatch(/^\d{19}$/);
    expect(time.errorBoundNs).toBeTypeOf('number');
    // The ISO form is the same instant, to the nanosecond.
    const [whole, fraction] = time.iso.replace(/Z$/, '').split('.');
    expect(fraction).toMatch(/^\d{9}$/);
    expect(BigInt(Date.parse(`${whole}Z`)) * 1_000_000n + BigInt(fraction as string)).toBe(BigInt(time.timeNs));
    expect(Math.abs(time.hostOffsetNs)).toBeLessThan(1e9);

    const json = await runCli(['now', '--json', '--http', `127.0.0.1:${member.httpPort}`]);
    expect(json.code, describeResult(json)).toBe(0);
    const printed = JSON.parse(json.stdout) as TimeReport;
    expect(printed).toMatchObject({ synchronized: true, masterId: 'ntp-a', clockMode: 'virtual' });
    expect(BigInt(printed.timeNs)).toBeGreaterThan(BigInt(time.timeNs));

    const text = await runCli(['now', '--http', `127.0.0.1:${member.httpPort}`]);
    expect(text.code, describeResult(text)).toBe(0);
    expect(text.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z {2}\d{19} ns {2}±\S+ \S+ {2}synchronized \(slave, master ntp-a, virtual clock\)\n$/);
  });

  it('`now` exits 1 for an agent that is not synchronized (no bound) and 3 when nothing answers', async () => {
    const alone = await runCli(['now', '--json', '--http', `127.0.0.1:${lonely.httpPort}`]);
    expect(alone.code, describeResult(alone)).toBe(1);
    expect(JSON.parse(alone.stdout)).toMatchObject({ synchronized: false, errorBoundNs: null });
    const nothing = await runCli(['now', '--http', `127.0.0.1:${await freePort()}`]);
    expect(nothing.code, describeResult(nothing)).toBe(3);
    expect(nothing.stderr.trimEnd().split('\n')).toHaveLength(1);
    expectUsageError(await runCli(['now', '--http', 'none']), /--http: 'none' leaves nothing to ask/);
  });

  it('the status table shows the bound and the NTP server', async () => {
    const table = await runCli(['status', '--http', `127.0.0.1:${byId('ntp-b').httpPort}`]);
    expect(table.stdout).toMatch(/^Bound\s+±\S+ \S+ from the master's clock$/m);
    expect(table.stdout).toMatch(new RegExp(`^NTP\\s+serving on UDP 127\\.0\\.0\\.1:${byId('ntp-b').ntpPort}; \\d+ requests`, 'm'));
    const alone = await runCli(['status', '--http', `127.0.0.1:${lonely.httpPort}`]);
    expect(alone.stdout).toMatch(/^Bound\s+none: not synchronized/m);
    expect(alone.stdout).toMatch(/^NTP\s+not serving: cannot bind 127\.0\.0\.1:\d+: EADDRINUSE/m);
  });
});
