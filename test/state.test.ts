// --state-dir: the term survives a restart, so a restarted node never goes back to an older term;
// the learned frequency survives too (the drift file).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadState, StateWriter } from '../src/daemon/state.ts';
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

  it('a bad frequency entry is dropped without losing the term', async () => {
    for (const frequencyPpm of [{ system: 1e9 }, { virtual: 'fast' }, 'fast', 12]) {
      await writeFile(path.join(dir, 'state.json'), JSON.stringify({ nodeId: 'a', term: 7, frequencyPpm }));
      expect(await loadState(dir, 'a')).toEqual({ state: { term: 7, lastMasterTerm: 0 }, frequencies: {}, warning: null });
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

  it('ignores, with a warning, a malformed file, a wrong shape, or another node id', async () => {
    const file = path.join(dir, 'state.json');
    await writeFile(file, '{not json');
    expect(await loadState(dir, 'a')).toMatchObject({ state: null, warning: expect.stringMatching(/not JSON/) });
    await writeFile(file, JSON.stringify({ nodeId: 'a', term: -1 }));
    expect(await loadState(dir, 'a')).toMatchObject({ state: null, warning: expect.stringMatching(/unexpected shape/) });
    await writeFile(file, JSON.stringify({ nodeId: 'b', term: 5 }));
    expect(await loadState(dir, 'a')).toMatchObject({ state: null, warning: expect.stringMatching(/belongs to node b/) });
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
