// How a running agent ends, against real processes on loopback (--clock virtual): every signal
// whose default action would kill it (SIGHUP when an ssh session drops, SIGQUIT, SIGUSR2, ...)
// stops it gracefully: exit 0, the state saved, the lock released, and its peer told (LEAVE).
// An uncaught exception (injected with a preload module) still saves the state, tells the peers
// and exits 1. The kernel-clock side of a crash (the slew ended) is tested in-process against the
// fake adjtimex in test/kernel-daemon.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STOP_SIGNALS } from '../src/daemon/lifecycle.ts';
import { BIN, cleanEnv, LOOPBACK_ONLY, REPO_ROOT, stopAllChildren, stopChild, waitFor } from '../lab/processes.ts';

const root = mkdtempSync(path.join(tmpdir(), 'berkeley-signals-'));
const cluster = `signals-${process.pid}`;
const started: ChildProcess[] = [];

interface Agent {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startAgent(nodeId: string, extra: string[], nodeArgs: string[] = []): Agent {
  const args = [
    ...nodeArgs,
    BIN,
    'run',
    '--node-id',
    nodeId,
    '--cluster',
    cluster,
    '--port',
    '0',
    ...LOOPBACK_ONLY,
    '--http',
    'none',
    '--clock',
    'virtual',
    '--poll-interval',
    '0.2',
    '--discovery-window',
    '0.2',
    '--log-format',
    'json',
    ...extra,
  ];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const line of parts) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => lines.push({ stderr: chunk }));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, lines, exited };
}

const logged = (agent: Agent, match: (line: Record<string, unknown>) => boolean) => agent.lines.find(match);
const lastLines = (agent: Agent) => JSON.stringify(agent.lines.slice(-6));

let master: Agent;
let masterPort: number;

beforeAll(async () => {
  // The master of every test: the highest priority, so each agent under test is its member.
  master = startAgent('sig-master', ['--priority', '1000']);
  const startedLine = await waitFor('the master to start', 20_000, async () => logged(master, (line) => line.msg === 'agent started'), () => lastLines(master));
  masterPort = (startedLine.listen as { port: number }).port;
}, 30_000);

afterAll(async () => {
  await Promise.all(started.map((child) => stopChild(child, 1000)));
  await stopAllChildren();
  rmSync(root, { recursive: true, force: true });
});

/** Starts a member with its own state directory and waits until it follows the master. */
async function startMember(nodeId: string, nodeArgs: string[] = []): Promise<{ agent: Agent; stateDir: string }> {
  const stateDir = path.join(root, nodeId);
  const agent = startAgent(nodeId, ['--priority', '10', '--state-dir', stateDir, '--peer', `127.0.0.1:${masterPort}`], nodeArgs);
  await waitFor(
    `${nodeId} to follow the master`,
    25_000,
    async () => logged(agent, (line) => line.msg === 'role changed' && line.to === 'slave' && line.masterId === 'sig-master'),
    () => lastLines(agent),
  );
  return { agent, stateDir };
}

async function expectHandedOver(nodeId: string): Promise<void> {
  await waitFor(`the master to hear ${nodeId}'s LEAVE`, 5000, async () => logged(master, (line) => line.msg === 'peer left' && line.peer === nodeId), () => lastLines(master));
}

function savedState(stateDir: string): { nodeId: string; term: number } {
  return JSON.parse(readFileSync(path.join(stateDir, 'state.json'), 'utf8')) as { nodeId: string; term: number };
}

describe('signals end a running agent cleanly', () => {
  // Four at a time: each is a real Node process.
  const batches: NodeJS.Signals[][] = [];
  for (let index = 0; index < STOP_SIGNALS.length; index += 4) batches.push(STOP_SIGNALS.slice(index, index + 4));

  for (const batch of batches) {
    it(`${batch.join(', ')}: exit 0, LEAVE sent, state saved, lock released`, async () => {
      const members = await Promise.all(batch.map((signal) => startMember(`sig-${signal.toLowerCase()}`)));
      const termsBefore = members.map(({ stateDir }) => savedState(stateDir).term);
      for (const [index, signal] of batch.entries()) members[index]!.agent.child.kill(signal);
      for (const [index, signal] of batch.entries()) {
        const { agent, stateDir } = members[index]!;
        const nodeId = `sig-${signal.toLowerCase()}`;
        const exit = await agent.exited;
        expect(exit, `${signal}: ${lastLines(agent)}`).toEqual({ code: 0, signal: null });
        expect(logged(agent, (line) => line.msg === 'stopping')?.signal).toBe(signal);
        expect(logged(agent, (line) => line.msg === 'agent stopped')).toBeDefined();
        await expectHandedOver(nodeId);
        const state = savedState(stateDir);
        expect(state.nodeId).toBe(nodeId);
        expect(state.term).toBeGreaterThanOrEqual(termsBefore[index]!);
        expect(state.term).toBeGreaterThan(0);
        expect(existsSync(path.join(stateDir, 'agent.lock')), 'the lock is released').toBe(false);
      }
    }, 60_000);
  }

  it('a second signal while stopping exits at once (code 1), the state still saved', async () => {
    const { agent, stateDir } = await startMember('sig-twice');
    agent.child.kill('SIGTERM');
    agent.child.kill('SIGINT');
    const exit = await agent.exited;
    // The first stop may already have finished before the second signal was handled.
    expect([0, 1]).toContain(exit.code);
    expect(exit.signal).toBeNull();
    expect(savedState(stateDir).nodeId).toBe('sig-twice');
  }, 40_000);
});

describe('an internal error ends the agent like a stop, but exits 1', () => {
  it('an uncaught exception: logged as fatal, state saved, LEAVE sent, exit 1', async () => {
    const preload = path.join(root, 'throw-later.mjs');
    // Thrown from a timer once the agent has followed its master: an uncaught exception.
    writeFileSync(preload, "setTimeout(() => { throw new Error('injected failure'); }, Number(process.env.THROW_AFTER_MS ?? 4000));\n");
    const stateDir = path.join(root, 'sig-crash');
    const child = spawn(
      process.execPath,
      ['--import', preload, BIN, 'run', '--node-id', 'sig-crash', '--cluster', cluster, '--port', '0', ...LOOPBACK_ONLY, '--http', 'none', '--clock', 'virtual', '--poll-interval', '0.2', '--discovery-window', '0.2', '--log-format', 'json', '--priority', '10', '--state-dir', stateDir, '--peer', `127.0.0.1:${masterPort}`],
      { cwd: REPO_ROOT, env: cleanEnv({ THROW_AFTER_MS: '6000' }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(child);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    expect(exit, output.slice(-2000)).toEqual({ code: 1, signal: null });
    const lines = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.some((line) => line.msg === 'role changed' && line.to === 'slave'), 'it had joined the cluster before the failure').toBe(true);
    const fatal = lines.find((line) => line.msg === 'internal error; stopping');
    expect(fatal).toMatchObject({ err: 'injected failure', origin: 'uncaughtException' });
    expect(savedState(stateDir)).toMatchObject({ nodeId: 'sig-crash' });
    expect(savedState(stateDir).term).toBeGreaterThan(0);
    await expectHandedOver('sig-crash');
    expect(existsSync(path.join(stateDir, 'agent.lock'))).toBe(false);
  }, 40_000);
});
