// --state-dir: the term survives a restart, so a restarted node never goes back to an older term;
// the learned frequency survives too (the drift file).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadState, LOCK_FILE, openStateDir, processStartTicks, StateDirError, StateWriter } from '../src/daemon/state.ts';
import { describeResult, LOOPBACK_ONLY, runCli, spawnCli, stopAllChildren, stopChild, waitFor } from '../lab/processes.ts';
import { ProtocolNode } from '../src/core/node.ts';
import { nodeConfig } from '../src/core/defaults.ts';
import { claimTerm } from '../src/core/election/terms.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berkeley-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterAll(async () => {
  await stopAllChildren();
});

describe('state directory', () => {
  it('a missing file is simply no state', async () => {
    expect(await loadState(dir, 'a')).toEqual({ state: null, frequencies: {}, warning: null });
  });

  it('saves synchronously (on disk when save() returns) and loads the newest state', async () => {
    const errors: Error[] = [];
    const writer = new StateWriter(dir, 'a', (error) => errors.push(error));
    writer.save({ term: 3, lastMasterTerm: 0 });
    expect(await loadState(dir, 'a')).toEqual({ state: { term: 3, lastMasterTerm: 0 }, frequencies: {}, warning: null });
    writer.save({ term: 9, lastMasterTerm: 9 });
    expect(errors).toEqual([]);
    expect(await loadState(dir, 'a')).toEqual({ state: { term: 9, lastMasterTerm: 9 }, frequencies: {}, warning: null });
    const onDisk = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8')) as { nodeId: string; term: number };
    expect(onDisk).toMatchObject({ nodeId: 'a', term: 9, lastMasterTerm: 9 });
  });

  it('keeps the frequency with the kind of clock it was learned on', async () => {
    const writer = new StateWriter(dir, 'a', (error) => {
      throw error;
    });
    writer.save({ term: 3, lastMasterTerm: 0 }, { system: -12.345, virtual: 3 });
    expect(await loadState(dir, 'a')).toEqual({ state: { term: 3, lastMasterTerm: 0 }, frequencies: { system: -12.345, virtual: 3 }, warning: null });
  });

  it('a bad frequency entry is dropped without losing the term, and the original is kept', async () => {
    for (const frequencyPpm of [{ system: 1e9 }, { virtual: 'fast' }, 'fast', 12]) {
      await writeFile(path.join(dir, 'state.json'), JSON.stringify({ nodeId: 'a', term: 7, frequencyPpm }));
      const loaded = await loadState(dir, 'a', new Date(Date.UTC(2030, 0, 1, 0, 0, 0, Object.keys(await readdir(dir)).length)));
      expect(loaded).toMatchObject({ state: { term: 7, lastMasterTerm: 0 }, frequencies: {}, warning: expect.stringMatching(/ignored invalid frequencyPpm/) });
      expect(JSON.parse(await readFile(loaded.keptCopy!, 'utf8'))).toEqual({ nodeId: 'a', term: 7, frequencyPpm });
    }
  });

  it('a term beyond what frames carry (above 2^52) is dropped; the frequency and the rest are kept', async () => {
    const original = JSON.stringify({ nodeId: 'a', term: 2 ** 52 + 2, lastMasterTerm: 5, bootId: 1234, frequencyPpm: { system: -12.5, virtual: 3 } });
    await writeFile(path.join(dir, 'state.json'), original);
    const loaded = await loadState(dir, 'a');
    expect(loaded.warning).toMatch(/ignored invalid term 4503599627370498/);
    // Without its term the node still never claims the term it was master in.
    expect(loaded.state).toEqual({ term: 5, lastMasterTerm: 5 });
    expect(loaded.frequencies).toEqual({ system: -12.5, virtual: 3 });
    expect(loaded.bootId).toBe(1234);
    expect(path.basename(loaded.keptCopy!)).toMatch(/^state\.json\.bad-\d{4}-\d\d-\d\dT/);
    expect(await readFile(loaded.keptCopy!, 'utf8')).toBe(original);
  });

  it('each field is judged on its own: a bad lastMasterTerm, bootId or negative term', async () => {
    const cases: [object, RegExp, Partial<Awaited<ReturnType<typeof loadState>>>][] = [
      [{ nodeId: 'a', term: 9, lastMasterTerm: 10 }, /lastMasterTerm 10 \(above term 9\)/, { state: { term: 9, lastMasterTerm: 0 } }],
      [{ nodeId: 'a', term: 9, lastMasterTerm: 'x' }, /lastMasterTerm "x"/, { state: { term: 9, lastMasterTerm: 0 } }],
      [{ nodeId: 'a', term: 9, bootId: -3, frequencyPpm: { virtual: 1 } }, /bootId -3/, { state: { term: 9, lastMasterTerm: 0 }, frequencies: { virtual: 1 } }],
      [{ nodeId: 'a', term: -1, frequencyPpm: { system: 2 } }, /term -1/, { state: null, frequencies: { system: 2 } }],
      [{ nodeId: 'a', term: 1.5 }, /term 1.5/, { state: null }],
      [{ nodeId: 'a', frequencyPpm: { system: 2 } }, /term \(missing\)/, { state: null, frequencies: { system: 2 } }],
    ];
    for (const [content, warning, expected] of cases) {
      await writeFile(path.join(dir, 'state.json'), JSON.stringify(content));
      const loaded = await loadState(dir, 'a');
      expect(loaded, JSON.stringify(content)).toMatchObject(expected);
      expect(loaded.warning, JSON.stringify(content)).toMatch(warning);
      expect(loaded.keptCopy).toBeTruthy();
    }
  });

  it('reads a state file without lastMasterTerm (older format) as 0', async () => {
    await writeFile(path.join(dir, 'state.json'), JSON.stringify({ nodeId: 'a', term: 7 }));
    expect((await loadState(dir, 'a')).state).toEqual({ term: 7, lastMasterTerm: 0 });
  });

  it('creates the directory when it does not exist yet', async () => {
    const nested = path.join(dir, 'x', 'y');
    const writer = new StateWriter(nested, 'a', (error) => {
      throw error;
    });
    writer.save({ term: 2, lastMasterTerm: 0 });
    expect((await loadState(nested, 'a')).state).toEqual({ term: 2, lastMasterTerm: 0 });
  });

  it('ignores, with a warning, a malformed file, a wrong shape, or another node id, and keeps a copy of each', async () => {
    const file = path.join(dir, 'state.json');
    for (const [content, warning] of [
      ['{not json', /is not JSON/],
      ['[1,2]', /unexpected shape/],
      [JSON.stringify({ term: 5 }), /no nodeId/],
      [JSON.stringify({ nodeId: 'b', term: 5 }), /belongs to node b/],
    ] as const) {
      await writeFile(file, content);
      const loaded = await loadState(dir, 'a');
      expect(loaded).toMatchObject({ state: null, frequencies: {}, warning: expect.stringMatching(warning) });
      expect(loaded.warning).toContain(loaded.keptCopy!);
      expect(await readFile(loaded.keptCopy!, 'utf8')).toBe(content);
      await rm(loaded.keptCopy!);
    }
  });

  it('reports a write error instead of throwing', async () => {
    await writeFile(path.join(dir, 'file'), 'x');
    const errors: Error[] = [];
    const writer = new StateWriter(path.join(dir, 'file', 'sub'), 'a', (error) => errors.push(error));
    writer.save({ term: 1, lastMasterTerm: 0 });
    expect(errors.length).toBe(1);
  });

  it('a node restarted with its state starts at its old term and elects above it', () => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'a', random: () => 0.5 }), 0, { term: 41, lastMasterTerm: 0 });
    expect(node.status().term).toBe(41);
    node.tick(10_000); // alone after the discovery window: a ring of one
    expect(node.status()).toMatchObject({ role: 'master', term: claimTerm('a', 42) });
    expect(node.persistentState()).toMatchObject({ term: claimTerm('a', 42) });
  });
});

describe('a restarted master never claims its old term again', () => {
  it('even when the election it wins runs at or below the term it was master in', () => {
    const oldTerm = claimTerm('a', 10);
    // Restarted with state: it had been master in oldTerm; the cluster moved on without it.
    const node = new ProtocolNode(nodeConfig({ nodeId: 'a', random: () => 0.5 }), 0, { term: oldTerm, lastMasterTerm: oldTerm });
    node.tick(10_000); // alone: a ring of one in term oldTerm + 1
    const status = node.status();
    expect(status.role).toBe('master');
    expect(status.term).toBeGreaterThan(oldTerm);
    expect(node.persistentState()).toEqual({ term: status.term, lastMasterTerm: status.term });
  });
});

describe('opening the state directory', () => {
  it('refuses a file in the way, a path through a file, and pseudo file systems (before any mkdir: /proc used to hang it)', async () => {
    const file = path.join(dir, 'file');
    await writeFile(file, 'x');
    for (const [stateDir, why] of [
      [file, /a file is in the way|not a directory/],
      [path.join(file, 'sub'), /a file is in the way/],
      ['/proc/x/y', /under \/proc/],
      ['/sys/kernel/berkeley', /under \/sys/],
      ['/dev/berkeley', /under \/dev/],
    ] as const) {
      let error: unknown = null;
      try {
        openStateDir(stateDir, 'a').release();
      } catch (thrown) {
        error = thrown;
      }
      expect(error, stateDir).toBeInstanceOf(StateDirError);
      expect((error as StateDirError).code).toBe('ESTATEDIR');
      expect((error as StateDirError).message).toMatch(why);
      expect((error as StateDirError).message).not.toContain('\n');
    }
  });

  it('locks the directory: a second opener is refused with the holder named; release frees it', () => {
    const first = openStateDir(dir, 'a');
    const holder = JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number; nodeId: string };
    expect(holder).toMatchObject({ pid: process.pid, nodeId: 'a' });
    expect(() => openStateDir(dir, 'b')).toThrow(new RegExp(`in use by another agent \\(pid ${process.pid}, node a, since `));
    first.release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    openStateDir(dir, 'b').release();
  });

  it('takes over a stale lock: its pid is gone, or is a process that is not an agent; garbage too', async () => {
    const exited = spawnSync(process.execPath, ['-e', '0']);
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      for (const content of [JSON.stringify({ pid: exited.pid, nodeId: 'old' }), JSON.stringify({ pid: sleeper.pid, nodeId: 'old' }), 'garbage']) {
        await writeFile(path.join(dir, LOCK_FILE), content);
        const lock = openStateDir(dir, 'a');
        expect(JSON.parse(readFileSync(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, nodeId: 'a' });
        lock.release();
      }
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('tells a reused pid from its agent by the start time; our own pid in a lock we do not hold is stale', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const startTicks = processStartTicks(sleeper.pid as number);
      expect(startTicks).not.toBeNull();
      // The pid runs, but it is not the process that wrote the lock (another start time): stale.
      await writeFile(path.join(dir, LOCK_FILE), JSON.stringify({ pid: sleeper.pid, startTicks: (startTicks as number) - 1, nodeId: 'old' }));
      openStateDir(dir, 'a').release();
      // The same process that wrote it: held, whatever its command line says.
      await writeFile(path.join(dir, LOCK_FILE), JSON.stringify({ pid: sleeper.pid, startTicks, nodeId: 'old' }));
      expect(() => openStateDir(dir, 'a')).toThrow(/in use by another agent \(pid \d+, node old/);
      // Left by a killed agent whose pid this process now has (pid 1 in a container): stale.
      await writeFile(path.join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, startTicks: 1, nodeId: 'old' }));
      const lock = openStateDir(dir, 'a');
      expect(JSON.parse(readFileSync(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, startTicks: processStartTicks('self'), nodeId: 'a' });
      lock.release();
    } finally {
      sleeper.kill('SIGKILL');
      rmSync(path.join(dir, LOCK_FILE), { force: true });
    }
  });

  it('the lock appears whole: never empty, no staging file left behind', () => {
    const lock = openStateDir(dir, 'a');
    expect(readFileSync(lock.file, 'utf8')).toMatch(/^\{"pid":\d+,"startTicks":\d+,"nodeId":"a","since":"[^"]+"\}\n$/);
    expect(readdirSync(dir).filter((name) => name.startsWith(LOCK_FILE))).toEqual([LOCK_FILE]);
    lock.release();
  });

  it('a state file it cannot read is moved aside (not replaced by the first save); a directory in its place too', async () => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'state-unreadable-'));
    try {
      mkdirSync(path.join(stateDir, 'state.json'));
      const loaded = await loadState(stateDir, 'a');
      expect(loaded.state).toBeNull();
      expect(loaded.warning).toMatch(/cannot read .*state\.json \(EISDIR\); ignoring it \(moved aside as .*state\.json\.bad-/);
      expect(existsSync(path.join(stateDir, 'state.json'))).toBe(false);
      expect(readdirSync(stateDir).some((name) => name.startsWith('state.json.bad-'))).toBe(true);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

describe('run with a bad state directory (real processes)', () => {
  const common = ['run', '--clock', 'virtual', '--port', '0', ...LOOPBACK_ONLY, '--http', 'none', '--poll-interval', '0.2'];

  it('a file, a path under /proc (which used to hang at 100% CPU) or /sys: one line, exit 2', async () => {
    const file = path.join(dir, 'file');
    await writeFile(file, 'x');
    for (const stateDir of [file, '/proc/x/y', '/sys/x']) {
      const result = await runCli([...common, '--state-dir', stateDir], { timeoutMs: 20_000 });
      expect(result.timedOut, describeResult(result)).toBe(false);
      expect(result.code, describeResult(result)).toBe(2);
      expect(result.stderr.trim().split('\n'), describeResult(result)).toHaveLength(1);
      expect(result.stderr).toMatch(/^berkeley-agent: --state-dir /);
    }
    expect(await readFile(file, 'utf8')).toBe('x');
  }, 60_000);

  it('an unwritable directory (a read-only bind mount): one line, exit 2', async (context) => {
    const unshare = spawnSync('unshare', ['-m', 'true']);
    if (process.getuid?.() !== 0 || unshare.status !== 0) {
      context.skip(`needs root and mount namespaces (unshare -m) to make a read-only directory root cannot write: ${unshare.stderr?.toString().trim() || 'not root'}`);
    }
    const readOnly = path.join(dir, 'ro');
    await mkdir(readOnly);
    const script = `mount --bind ${readOnly} ${readOnly} && mount -o remount,bind,ro ${readOnly} && exec "$@"`;
    const result = await runCli([...common, '--state-dir', readOnly], { prefix: ['unshare', '-m', 'sh', '-c', script, 'sh'], timeoutMs: 20_000 });
    expect(result.code, describeResult(result)).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/--state-dir .*: not writable \(EROFS\)/);
  }, 30_000);

  it('a second agent on the same state directory is refused naming the first; the first keeps its state', async () => {
    const first = spawnCli([...common, '--node-id', 'lock-a', '--state-dir', dir]);
    try {
      await waitFor('the first agent to start', 20_000, async () => (existsSync(path.join(dir, 'state.json')) ? true : undefined));
      const before = await readFile(path.join(dir, 'state.json'), 'utf8');
      const second = await runCli([...common, '--node-id', 'lock-b', '--state-dir', dir], { timeoutMs: 20_000 });
      expect(second.code, describeResult(second)).toBe(1);
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
      expect(second.stderr).toContain(`in use by another agent (pid ${first.pid}, node lock-a`);
      expect(JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8'))).toMatchObject({ nodeId: 'lock-a' });
      expect(JSON.parse(before)).toMatchObject({ nodeId: 'lock-a' });
    } finally {
      await stopChild(first);
    }
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  }, 40_000);
});
