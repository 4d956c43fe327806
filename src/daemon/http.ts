// Control server: loopback HTTP by default. GET /status returns the status report as JSON,
// GET /time the agent's clock read at the request (time-report.ts),
// GET /metrics the Prometheus metrics (text format 0.0.4), GET / the dashboard (a page and its
// assets, all served from here: no CDN), GET /api/cluster the dashboard's data.
import http from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import type { MetricsPayload } from './metrics.ts';
import type { StatusReport } from './status.ts';
import type { TimeReport } from './time-report.ts';
import type { DashboardReport } from './dashboard.ts';
import { dashboardAssets, type Asset } from './dashboard-assets.ts';
import { z } from 'zod';
import type { BarrierRequest, BarrierResult } from './agent.ts';
import { BARRIER_ERROR_CODE_MAX, BARRIER_NAME_BYTES_MAX, BARRIER_TIMEOUT_MS_MAX, BARRIER_WAITERS_MAX, CONTROL_BODY_BYTES_MAX, CONTROL_CONNECTIONS_MAX } from '../core/limits.ts';

export interface ControlServerOptions {
  host: string;
  /** 0 picks any free port. */
  port: number;
  status(): StatusReport;
  /** GET /time: the agent's clock read now (time-report.ts); without it /time is 404. */
  time?: () => TimeReport;
  /** Prometheus exposition for GET /metrics; without it /metrics is 404. */
  metrics?: () => Promise<MetricsPayload>;
  /** Data for the dashboard (GET /api/cluster?since=MS); without it there is no dashboard. */
  cluster?: (sinceMs: number | null) => DashboardReport;
  /** POST /barrier: a participant that blocks until released (the `barrier` command). */
  barrier?: (request: BarrierRequest) => { result: Promise<BarrierResult>; cancel: () => void };
}

const barrierRequestSchema = z
  .object({
    name: z.string().min(1).max(BARRIER_NAME_BYTES_MAX),
    count: z.number().int().min(0).max(BARRIER_WAITERS_MAX).nullable(),
    errorCode: z.number().int().min(0).max(BARRIER_ERROR_CODE_MAX),
    wait: z.boolean(),
    timeoutMs: z.number().int().min(1).max(BARRIER_TIMEOUT_MS_MAX).nullable(),
    // Issue 19: ask for a release instant (optional, so older clients' requests stay valid).
    synchronized: z.boolean().optional(),
  })
  .strict();

// The page loads only its own assets and talks only to this server.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export class ControlServer {
  private readonly server: http.Server;
  private readonly assets: Map<string, Asset> | null;

  constructor(private readonly options: ControlServerOptions) {
    this.assets = options.cluster ? dashboardAssets() : null;
    this.server = http.createServer((request, response) => this.handle(request, response));
    // A control client that stalls must not hold sockets open forever.
    this.server.requestTimeout = 5000;
    this.server.headersTimeout = 5000;
    // Each local barrier waiter holds a connection until it is released.
    this.server.maxConnections = CONTROL_CONNECTIONS_MAX;
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const refused = this.refusal(request);
    if (refused !== null) {
      response.writeHead(refused.status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify({ error: refused.error })}\n`);
      request.resume();
      return;
    }
    const [path = '/', query = ''] = (request.url ?? '/').split('?', 2);
    if (path === '/barrier' && this.options.barrier) {
      if (request.method !== 'POST') {
        response.writeHead(405, { allow: 'POST', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      const type = (request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
      if (type !== 'application/json') {
        response.writeHead(415, { 'content-type': 'application/json' }).end(`${JSON.stringify({ error: `POST /barrier needs Content-Type: application/json (got ${JSON.stringify(type)})` })}\n`);
        request.resume();
        return;
      }
      this.handleBarrier(request, response, this.options.barrier);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/status') {
      const body = JSON.stringify(this.options.status());
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(request.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/time' && this.options.time) {
      // Read as late as possible: right before the answer is written.
      const body = JSON.stringify(this.options.time());
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(request.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/metrics' && this.options.metrics) {
      const head = request.method === 'HEAD';
      this.options.metrics().then(
        (payload) => {
          if (!response.destroyed) response.writeHead(200, { 'content-type': payload.contentType, 'cache-control': 'no-store' }).end(head ? undefined : payload.body);
        },
        (error: unknown) => {
          if (!response.destroyed) response.writeHead(500, { 'content-type': 'text/plain' }).end(head ? undefined : `metrics failed: ${(error as Error).message}\n`);
        },
      );
      return;
    }
    const head = request.method === 'HEAD';
    const asset = this.assets?.get(path);
    if (asset !== undefined) {
      response.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.contentType, 'cache-control': asset.cacheControl }).end(head ? undefined : asset.body);
      return;
    }
    if (path === '/api/cluster' && this.options.cluster) {
      const since = new URLSearchParams(query).get('since');
      const sinceMs = since === null || since === '' ? null : Number(since);
      if (sinceMs !== null && !Number.isFinite(sinceMs)) {
        response.writeHead(400, { 'content-type': 'text/plain' }).end(`since: expected a number of ms, got ${JSON.stringify(String(since).slice(0, 40))}\n`);
        return;
      }
      const body = JSON.stringify(this.options.cluster(sinceMs));
      response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(head ? undefined : body);
      return;
    }
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end(head ? undefined : 'berkeley-agent control server: GET /status, GET /time, GET /metrics\n');
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  /** Reads the JSON body (bounded), starts the participant, answers when it is settled. */
  private handleBarrier(request: http.IncomingMessage, response: http.ServerResponse, barrier: NonNullable<ControlServerOptions['barrier']>): void {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const fail = (status: number, error: string) => {
      if (!response.headersSent) response.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify({ error })}\n`);
    };
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > CONTROL_BODY_BYTES_MAX) {
        fail(413, `request body over ${CONTROL_BODY_BYTES_MAX} bytes`);
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      if (response.headersSent) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return fail(400, 'the body is not JSON');
      }
      const parsed = barrierRequestSchema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return fail(400, issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid request');
      }
      const started = barrier(parsed.data);
      let answered = false;
      // The client went away (killed, timed out on its side): the participant leaves the barrier.
      response.on('close', () => {
        if (!answered) started.cancel();
      });
      void started.result.then((result) => {
        answered = true;
        if (!response.destroyed) response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(result)}\n`);
      });
    });
  }

  /**
   * Requests a web page could make or forge are refused (see README "Control server security"):
   * - a foreign Host header (DNS rebinding: a page of evil.example whose name now resolves to
   *   127.0.0.1): always for writes, and for reads when the server listens on loopback only;
   * - a foreign Origin (a page of another site posting here), or a browser's Sec-Fetch-Site
   *   saying the request is cross-site;
   * - a write whose body is not Content-Type: application/json (text/plain, form types are what
   *   a page may send without a CORS preflight; application/json needs one, which we never allow).
   */
  private refusal(request: http.IncomingMessage): { status: number; error: string } | null {
    const write = request.method !== 'GET' && request.method !== 'HEAD';
    const host = request.headers.host;
    const hostAllowed = host !== undefined && this.allowedHost(host);
    if (!hostAllowed && (write || this.loopbackOnly)) return { status: 403, error: `Host ${JSON.stringify(host ?? '')} is not this control server's (use 127.0.0.1:${this.boundPort} or localhost:${this.boundPort})` };
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `http://${host ?? ''}`) return { status: 403, error: `cross-origin request refused (Origin ${JSON.stringify(origin.slice(0, 100))})` };
    const fetchSite = request.headers['sec-fetch-site'];
    if (write && fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') return { status: 403, error: `cross-site request refused (Sec-Fetch-Site: ${String(fetchSite).slice(0, 20)})` };
    return null;
  }

  private boundPort = 0;
  private boundAddress = '';

  /** Whether the server only listens on a loopback address. */
  private get loopbackOnly(): boolean {
    return isLoopback(this.boundAddress);
  }

  /** This server's own names: loopback names, the address it listens on, and, listening on every address, the host's own addresses and name. */
  private allowedHost(host: string): boolean {
    let parsed: URL;
    try {
      parsed = new URL(`http://${host}`);
    } catch {
      return false;
    }
    if (/[/@?#\\]/.test(host)) return false;
    const port = parsed.port === '' ? 80 : Number(parsed.port);
    if (port !== this.boundPort) return false;
    const name = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    if (name === 'localhost' || isLoopback(name) || name === this.boundAddress || name === this.options.host) return true;
    if (this.boundAddress === '0.0.0.0' || this.boundAddress === '::') {
      if (name === hostname().toLowerCase()) return true;
      return Object.values(networkInterfaces()).some((addresses) => (addresses ?? []).some((address) => address.address === name));
    }
    return false;
  }

  /** Resolves with the bound port. */
  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        this.boundPort = typeof address === 'object' && address !== null ? address.port : this.options.port;
        this.boundAddress = typeof address === 'object' && address !== null ? address.address : this.options.host;
        resolve(this.boundPort);
      });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function isLoopback(address: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(address) || address === '::1' || address === '::ffff:127.0.0.1';
}
