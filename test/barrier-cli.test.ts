// `berkeley-agent barrier` against real agent processes on loopback (no root): waiters block until
// the initializer and all waiters are there (even past the control server's request timeout), the
// largest error code reaches everyone, --no-wait, --timeout (124, and the participant leaves the
// barrier), usage errors (64, one line naming the problem), an agent that cannot be reached or
// dies under a waiter (76), status and metrics. Every agent runs with --no-mdns --bind 127.0.0.1
// and the same --peer list, which names itself too (it must not take itself for a peer).
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeResult, freePort, getStatus, LOOPBACK_ONLY, runCli, running, sleep, spawnCli, stopAllChildren, waitFor, type CliResult } from '../lab/processes.ts';

afterAll(stopAllChildren);

const STACK_LINE = /^\s+at .+/m;

interface Agent {
  nodeId: string;
  udpPort: number;
  httpPort: number;
  child: ChildProcess;
}

/** A barrier command in the background, and its result when it exits. */
function barrier(agent: Agent, args: string[]): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawnCli(['barrier', ...args, '--http', `127.0.0.1:${agent.httpPort}`]);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<CliResult>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, timedOut: false })));
  return { child, done };
}

function expectBarrierUsage(result: CliResult, problem: RegExp): void {
  expect(result.code, describeResult(result)).toBe(64);
  expect(result.stderr).not.toMatch(STACK_LINE);
  const first = result.stderr.trimEnd().split('\n')[0] ?? '';
  expect(first).toMatch(/^berkeley-agent: /);
  expect(first).toMatch(problem);
}

describe('barrier command (agents on loopback)', () => {
  const agents: Agent[] = [];
  let master: Agent;

  beforeAll(async () => {
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const peers = [0, 1, 2].flatMap((index) => ['--peer', `127.0.0.1:${ports[index]}`]);
    for (let index = 0; index < 3; index += 1) {
      const nodeId = `bar-${index + 1}`;
      const child = spawnCli([
        '--node-id', nodeId, ...LOOPBACK_ONLY,
        '--port', String(ports[index]), '--http', `127.0.0.1:${ports[index + 3]}`,
        '--discovery-window', '0.5', '--poll-interval', '0.5', '--log-level', 'warn', ...peers,
      ]);
      agents.push({ nodeId, udpPort: ports[index]!, httpPort: ports[index + 3]!, child });
    }
    // The highest key (bar-3: equal priorities, highest id), once all three have met.
    let last = '';
    master = await waitFor('bar-3 master, followed by all three', 20_000, async () => {
      const statuses = await Promise.all(agents.map((agent) => getStatus(agent.httpPort)));
      last = JSON.stringify(statuses.map((status) => status && { id: status.nodeId, master: status.masterId, peers: status.peers.map((peer) => peer.nodeId) }));
      if (!statuses.every((status) => status?.masterId === 'bar-3' && status.peers.length === 2)) return undefined;
      return agents[2];
    }, () => last);
  }, 40_000);

  it('the same --peer list on every agent, itself included, is not taken for a duplicate node id', async () => {
    for (const agent of agents) expect((await getStatus(agent.httpPort))!.counters.framesFromSelfId).toBe(0);
  });

  it('waiters block until the initializer and every waiter are present (past the 5 s request timeout); all exit with the largest error code', async () => {
    const [a, b, c] = agents as [Agent, Agent, Agent];
    const waiters = [barrier(a, ['start']), barrier(b, ['start', '--error', '3']), barrier(master, ['start'])];
    // The commands start (a few hundred ms each), reach their agents, which register with the master.
    const open = await waitFor('three waiters at the master', 15_000, async () => {
      const status = await getStatus(master.httpPort);
      const entry = status?.barriers.open?.find((candidate) => candidate.name === 'start');
      return entry && entry.present === 3 ? entry : undefined;
    });
    expect(open).toMatchObject({ present: 3, initialized: false, count: null, errorCode: 3 });
    expect((await getStatus(a.httpPort))!.barriers.waiting).toMatchObject([{ name: 'start', count: null, acknowledged: true }]);
    const metrics = await (await fetch(`http://127.0.0.1:${master.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^berkeley_barriers_open 1$/m);
    expect(metrics).toMatch(/^berkeley_barrier_participants 3$/m);
    // Held longer than the control server's request timeout (5 s): still waiting.
    await sleep(5000);
    for (const waiter of waiters) expect(running(waiter.child)).toBe(true);
    // An initializer that wants 4 waiters leaves them blocked; it is the initializer of 3 here.
    const initializer = barrier(c, ['start', '--count', '3', '--error', '7']);
    const results = await Promise.all([...waiters.map((waiter) => waiter.done), initializer.done]);
    for (const result of results) {
      expect(result.code, describeResult(result)).toBe(7);
      expect(result.stderr).toBe('');
    }
    // The name is free again.
    await waitFor('the barrier closed at the master', 5000, async () => ((await getStatus(master.httpPort))!.barriers.open!.length === 0 ? true : undefined));
  }, 30_000);

  it('--no-wait returns once the master has the initializer; a later waiter releases the barrier', async () => {
    const initializer = await runCli(['barrier', 'go', '--count', '1', '--no-wait', '--json', '--http', `127.0.0.1:${agents[0]!.httpPort}`]);
    expect(initializer.code, describeResult(initializer)).toBe(0);
    expect(JSON.parse(initializer.stdout)).toMatchObject({ result: 'registered', name: 'go', count: 1 });
    const waiter = await runCli(['barrier', 'go', '--http', `127.0.0.1:${agents[1]!.httpPort}`]);
    expect(waiter.code, describeResult(waiter)).toBe(0);
  });

  it('an uninitialized barrier with --timeout 2 exits 124, and the participant leaves the barrier', async () => {
    const started = Date.now();
    const result = await runCli(['barrier', 'never', '--timeout', '2', '--http', `127.0.0.1:${agents[1]!.httpPort}`]);
    expect(result.code, describeResult(result)).toBe(124);
    expect(result.stderr).toMatch(/^berkeley-agent: barrier never: timed out after 2 s$/m);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    await waitFor('the master forgot the participant', 5000, async () => {
      const status = await getStatus(master.httpPort);
      return status!.barriers.open!.some((entry) => entry.name === 'never') ? undefined : status;
    });
  });

  it('usage errors exit 64 with one line naming the problem', async () => {
    const http = ['--http', `127.0.0.1:${agents[0]!.httpPort}`];
    expectBarrierUsage(await runCli(['barrier', 'two words', ...http]), /^berkeley-agent: NAME "two words": only printable ASCII/);
    expectBarrierUsage(await runCli(['barrier', 'x'.repeat(65), ...http]), /NAME .*longer than 64 bytes/);
    expectBarrierUsage(await runCli(['barrier', 'b', '--count', '-1', ...http]), /--count: must be at least 0/);
    expectBarrierUsage(await runCli(['barrier', 'b', '--count', '4097', ...http]), /--count: must be at most 4096/);
    expectBarrierUsage(await runCli(['barrier', 'b', '--error', '240', ...http]), /--error: must be at most 239/);
    expectBarrierUsage(await runCli(['barrier', 'b', '--no-wait', ...http]), /--no-wait: only the initializer/);
    expectBarrierUsage(await runCli(['barrier', 'b', '--timeout', '0', ...http]), /--timeout: must be greater than 0/);
    expectBarrierUsage(await runCli(['barrier', 'b', '--bogus', ...http]), /unknown option or argument: --bogus/);
    expectBarrierUsage(await runCli(['barrier', ...http]), /name/i);
  });

  it('a second initializer is refused with 64, naming the reason', async () => {
    const first = barrier(agents[0]!, ['dup', '--count', '5', '--timeout', '20']);
    await waitFor('the first initializer at the master', 15_000, async () => ((await getStatus(master.httpPort))?.barriers.open?.some((entry) => entry.name === 'dup' && entry.initialized) ? true : undefined));
    const second = await runCli(['barrier', 'dup', '--count', '2', '--http', `127.0.0.1:${agents[1]!.httpPort}`]);
    expect(second.code, describeResult(second)).toBe(64);
    expect(second.stderr).toMatch(/already has an initializer/);
    first.child.kill('SIGTERM');
    await first.done;
  });

  it('exits 76 when the agent cannot be reached, or dies under a waiting participant', async () => {
    const unused = await freePort();
    const unreachable = await runCli(['barrier', 'b', '--http', `127.0.0.1:${unused}`]);
    expect(unreachable.code, describeResult(unreachable)).toBe(76);
    expect(unreachable.stderr).toMatch(/cannot reach the agent's control server at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    // kill -9 of a member agent while its participant waits.
    const victim = agents.find((agent) => agent !== master)!;
    const waiter = barrier(victim, ['orphan']);
    await waitFor('the participant waiting at its agent', 15_000, async () => ((await getStatus(victim.httpPort))?.barriers.waiting.length === 1 ? true : undefined));
    victim.child.kill('SIGKILL');
    const result = await waiter.done;
    expect(result.code, describeResult(result)).toBe(76);
    expect(result.stderr).toMatch(/went away while orphan was waiting/);
  });
});
