// Every command, given bad values, ends with ONE line on stderr and a documented exit code, never a
// stack trace: run, config, keygen, status, waitsync, now, barrier (emulab-sync's 64 for usage), query,
// demo and install-service --dry-run. Also: a closed stdout is not an error, and a busy
// --dashboard-port is named as such (the demo has no --http).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, cleanEnv, describeResult, freePort, REPO_ROOT, runCli, stopAllChildren, type CliResult } from '../lab/processes.ts';

afterAll(stopAllChildren);

const STACK_FRAME = /^ {4}at /m;
/** Keeps a `run` that wrongly accepted a value harmless (the test then fails on the exit code). */
const HARMLESS = ['--no-mdns', '--bind', '127.0.0.1', '--port', '0', '--http', 'none'];

function expectOneLine(result: CliResult, code: number, message: RegExp): void {
  expect(result.timedOut, describeResult(result)).toBe(false);
  expect(result.code, describeResult(result)).toBe(code);
  expect(result.stderr, describeResult(result)).not.toMatch(STACK_FRAME);
  expect(result.stderr).not.toMatch(/internal error/);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^berkeley-agent: /);
  expect(lines[0]).toMatch(message);
}

interface SweepCase {
  args: string[];
  env?: Record<string, string>;
  code?: number;
  message: RegExp;
}

const cases: Record<string, SweepCase[]> = {
  run: [
    { args: ['--port', '0x1f', '--no-mdns', '--http', 'none'], message: /^berkeley-agent: --port: must be a plain decimal number/ },
    { args: ['--port', '', '--no-mdns', '--http', 'none'], message: /--port: must not be empty/ },
    { args: ['--poll-interval', '1e0', ...HARMLESS], message: /--poll-interval: must be a plain decimal number/ },
    { args: ['--max-peers', '-3', ...HARMLESS], message: /--max-peers: must be at least 1/ },
    { args: ['--never-master=maybe', ...HARMLESS], message: /--never-master: must be 1\/0, true\/false, yes\/no or on\/off/ },
    { args: HARMLESS, env: { BERKELEY_AGENT_FORCE: 'sure' }, message: /--force: .* \(got "sure" from BERKELEY_AGENT_FORCE\)$/ },
    { args: ['--no-mdns', '--port', '0', '--http', 'none'], env: { BERKELEY_AGENT_BIND: '' }, message: /--bind: must be an IPv4 address/ },
    { args: HARMLESS, env: { BERKELEY_AGENT_PRIORITY: '' }, message: /--priority: must not be empty.*\(got "" from BERKELEY_AGENT_PRIORITY\)$/ },
    { args: ['--http', '', '--no-mdns', '--port', '0'], message: /--http: must not be empty/ },
    { args: ['--key-file', '/nonexistent/keys', ...HARMLESS], message: /--key-file .*cannot read it/ },
    { args: ['--state-dir', '', ...HARMLESS], message: /--state-dir: must be a directory path/ },
    { args: ['--config', '/nonexistent.json', ...HARMLESS], message: /--config: cannot read/ },
    { args: ['--pol-interval', '2', ...HARMLESS], message: /Did you mean --poll-interval\?$/ },
    { args: ['--election', 'fast', ...HARMLESS], message: /--election: must be one of/ },
  ],
  config: [
    { args: ['config', '--port', 'abc'], message: /--port: must be a plain decimal number/ },
    { args: ['config', '--force=perhaps'], message: /--force: must be 1\/0/ },
    { args: ['config', '--json=2'], message: /--json: must be 1\/0/ },
    { args: ['config', '--jsno'], message: /Did you mean --json\?$/ },
  ],
  keygen: [
    { args: ['keygen', '--id', '0'], message: /^berkeley-agent: --id: must be at least 1 \(got "0" on the command line\)$/ },
    { args: ['keygen', '--id', 'abc'], message: /^berkeley-agent: --id: must be a plain decimal number \(got "abc" on the command line\)$/ },
    { args: ['keygen', '--id', '65536'], message: /--id: must be at most 65535/ },
    { args: ['keygen', '--id', ''], message: /--id: must not be empty/ },
    { args: ['keygen', 'extra'], message: /unknown option or argument: extra/ },
  ],
  status: [
    { args: ['status', '--http', 'nowhere'], message: /--http: must be HOST:PORT/ },
    { args: ['status', '--http', ''], message: /--http: must not be empty/ },
    { args: ['status', '--http', 'none'], message: /--http: 'none' leaves nothing to ask/ },
    { args: ['status', '--json=maybe'], message: /--json: must be 1\/0/ },
    { args: ['status', '--verdcit'], message: /Did you mean --verdict\?$/ },
  ],
  waitsync: [
    { args: ['waitsync', '--timeout', 'soon'], message: /--timeout: must be a plain decimal number/ },
    { args: ['waitsync', '--timeout', '-1'], message: /--timeout: must be at least 0/ },
    { args: ['waitsync', '--max-error', '0'], message: /--max-error: must be greater than 0/ },
    { args: ['waitsync', '--interval', '0x10'], message: /--interval: must be a plain decimal number/ },
    { args: ['waitsync', '--http', 'none'], message: /--http: 'none'/ },
  ],
  now: [
    { args: ['now', '--http', 'nowhere'], message: /--http: must be HOST:PORT/ },
    { args: ['now', '--http', 'none'], message: /--http: 'none' leaves nothing to ask/ },
    { args: ['now', '--json=maybe'], message: /--json: must be 1\/0/ },
    { args: ['now', 'extra'], message: /unknown option or argument: extra/ },
  ],
  barrier: [
    { args: ['barrier', 'start', '--count', 'x'], code: 64, message: /--count: must be a plain decimal number/ },
    { args: ['barrier', 'start', '--timeout', ''], code: 64, message: /--timeout: must not be empty/ },
    { args: ['barrier', 'bad name'], code: 64, message: /NAME "bad name"/ },
    { args: ['barrier', 'start', '--wait=maybe'], code: 64, message: /--wait: must be 1\/0/ },
    { args: ['barrier'], code: 64, message: /missing argument: NAME/ },
  ],
  at: [
    { args: ['at', 'soon'], message: /TIME "soon" is not an ISO 8601 instant/ },
    { args: ['at', '+1', '--http', 'nowhere'], message: /--http: must be HOST:PORT/ },
    { args: ['at', '+1', '--json=maybe'], message: /--json: must be 1\/0/ },
    { args: ['at'], message: /missing argument: TIME/ },
  ],
  query: [
    { args: ['query', '127.0.0.1:0x10'], message: /HOST:PORT: must be HOST:PORT/ },
    { args: ['query', '127.0.0.1:9', '--samples', '1e2'], message: /--samples: must be a plain decimal number/ },
    { args: ['query', '127.0.0.1:9', '--timeout', ''], message: /--timeout: must not be empty/ },
    { args: ['query', '127.0.0.1:9', '--key-file', '/nonexistent/keys'], message: /--key-file .*cannot read it/ },
  ],
  demo: [
    { args: ['demo', '--nodes', 'many'], message: /--nodes: must be a plain decimal number/ },
    { args: ['demo', '--duration', ''], message: /--duration: must not be empty/ },
    { args: ['demo', '--failover=sometimes'], message: /--failover: must be 1\/0/ },
    { args: ['demo', '--dashboard-port', '0x50'], message: /--dashboard-port: must be a plain decimal number/ },
  ],
  'install-service': [
    { args: ['install-service', '--dry-run', '--interface', 'bad name!'], message: /--interface: must be a network interface name/ },
    { args: ['install-service', '--dry-run=maybe'], message: /--dry-run: must be 1\/0/ },
    { args: ['install-service', '--dry-run', '--unit-dri', '/tmp'], message: /Did you mean --unit-dir\?$/ },
  ],
};

describe.concurrent('every command, bad values: one line, a documented exit code, no stack trace', () => {
  for (const [command, list] of Object.entries(cases)) {
    for (const testCase of list) {
      const name = `${command}: ${testCase.args.filter((arg) => arg !== command).join(' ')}${testCase.env ? ` with ${JSON.stringify(testCase.env)}` : ''}`;
      it(name, async () => {
        const result = await runCli(testCase.args, testCase.env ? { env: testCase.env } : {});
        expectOneLine(result, testCase.code ?? 2, testCase.message);
        expect(result.stdout).toBe('');
      });
    }
  }

  it('the sweep covers every command in --help', async () => {
    const help = await runCli(['--help']);
    const listed = [...help.stdout.matchAll(/^ {2}berkeley-agent (\S+)/gm)].map((match) => match[1]);
    expect(listed.length).toBeGreaterThan(5);
    for (const command of listed) expect(Object.keys(cases), `${command} is not swept`).toContain(command);
  });
});

describe('runtime failures: one line too', () => {
  it('demo --dashboard-port on a busy port names --dashboard-port (not --http) and exits 1', async () => {
    const busy = net.createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', () => resolve()));
    try {
      const result = await runCli(['demo', '--nodes', '2', '--duration', '5', '--no-failover', '--dashboard-port', String(port)], { timeoutMs: 30_000 });
      expectOneLine(result, 1, new RegExp(`^berkeley-agent: --dashboard-port: cannot serve demo-1's dashboard on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(choose another --dashboard-port, or 0 for any free ports\\)$`));
      expect(result.stderr).not.toMatch(/--http/);
    } finally {
      busy.close();
    }
  });

  it('query without --key-file says the agent may require a key', async () => {
    const port = await freePort();
    const result = await runCli(['query', `127.0.0.1:${port}`, '--samples', '1', '--timeout', '0.2']);
    expectOneLine(result, 1, /no answer to 1 queries .*answers only queries signed with it: give --key-file/);
  });

  it('a closed stdout (berkeley-agent config | head -1) is not an error: exit 0, nothing on stderr', async () => {
    const child = spawn(process.execPath, [BIN, 'config'], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    // The reader is gone before the command writes anything.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
