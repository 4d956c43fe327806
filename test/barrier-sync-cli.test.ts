// `barrier --synchronized [-- COMMAND]` and `at TIME [-- COMMAND]` (issue 19) against real agents on
// loopback (no root), one of them started 2.5 s off so that the virtual clocks sit away from the
// host clock: the commands never return (or start COMMAND) before the instant on the participant's
// own clock, COMMAND gets its arguments and passes its exit code on, `at` refuses an
// unsynchronized agent unless told, and bad input is one line with the documented exit code. The
// JSON says how the wait ended (clock_nanosleep) and how the command was started (posix_spawn).
// Semantics only: how close to the instant they start is the benchmark's business.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeResult, freePort, getStatus, LOOPBACK_ONLY, runCli, spawnCli, stopAllChildren, waitFor, type CliResult } from '../lab/processes.ts';

afterAll(stopAllChildren);

const STACK_LINE = /^\s+at .+/m;

interface Agent {
  nodeId: string;
  httpPort: number;
  child: ChildProcess;
}

/** The agent's clock now, read around a moment: host realtime + its offset (ms resolution is enough here). */
async function agentClockNs(agent: Agent): Promise<bigint> {
  const status = await getStatus(agent.httpPort);
  if (status === null) throw new Error(`agent ${agent.nodeId} does not answer`);
  return BigInt(Date.now()) * 1_000_000n + BigInt(Math.round(status.clock.hostOffsetNs));
}

function background(args: string[]): Promise<CliResult> {
  return runCli(args, { timeoutMs: 40_000 });
}

function jsonLine(text: string): Record<string, unknown> {
  const line = text.split('\n').find((candidate) => candidate.startsWith('{'));
  if (line === undefined) throw new Error(`no JSON line in ${JSON.stringify(text)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

function expectOneLine(result: CliResult, code: number, problem: RegExp): void {
  expect(result.code, describeResult(result)).toBe(code);
  expect(result.stderr).not.toMatch(STACK_LINE);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^berkeley-agent: /);
  expect(lines[0]).toMatch(problem);
}

describe('synchronized starts (agents on loopback)', () => {
  const agents: Agent[] = [];
  let loner: Agent;

  beforeAll(async () => {
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const peers = [0, 1].flatMap((index) => ['--peer', `127.0.0.1:${ports[index]}`]);
    for (let index = 0; index < 2; index += 1) {
      const nodeId = `sync-${index + 1}`;
      const offset = index === 1 ? ['--virtual-offset', '2.5'] : [];
      const child = spawnCli([
        '--node-id', nodeId, ...LOOPBACK_ONLY, ...offset,
        '--port', String(ports[index]), '--http', `127.0.0.1:${ports[index + 3]}`,
        '--discovery-window', '0.5', '--poll-interval', '0.5', '--log-level', 'warn', ...peers,
      ]);
      agents.push({ nodeId, httpPort: ports[index + 3]!, child });
    }
    // An agent alone, still discovering for a minute: not synchronized.
    const lonerChild = spawnCli(['--node-id', 'sync-loner', ...LOOPBACK_ONLY, '--port', String(ports[2]), '--http', `127.0.0.1:${ports[5]}`, '--discovery-window', '60', '--log-level', 'warn']);
    loner = { nodeId: 'sync-loner', httpPort: ports[5]!, child: lonerChild };
    let last = '';
    await waitFor('both agents synchronized under one master', 30_000, async () => {
      const statuses = await Promise.all(agents.map((agent) => getStatus(agent.httpPort)));
      last = JSON.stringify(statuses.map((status) => status && { master: status.masterId, synchronized: status.clock.synchronized }));
      return statuses.every((status) => status?.masterId === 'sync-2' && status.clock.synchronized) ? true : undefined;
    }, () => last);
    await waitFor('the loner answering', 15_000, async () => ((await getStatus(loner.httpPort)) === null ? undefined : true));
  }, 60_000);

  it('--synchronized: every participant returns at the release instant, never before it on its own clock', async () => {
    const [a, b] = agents as [Agent, Agent];
    const runs = [
      background(['barrier', 'phase', '--synchronized', '--json', '--http', `127.0.0.1:${a.httpPort}`]),
      background(['barrier', 'phase', '--synchronized', '--json', '--count', '1', '--http', `127.0.0.1:${b.httpPort}`]),
    ];
    const results = await Promise.all(runs);
    const instants = new Set<string>();
    for (const [index, result] of results.entries()) {
      expect(result.code, describeResult(result)).toBe(0);
      const answer = jsonLine(result.stdout) as { releaseAtNs: string; clock: { hostOffsetNs: number }; start: { instantNs: string; startedClockNs: string; lateNs: number } };
      expect(answer.start.instantNs).toBe(answer.releaseAtNs);
      instants.add(answer.releaseAtNs);
      // The command's own record: its clock when the wait ended.
      expect(BigInt(answer.start.startedClockNs)).toBeGreaterThanOrEqual(BigInt(answer.releaseAtNs));
      // And the agent's clock, read after the command exited, is past the instant.
      expect(await agentClockNs(agents[index]!)).toBeGreaterThanOrEqual(BigInt(answer.releaseAtNs));
      // A late start is said on stderr, with the JSON's lateNs.
      if (answer.start.lateNs > 0) expect(result.stderr).toMatch(/after the instant/);
    }
    expect(instants.size).toBe(1);
    // sync-2 runs a virtual clock 1.25 s from the host's (the mean of 0 and 2.5 s): it says with what bound.
    expect(results[1]!.stderr).toMatch(/virtual clock \(host offset|after the instant/);
  }, 60_000);

  it('-- COMMAND runs at the instant, without a shell, with its arguments, and its exit code is passed on', async () => {
    const [a, b] = agents as [Agent, Agent];
    const script = 'date +%s%N; printf "%s|" "$@"; echo; exit 7';
    const runs = [
      background(['barrier', 'cmd', '--synchronized', '--json', '--http', `127.0.0.1:${a.httpPort}`, '--', 'sh', '-c', script, 'sh', 'one', 'two words', '--json']),
      background(['barrier', 'cmd', '--synchronized', '--json', '--count', '1', '--http', `127.0.0.1:${b.httpPort}`, '--', 'sh', '-c', script, 'sh', 'x']),
    ];
    const [first, second] = await Promise.all(runs);
    for (const result of [first!, second!]) {
      expect(result.code, describeResult(result)).toBe(7);
      const answer = jsonLine(result.stdout) as { releaseAtNs: string; clock: { hostOffsetNs: number; hostAnchorErrorNs: number }; start: { lateNs: number; wokeBy: string; command: { via: string; startedAfterNs: number } } };
      const started = result.stdout.split('\n').find((line) => /^\d{19}$/.test(line));
      expect(started, result.stdout).toBeDefined();
      // The last stretch in the kernel (or none: late), the command through posix_spawn, and how long after the instant it was started.
      expect(answer.start.wokeBy).toBe(answer.start.lateNs > 0 ? 'none' : 'clock_nanosleep');
      expect(answer.start.command.via).toBe('posix_spawn');
      expect(answer.start.command.startedAfterNs).toBeGreaterThanOrEqual(0);
      // The command's first act, on the host clock, is not before the instant on its agent's clock.
      const hostTargetNs = BigInt(answer.releaseAtNs) - BigInt(Math.round(answer.clock.hostOffsetNs));
      expect(BigInt(started!)).toBeGreaterThanOrEqual(hostTargetNs);
    }
    // Options after -- belong to the command.
    expect(first!.stdout).toContain('one|two words|--json|');
    expect(second!.stdout).toContain('x|');
  }, 60_000);

  it('a command that cannot be run: 127, one line', async () => {
    const [a] = agents as [Agent];
    const result = await runCli(['barrier', 'nocmd', '--count', '0', '--synchronized', '--http', `127.0.0.1:${a.httpPort}`, '--', '/nonexistent/berkeley-test-command'], { timeoutMs: 30_000 });
    // One line says why (the start line, virtual clock or late, may precede it).
    expect(result.code, describeResult(result)).toBe(127);
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toMatch(/^berkeley-agent: barrier nocmd: cannot run "\/nonexistent\/berkeley-test-command": ENOENT$/);
  }, 40_000);

  it('a barrier error code is passed on and the command does not run', async () => {
    const [a] = agents as [Agent];
    const result = await runCli(['barrier', 'failed', '--count', '0', '--error', '5', '--synchronized', '--http', `127.0.0.1:${a.httpPort}`, '--', 'sh', '-c', 'echo ran'], { timeoutMs: 30_000 });
    expect(result.code, describeResult(result)).toBe(5);
    expect(result.stdout).not.toContain('ran');
  }, 40_000);

  it('at +0.5 returns once the cluster clock has reached half a second from now', async () => {
    const b = agents[1]!;
    const beforeNs = await agentClockNs(b);
    const result = await runCli(['at', '+0.5', '--json', '--http', `127.0.0.1:${b.httpPort}`], { timeoutMs: 30_000 });
    expect(result.code, describeResult(result)).toBe(0);
    const report = jsonLine(result.stdout) as { instantNs: string; startedClockNs: string; synchronized: boolean };
    // Half a second after the command asked, which was after beforeNs (1 ms: the ms resolution of Date.now above).
    expect(BigInt(report.instantNs)).toBeGreaterThanOrEqual(beforeNs + 500_000_000n - 1_000_000n);
    expect(BigInt(report.startedClockNs)).toBeGreaterThanOrEqual(BigInt(report.instantNs));
    expect(await agentClockNs(b)).toBeGreaterThanOrEqual(BigInt(report.instantNs));
    expect(report.synchronized).toBe(true);
  }, 40_000);

  it('at @EPOCH -- COMMAND runs the command at the instant and passes its exit code on', async () => {
    const a = agents[0]!;
    const instantNs = (await agentClockNs(a)) + 800_000_000n;
    const epoch = `@${instantNs / 1_000_000_000n}.${(instantNs % 1_000_000_000n).toString().padStart(9, '0')}`;
    const result = await runCli(['at', epoch, '--json', '--http', `127.0.0.1:${a.httpPort}`, '--', 'sh', '-c', 'date +%s%N; exit 3'], { timeoutMs: 30_000 });
    expect(result.code, describeResult(result)).toBe(3);
    const report = jsonLine(result.stdout) as { instantNs: string; hostOffsetNs: number; command: { via: string; startedAfterNs: number } };
    expect(report.instantNs).toBe(instantNs.toString());
    expect(report.command.via).toBe('posix_spawn');
    expect(report.command.startedAfterNs).toBeGreaterThanOrEqual(0);
    const started = result.stdout.split('\n').find((line) => /^\d{19}$/.test(line));
    expect(BigInt(started!)).toBeGreaterThanOrEqual(instantNs - BigInt(Math.round(report.hostOffsetNs)));
  }, 40_000);

  it('at a TIME in the past runs at once and says how late', async () => {
    const result = await runCli(['at', '@1000000000', '--json', '--http', `127.0.0.1:${agents[0]!.httpPort}`], { timeoutMs: 30_000 });
    expect(result.code, describeResult(result)).toBe(0);
    const report = jsonLine(result.stdout) as { lateNs: number };
    expect(report.lateNs).toBeGreaterThan(0);
    expect(result.stderr).toMatch(/after the instant/);
  }, 40_000);

  it('at refuses an agent that is not synchronized (exit 1), unless --allow-unsynchronized', async () => {
    const status = await getStatus(loner.httpPort);
    expect(status?.clock.synchronized).toBe(false);
    const refused = await runCli(['at', '+0.1', '--http', `127.0.0.1:${loner.httpPort}`], { timeoutMs: 30_000 });
    expectOneLine(refused, 1, /not synchronized.*--allow-unsynchronized/);
    const allowed = await runCli(['at', '+0.1', '--allow-unsynchronized', '--http', `127.0.0.1:${loner.httpPort}`, '--', 'sh', '-c', 'echo ran'], { timeoutMs: 30_000 });
    expect(allowed.code, describeResult(allowed)).toBe(0);
    expect(allowed.stdout).toContain('ran');
    expect(allowed.stderr).toMatch(/unsynchronized clock/);
  }, 40_000);

  it('bad TIME: one line naming it, exit 2; no agent: exit 3', async () => {
    for (const time of ['soon', '2023-02-30T00:00:00Z', '+1.', '@-5']) {
      const result = await runCli(['at', time, '--http', `127.0.0.1:${agents[0]!.httpPort}`], { timeoutMs: 20_000 });
      expectOneLine(result, 2, new RegExp(`TIME "${time.replace(/[.+]/g, '\\$&')}"`));
    }
    const far = await runCli(['at', '+99999999', '--http', `127.0.0.1:${agents[0]!.httpPort}`], { timeoutMs: 20_000 });
    expectOneLine(far, 2, /days ahead/);
    const port = await freePort();
    const unreachable = await runCli(['at', '+0.1', '--http', `127.0.0.1:${port}`], { timeoutMs: 20_000 });
    expectOneLine(unreachable, 3, /cannot ask the agent/);
    const emptyCommand = await runCli(['at', '+0.1', '--http', `127.0.0.1:${port}`, '--'], { timeoutMs: 20_000 });
    expectOneLine(emptyCommand, 2, /give the COMMAND/);
  }, 60_000);

  it('barrier --no-wait cannot go with --synchronized or -- COMMAND (64)', async () => {
    const result = await runCli(['barrier', 'nw', '--count', '1', '--no-wait', '--synchronized', '--http', `127.0.0.1:${agents[0]!.httpPort}`], { timeoutMs: 20_000 });
    expectOneLine(result, 64, /--no-wait/);
  }, 30_000);
});
