// The client side of the agent's control server, shared by `status`, `waitsync` and `barrier`.
// node:http, not fetch: fetch refuses the "bad ports" of the WHATWG list (6000, 6665-6669, ...),
// which are fine ports for a control server, and gives up on a held-open response after 5 minutes
// (a barrier can wait longer).
import http from 'node:http';
import { CONTROL_RESPONSE_BYTES_MAX } from '../core/limits.ts';
import type { HostPort } from '../daemon/config.ts';

export interface ControlResponse {
  statusCode: number;
  text: string;
}

/**
 * Why a request failed. `phase` "connect": no answer started (nothing listens, no route, timed out
 * before an answer); "response": the agent went away or sent too much while answering.
 */
export class ControlRequestError extends Error {
  constructor(
    readonly code: string,
    readonly phase: 'connect' | 'response',
    message: string,
  ) {
    super(message);
  }
}

export interface ControlRequest {
  done: Promise<ControlResponse>;
  /** Gives up on the request (the server sees the connection close). */
  cancel(): void;
}

/** One request to the control server. `timeoutMs` (null: none) bounds the whole exchange. */
export function requestControl(target: HostPort, options: { path: string; method?: 'GET' | 'POST'; json?: unknown; timeoutMs?: number | null }): ControlRequest {
  const body = options.json === undefined ? null : JSON.stringify(options.json);
  let request: http.ClientRequest | null = null;
  let timer: NodeJS.Timeout | null = null;
  const done = new Promise<ControlResponse>((resolve, reject) => {
    let settled = false;
    let answering = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      outcome();
    };
    const fail = (code: string, message: string) => settle(() => reject(new ControlRequestError(code, answering ? 'response' : 'connect', message)));
    const headers: http.OutgoingHttpHeaders = body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    request = http.request({ host: target.host, port: target.port, path: options.path, method: options.method ?? 'GET', headers, agent: false }, (response) => {
      answering = true;
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > CONTROL_RESPONSE_BYTES_MAX) {
          fail('E2BIG', `the answer is over ${CONTROL_RESPONSE_BYTES_MAX} bytes`);
          request?.destroy();
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'ECONNRESET', error.message));
      response.on('end', () => settle(() => resolve({ statusCode: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })));
    });
    request.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'ECONNRESET', error.message));
    if (options.timeoutMs !== undefined && options.timeoutMs !== null) {
      timer = setTimeout(() => {
        fail('ETIMEDOUT', `no answer within ${options.timeoutMs} ms`);
        request?.destroy();
      }, options.timeoutMs);
    }
    request.end(body ?? undefined);
  });
  return {
    done,
    cancel: () => {
      if (timer !== null) clearTimeout(timer);
      (request as http.ClientRequest | null)?.destroy();
    },
  };
}

/** GET a JSON document; an answer that is not 200 with JSON is an error (code EHTTP / EJSON). */
export async function getJson<T>(target: HostPort, path: string, timeoutMs: number): Promise<T> {
  const response = await requestControl(target, { path, timeoutMs }).done;
  if (response.statusCode !== 200) throw new ControlRequestError('EHTTP', 'response', `GET ${path} answered ${response.statusCode}`);
  try {
    return JSON.parse(response.text) as T;
  } catch {
    throw new ControlRequestError('EJSON', 'response', `GET ${path} answered without JSON; is it a berkeley-agent control server?`);
  }
}
