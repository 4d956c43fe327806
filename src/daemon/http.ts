// Control server: loopback HTTP by default. GET /status returns the status report as JSON,
// GET /metrics the Prometheus metrics (text format 0.0.4).
import http from 'node:http';
import type { MetricsPayload } from './metrics.ts';
import type { StatusReport } from './status.ts';

export interface ControlServerOptions {
  host: string;
  /** 0 picks any free port. */
  port: number;
  status(): StatusReport;
  /** Prometheus exposition for GET /metrics; without it /metrics is 404. */
  metrics?: () => Promise<MetricsPayload>;
}

export class ControlServer {
  private readonly server: http.Server;

  constructor(private readonly options: ControlServerOptions) {
    this.server = http.createServer((request, response) => this.handle(request, response));
    // A control client that stalls must not hold sockets open forever.
    this.server.requestTimeout = 5000;
    this.server.headersTimeout = 5000;
    this.server.maxConnections = 64;
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/status') {
      const body = JSON.stringify(this.options.status());
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
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('berkeley-agent control server: GET /status\n');
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  /** Resolves with the bound port. */
  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : this.options.port);
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
