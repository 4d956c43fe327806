// `barrier NAME`: one participant of a named barrier (emulab-sync's semantics), through the local
// agent's control server (POST /barrier), which registers it with the elected master and answers
// when the barrier releases. The request is held open while waiting: node:http, not fetch, whose
// client gives up on a response after 5 minutes.
import http from 'node:http';
import type { BarrierResult } from '../daemon/agent.ts';

/** Exit codes of the barrier command (emulab-sync's, and timeout(1)'s 124). */
export const BARRIER_EXIT = { released: 0, timeout: 124, usage: 64, unreachable: 76 } as const;

export interface BarrierCommand {
  name: string;
  count: number | null;
  wait: boolean;
  errorCode: number;
  timeoutMs: number | null;
  host: string;
  port: number;
}

/** How long after --timeout the command gives up on an agent that has not answered. */
const AGENT_ANSWER_GRACE_MS = 5000;

export interface BarrierOutcome {
  exitCode: number;
  /** For stderr (null when there is nothing to say: released, registered). */
  message: string | null;
  result: BarrierResult | null;
}

export function runBarrier(command: BarrierCommand): Promise<BarrierOutcome> {
  const where = `${command.host}:${command.port}`;
  const body = JSON.stringify({ name: command.name, count: command.count, errorCode: command.errorCode, wait: command.wait, timeoutMs: command.timeoutMs });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: BarrierOutcome) => {
      if (settled) return;
      settled = true;
      if (backstop) clearTimeout(backstop);
      resolve(outcome);
    };
    const request = http.request({ host: command.host, port: command.port, path: '/barrier', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', () => settle({ exitCode: BARRIER_EXIT.unreachable, message: `the agent at ${where} went away while ${command.name} was waiting`, result: null }));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          return settle({ exitCode: BARRIER_EXIT.unreachable, message: `the agent at ${where} answered ${response.statusCode} without JSON; is it a berkeley-agent control server?`, result: null });
        }
        if (response.statusCode !== 200) {
          const error = (parsed as { error?: string }).error ?? `HTTP ${response.statusCode}`;
          const exitCode = response.statusCode === 400 || response.statusCode === 413 ? BARRIER_EXIT.usage : BARRIER_EXIT.unreachable;
          return settle({ exitCode, message: `barrier ${command.name}: ${error}`, result: null });
        }
        settle(interpret(parsed as BarrierResult, command));
      });
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message;
      const message =
        code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EHOSTUNREACH'
          ? `cannot reach the agent's control server at ${where} (${code}); is the agent running, and is --http right?`
          : `the agent at ${where} went away while ${command.name} was waiting (${code})`;
      settle({ exitCode: BARRIER_EXIT.unreachable, message, result: null });
    });
    // The agent times the participant out itself; this only covers an agent that stopped answering.
    const backstop = command.timeoutMs === null ? null : setTimeout(() => {
      request.destroy();
      settle({ exitCode: BARRIER_EXIT.timeout, message: `barrier ${command.name}: timed out after ${command.timeoutMs! / 1000} s (the agent did not answer)`, result: null });
    }, command.timeoutMs + AGENT_ANSWER_GRACE_MS);
    request.end(body);
  });
}

function interpret(result: BarrierResult, command: BarrierCommand): BarrierOutcome {
  switch (result.result) {
    case 'released':
      return { exitCode: result.exitCode, message: null, result };
    case 'registered':
      return { exitCode: BARRIER_EXIT.released, message: null, result };
    case 'timeout':
      return { exitCode: BARRIER_EXIT.timeout, message: `barrier ${command.name}: timed out after ${(command.timeoutMs ?? 0) / 1000} s`, result };
    case 'rejected':
      return { exitCode: BARRIER_EXIT.usage, message: `barrier ${command.name}: ${result.detail}`, result };
    case 'unreachable':
      return { exitCode: BARRIER_EXIT.unreachable, message: `barrier ${command.name}: ${result.detail}`, result };
  }
}
