// sd_notify: the agent tells systemd it is ready through $NOTIFY_SOCKET (a Unix datagram socket;
// Node has none, so the receiving end here is a small python3 listener). Checked for a path and
// an abstract name, directly and through a real agent process started the way systemd starts it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { sdNotify, sockaddrUn } from '../src/daemon/notify.ts';

const BIN = fileURLToPath(new URL('../bin/berkeley-agent', import.meta.url));
const LISTENER = String.raw`
import socket, sys
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(('\0' + name[1:]) if name.startswith('@') else name)
print('ready', flush=True)
s.settimeout(30)
while True:
    data = s.recv(4096)
    print(repr(data.decode()), flush=True)
`;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A python3 listener on `name`; resolves once bound, collects every datagram. */
async function listen(name: string): Promise<{ messages: string[]; child: ChildProcess }> {
  const child = spawn('python3', ['-c', LISTENER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => child.kill('SIGKILL'));
  const messages: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') resolve();
        else messages.push(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
  });
  return { messages, child };
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe.runIf(process.platform === 'linux')('sd_notify', () => {
  it('builds sockaddr_un for paths and abstract names, and refuses names that do not fit', () => {
    const byPath = sockaddrUn('/run/systemd/notify');
    if ('error' in byPath) throw new Error(byPath.error);
    expect(byPath.address.readUInt16LE(0)).toBe(1);
    expect(byPath.address.subarray(2, 2 + 19).toString()).toBe('/run/systemd/notify');
    const abstract = sockaddrUn('@name');
    if ('error' in abstract) throw new Error(abstract.error);
    expect(abstract.address[2]).toBe(0);
    expect(abstract.length).toBe(2 + 1 + 4);
    expect(sockaddrUn(`/${'x'.repeat(200)}`)).toMatchObject({ error: expect.stringMatching(/too long/) });
  });

  it('without NOTIFY_SOCKET does nothing; a bad one is reported, not thrown', () => {
    expect(sdNotify('READY=1', {})).toBeNull();
    expect(sdNotify('READY=1', { NOTIFY_SOCKET: 'relative/path' })).toMatch(/neither a path nor an abstract name/);
    const directory = mkdtempSync(path.join(tmpdir(), 'berkeley-notify-'));
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    expect(sdNotify('READY=1', { NOTIFY_SOCKET: path.join(directory, 'nobody-listens') })).toMatch(/sendto .* failed/);
  });

  it.each(['path', 'abstract'])('delivers the message to a %s socket', async (kind) => {
    const directory = mkdtempSync(path.join(tmpdir(), 'berkeley-notify-'));
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    const name = kind === 'path' ? path.join(directory, 'notify') : `@berkeley-notify-test-${process.pid}`;
    const { messages } = await listen(name);
    expect(sdNotify('READY=1\nSTATUS=testing', { NOTIFY_SOCKET: name })).toBeNull();
    await until(() => messages.length > 0, 10_000);
    expect(messages).toEqual([`'READY=1\\nSTATUS=testing'`]);
  });

  it('a real agent started with NOTIFY_SOCKET says READY=1 once listening, and STOPPING=1 on SIGTERM', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'berkeley-notify-'));
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    const name = path.join(directory, 'notify');
    const { messages } = await listen(name);
    const env = { ...process.env, NOTIFY_SOCKET: name, BERKELEY_AGENT_CLOCK: 'virtual' };
    const agent = spawn(process.execPath, [BIN, '--no-mdns', '--bind', '127.0.0.1', '--port', '0', '--http', 'none', '--clock', 'virtual', '--log-level', 'warn'], { env, stdio: 'ignore' });
    cleanups.push(() => agent.kill('SIGKILL'));
    await until(() => messages.length > 0, 20_000);
    expect(messages[0]).toMatch(/^'READY=1\\nSTATUS=listening on UDP 127\.0\.0\.1:\d+, virtual clock\\nMAINPID=\d+'$/);
    expect(messages[0]).toContain(`MAINPID=${agent.pid}`);
    agent.kill('SIGTERM');
    await until(() => messages.length > 1, 10_000);
    expect(messages[1]).toBe(`'STOPPING=1'`);
    const code = await new Promise<number | null>((resolve) => (agent.exitCode !== null ? resolve(agent.exitCode) : agent.once('exit', (exitCode) => resolve(exitCode))));
    expect(code).toBe(0);
  }, 40_000);
});
