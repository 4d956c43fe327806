// Frame authentication (--key-file): the HMAC trailer, the key file, and agents on loopback: a node
// with the wrong key (or none), even with the highest priority, cannot become master or move
// anyone's clock; keys can be rotated; `query` needs the key.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_TRAILER_BYTES, FrameAuth } from '../src/wire/auth.ts';
import { generateKeyLine, keyFilePath, KeyFileError, loadKeyFile, parseKeys } from '../src/daemon/keys.ts';
import { describeResult, freePort, getStatus, LOOPBACK_ONLY, runCli, spawnCli, stopAllChildren, waitFor } from '../lab/processes.ts';

const secret = (byte: number) => Buffer.alloc(32, byte);

describe('FrameAuth', () => {
  const frame = Buffer.from('a msgpack frame would be here');

  it('seals with the first key and opens with any key it holds (rotation)', () => {
    const old = new FrameAuth([{ id: 1, secret: secret(1) }, { id: 2, secret: secret(2) }]);
    const rotated = new FrameAuth([{ id: 2, secret: secret(2) }, { id: 1, secret: secret(1) }]);
    const sealed = old.seal(frame);
    expect(sealed.length).toBe(frame.length + AUTH_TRAILER_BYTES);
    expect(rotated.open(sealed)).toMatchObject({ ok: true, keyId: 1 });
    expect(Buffer.from((rotated.open(sealed) as { frame: Uint8Array }).frame)).toEqual(frame);
    expect(old.open(rotated.seal(frame))).toMatchObject({ ok: true, keyId: 2 });
  });

  it('rejects, by reason: no trailer, an unknown key id, and any changed byte', () => {
    const auth = new FrameAuth([{ id: 7, secret: secret(7) }]);
    expect(auth.open(frame)).toMatchObject({ ok: false, reason: 'unauthenticated' });
    expect(auth.open(Buffer.alloc(5))).toMatchObject({ ok: false, reason: 'unauthenticated' });
    expect(auth.open(new FrameAuth([{ id: 8, secret: secret(7) }]).seal(frame))).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(auth.open(new FrameAuth([{ id: 7, secret: secret(9) }]).seal(frame))).toMatchObject({ ok: false, reason: 'bad-mac' });
    const sealed = auth.seal(frame);
    for (let index = 0; index < sealed.length; index += 1) {
      const changed = Buffer.from(sealed);
      changed[index] = (changed[index] as number) ^ 0x01;
      expect(auth.open(changed).ok, `byte ${index}`).toBe(false);
    }
  });
});

describe('key file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'keys-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses hex and base64 secrets, comments and blank lines; the first key sends', () => {
    const keys = parseKeys(`# cluster keys\n\n3 hex:${'ab'.repeat(16)}  # new\n1 base64:${secret(5).toString('base64')}\n`, 'k');
    expect(keys.map((key) => key.id)).toEqual([3, 1]);
    expect(keys[0]!.secret).toEqual(Buffer.alloc(16, 0xab));
    expect(keys[1]!.secret).toEqual(secret(5));
    expect(parseKeys(generateKeyLine(42), 'k')[0]!.secret).toHaveLength(32);
  });

  it('names the file, the line and the problem', () => {
    const cases: [string, RegExp][] = [
      ['', /k: no keys \(make one with: berkeley-agent keygen > k\)/],
      ['1', /k line 1: expected "ID SECRET"/],
      [`0 hex:${'00'.repeat(16)}`, /line 1: key id must be 1\.\.65535/],
      [`1 hex:${'00'.repeat(16)}\n1 hex:${'11'.repeat(16)}`, /line 2: key id 1 is listed twice/],
      ['1 hex:abcd', /line 1: the secret has 2 bytes; at least 16/],
      ['1 hex:xyz', /line 1: the secret must be hex:HEX or base64:BASE64/],
      ['1 base64:***', /line 1: the secret is not valid base64/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseKeys(text, 'k')).toThrow(KeyFileError);
      expect(() => parseKeys(text, 'k')).toThrow(message);
    }
  });

  it('warns when others can read it; finds systemd credentials', () => {
    const file = path.join(dir, 'keys');
    writeFileSync(file, `${generateKeyLine(1)}\n`);
    chmodSync(file, 0o644);
    expect(loadKeyFile(file).warnings.join()).toMatch(/readable by others \(mode 644\).*chmod 600/);
    chmodSync(file, 0o600);
    expect(loadKeyFile(file).warnings).toEqual([]);
    expect(() => loadKeyFile(path.join(dir, 'missing'))).toThrow(/--key-file .*missing: cannot read it \(ENOENT\)/);
    expect(keyFilePath(null, { CREDENTIALS_DIRECTORY: dir })).toBe(file);
    expect(keyFilePath(null, { CREDENTIALS_DIRECTORY: path.join(dir, 'none') })).toBeNull();
    expect(keyFilePath('/given', { CREDENTIALS_DIRECTORY: dir })).toBe('/given');
  });
});

describe('agents with keys (loopback)', () => {
  let dir: string;
  const agents: { nodeId: string; udpPort: number; httpPort: number }[] = [];

  afterAll(async () => {
    await stopAllChildren();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'auth-'));
    const clusterKeys = path.join(dir, 'cluster.keys');
    const wrongKeys = path.join(dir, 'wrong.keys');
    // Rotation in progress: two members send with key 1, one already with key 2; all accept both.
    writeFileSync(clusterKeys, `1 hex:${'11'.repeat(32)}\n2 hex:${'22'.repeat(32)}\n`, { mode: 0o600 });
    writeFileSync(path.join(dir, 'rotated.keys'), `2 hex:${'22'.repeat(32)}\n1 hex:${'11'.repeat(32)}\n`, { mode: 0o600 });
    writeFileSync(wrongKeys, `1 hex:${'99'.repeat(32)}\n`, { mode: 0o600 });
    const ports = await Promise.all(Array.from({ length: 10 }, () => freePort()));
    const peers = ports.slice(0, 5).flatMap((port) => ['--peer', `127.0.0.1:${port}`]);
    const plan: [string, string[]][] = [
      ['good-1', ['--key-file', clusterKeys]],
      ['good-2', ['--key-file', clusterKeys]],
      ['good-3', ['--key-file', path.join(dir, 'rotated.keys')]],
      // The intruders have the highest keys: without authentication one of them would be master.
      ['zz-wrong-key', ['--key-file', wrongKeys, '--priority', '1000']],
      ['zz-no-key', ['--priority', '999']],
    ];
    plan.forEach(([nodeId, extra], index) => {
      const udpPort = ports[index]!;
      const httpPort = ports[index + 5]!;
      // The highest key wins only among agents that start together: a window of 3 s covers five
      // Node processes starting on a loaded 2-core machine (with 0.5 s, a late good-3 adopted good-2).
      spawnCli(['--node-id', nodeId, ...LOOPBACK_ONLY, '--port', String(udpPort), '--http', `127.0.0.1:${httpPort}`, '--discovery-window', '3', '--poll-interval', '0.5', '--virtual-offset', String(index * 0.3), '--log-level', 'warn', ...extra, ...peers]);
      agents.push({ nodeId, udpPort, httpPort });
    });
  }, 30_000);

  it('the members agree on good-3 (highest key among them); the intruders are neither master nor peers, and their frames are counted as rejected', async () => {
    const members = agents.slice(0, 3);
    let seen = '';
    const reports = await waitFor(
      'good-3 master of the keyed members, all synchronized',
      45_000,
      async () => {
        const all = await Promise.all(members.map((agent) => getStatus(agent.httpPort)));
        seen = JSON.stringify(all.map((status) => status && { id: status.nodeId, master: status.masterId, synced: status.clock.synchronized, peers: status.peers.map((peer) => peer.nodeId) }));
        return all.every((status) => status?.masterId === 'good-3' && status.clock.synchronized && status.peers.length === 2) ? all : undefined;
      },
      () => seen,
    );
    // Until every member has dropped frames of both intruders (they greet their --peer list every second).
    const later = await waitFor('both intruders rejected by every member', 20_000, async () => {
      const all = await Promise.all(members.map((agent) => getStatus(agent.httpPort)));
      return all.every((status) => (status?.counters.framesRejectedByReason['bad-mac'] ?? 0) > 2 && (status?.counters.framesRejectedByReason.unauthenticated ?? 0) > 2) ? all : undefined;
    });
    for (const status of later) {
      expect(status!.masterId).toBe('good-3');
      expect(status!.peers.map((peer) => peer.nodeId).sort()).toEqual(members.map((agent) => agent.nodeId).filter((id) => id !== status!.nodeId).sort());
      expect(status!.tracking.referenceId).toBe('good-3');
      expect(status!.auth).toMatchObject({ enabled: true });
    }
    expect(later[2]!.auth.sendKeyId).toBe(2);
    expect(reports[0]!.auth.sendKeyId).toBe(1);
    // The clocks agree among the members, whatever the intruders' clocks say.
    const offsets = later.map((status) => status!.clock.hostOffsetNs);
    expect(Math.max(...offsets) - Math.min(...offsets)).toBeLessThan(1e6);
    // Each intruder is alone: it hears nobody (everything it gets fails its check or has no tag).
    const intruder = await getStatus(agents[3]!.httpPort);
    expect(intruder!.peers.filter((peer) => peer.lastHeardAgoMs !== null).map((peer) => peer.nodeId)).toEqual([]);
    expect(intruder!.lastRound?.answered ?? 0).toBe(0);
  }, 90_000);

  it('query needs the key of an agent that authenticates', async () => {
    const target = `127.0.0.1:${agents[0]!.udpPort}`;
    const without = await runCli(['query', target, '--timeout', '0.5', '--samples', '2']);
    expect(without.code, describeResult(without)).toBe(1);
    const withKey = await runCli(['query', target, '--timeout', '0.5', '--samples', '2', '--key-file', path.join(dir, 'cluster.keys')]);
    expect(withKey.code, describeResult(withKey)).toBe(0);
    expect(withKey.stdout).toMatch(/good-1 at 127\.0\.0\.1/);
  });

  it('a missing or bad key file stops the agent with exit 2 naming --key-file', async () => {
    const missing = await runCli(['--key-file', path.join(dir, 'nope'), ...LOOPBACK_ONLY, '--port', '0', '--http', 'none']);
    expect(missing.code, describeResult(missing)).toBe(2);
    expect(missing.stderr).toMatch(/^berkeley-agent: --key-file .*nope: cannot read it \(ENOENT\)/);
    const short = path.join(dir, 'short.keys');
    writeFileSync(short, '1 hex:abcd\n', { mode: 0o600 });
    const bad = await runCli(['--key-file', short, ...LOOPBACK_ONLY, '--port', '0', '--http', 'none']);
    expect(bad.code, describeResult(bad)).toBe(2);
    expect(bad.stderr).toMatch(/line 1: the secret has 2 bytes/);
  });

  it('keygen prints a key line the agent accepts', async () => {
    const result = await runCli(['keygen', '--id', '7']);
    expect(result.code, describeResult(result)).toBe(0);
    expect(result.stdout).toMatch(/^7 hex:[0-9a-f]{64}\n$/);
    expect(parseKeys(result.stdout, 'generated')[0]!.id).toBe(7);
  });
});
