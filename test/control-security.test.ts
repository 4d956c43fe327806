// The control server refuses what a web page could send it: POST /barrier (which releases an
// experiment's barriers and sets exit codes) from another origin, with a CORS "simple" content type
// (text/plain, a form), or with a foreign Host header (DNS rebinding); reads of a loopback server
// under a foreign Host. What the `barrier` command sends is still accepted. Raw node:http requests
// (fetch does not let a caller set Host).
import http from 'node:http';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../src/daemon/http.ts';
import type { BarrierRequest } from '../src/daemon/agent.ts';
import type { StatusReport } from '../src/daemon/status.ts';

const barrierCalls: BarrierRequest[] = [];

function server(host: string): ControlServer {
  return new ControlServer({
    host,
    port: 0,
    status: () => ({ nodeId: 'x' }) as unknown as StatusReport,
    barrier: (request) => {
      barrierCalls.push(request);
      return { result: Promise.resolve({ result: 'released', name: request.name, exitCode: 0, waitedMs: 0 }), cancel: () => {} };
    },
  });
}

interface Answer {
  status: number;
  body: string;
}

function send(port: number, options: { method?: string; path?: string; headers?: Record<string, string>; body?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method: options.method ?? 'POST', path: options.path ?? '/barrier', headers: options.headers ?? {}, setHost: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

const BODY = JSON.stringify({ name: 'start', count: null, errorCode: 0, wait: true, timeoutMs: null });

describe('control server on loopback', () => {
  const control = server('127.0.0.1');
  let port = 0;
  beforeAll(async () => {
    port = await control.start();
  });
  afterAll(() => control.stop());

  const post = (headers: Record<string, string>) => send(port, { headers: { 'content-length': String(Buffer.byteLength(BODY)), ...headers }, body: BODY });

  it('accepts what the barrier command sends, and same-origin requests under its own names', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`]) {
      const before = barrierCalls.length;
      const answer = await post({ host, 'content-type': 'application/json' });
      expect(answer.status, `${host}: ${answer.body}`).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ result: 'released', name: 'start' });
      expect(barrierCalls.length).toBe(before + 1);
    }
    const sameOrigin = await post({ host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, 'content-type': 'application/json; charset=utf-8', 'sec-fetch-site': 'same-origin' });
    expect(sameOrigin.status, sameOrigin.body).toBe(200);
  });

  it('refuses cross-origin, cross-site, simple content types and foreign hosts, without touching a barrier', async () => {
    const own = `127.0.0.1:${port}`;
    const cases: [string, Record<string, string>, number, RegExp][] = [
      ['a page of another site', { host: own, origin: 'http://evil.example', 'content-type': 'application/json' }, 403, /cross-origin/],
      ['a sandboxed page (Origin null)', { host: own, origin: 'null', 'content-type': 'application/json' }, 403, /cross-origin/],
      ['another port on this host', { host: own, origin: `http://127.0.0.1:${port + 1}`, 'content-type': 'application/json' }, 403, /cross-origin/],
      ['a cross-site fetch (Sec-Fetch-Site)', { host: own, 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' }, 403, /cross-site/],
      ['a same-site but other-origin fetch', { host: own, 'sec-fetch-site': 'same-site', 'content-type': 'application/json' }, 403, /cross-site/],
      ['text/plain (a CORS simple request)', { host: own, 'content-type': 'text/plain' }, 415, /Content-Type: application\/json/],
      ['a form post', { host: own, 'content-type': 'application/x-www-form-urlencoded' }, 415, /Content-Type/],
      ['a multipart form', { host: own, 'content-type': 'multipart/form-data; boundary=x' }, 415, /Content-Type/],
      ['no content type', { host: own }, 415, /Content-Type/],
      ['DNS rebinding (a foreign Host)', { host: `evil.example:${port}`, 'content-type': 'application/json' }, 403, /Host "evil.example/],
      ['a foreign Host without a port', { host: 'evil.example', 'content-type': 'application/json' }, 403, /Host/],
      ['our address on another port', { host: `127.0.0.1:${port + 1}`, 'content-type': 'application/json' }, 403, /Host/],
      ['a Host with a path', { host: `127.0.0.1:${port}/x`, 'content-type': 'application/json' }, 403, /Host/],
    ];
    for (const [what, headers, status, error] of cases) {
      const before = barrierCalls.length;
      const answer = await post(headers);
      expect(answer.status, `${what}: ${answer.body}`).toBe(status);
      expect((JSON.parse(answer.body) as { error: string }).error, what).toMatch(error);
      expect(barrierCalls.length, `${what}: no barrier was touched`).toBe(before);
    }
    // No Host header at all: Node's HTTP/1.1 parser answers 400 before our handler runs.
    const before = barrierCalls.length;
    expect((await post({ 'content-type': 'application/json' })).status).toBe(400);
    expect(barrierCalls.length).toBe(before);
  });

  it('reads under a foreign Host (DNS rebinding) are refused too; its own names still read', async () => {
    expect((await send(port, { method: 'GET', path: '/status', headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect((await send(port, { method: 'GET', path: '/status', headers: { host: `127.0.0.1:${port}`, origin: 'http://evil.example' } })).status).toBe(403);
    const own = await send(port, { method: 'GET', path: '/status', headers: { host: `localhost:${port}` } });
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body)).toEqual({ nodeId: 'x' });
    // Methods a route does not take are still 405 (not hidden behind the write checks).
    expect((await send(port, { method: 'POST', path: '/status', headers: { host: `127.0.0.1:${port}` } })).status).toBe(405);
  });
});

describe('control server opened to the network (--http 0.0.0.0:PORT)', () => {
  const control = server('0.0.0.0');
  let port = 0;
  beforeAll(async () => {
    port = await control.start();
  });
  afterAll(() => control.stop());

  it('reads under any name (the operator opened it), writes only under this host\'s own names', async () => {
    expect((await send(port, { method: 'GET', path: '/status', headers: { host: `labbox.example:${port}` } })).status).toBe(200);
    const foreign = await send(port, { headers: { host: `labbox.example:${port}`, 'content-type': 'application/json' }, body: BODY });
    expect(foreign.status).toBe(403);
    const address = Object.values(networkInterfaces())
      .flat()
      .find((entry) => entry?.family === 'IPv4')!.address;
    const own = await send(port, { headers: { host: `${address}:${port}`, 'content-type': 'application/json' }, body: BODY });
    expect(own.status, own.body).toBe(200);
  });
});
