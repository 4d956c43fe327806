// `barrier NAME`: one participant of a named barrier (emulab-sync's semantics), through the local
// agent's control server (POST /barrier), which registers it with the elected master and answers
// when the barrier releases. The request is held open while waiting (see control-client.ts).
import type { BarrierResult } from '../daemon/barrier-waits.ts';
import { ControlRequestError, requestControl } from './control-client.ts';
import { BARRIER_ANSWER_GRACE_MS } from '../core/limits.ts';

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


export interface BarrierOutcome {
  exitCode: number;
  /** For stderr (null when there is nothing to say: released, registered). */
  message: string | null;
  result: BarrierResult | null;
}

export function runBarrier(command: BarrierCommand): Promise<BarrierOutcome> {
  const where = `${command.host}:${command.port}`;
  const body = { name: command.name, count: command.count, errorCode: command.errorCode, wait: command.wait, timeoutMs: command.timeoutMs };
  // The agent times the participant out itself; the backstop only covers an agent that stopped answering.
  const request = requestControl({ host: command.host, port: command.port }, { path: '/barrier', method: 'POST', json: body });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: BarrierOutcome) => {
      if (settled) return;
      settled = true;
      if (backstop) clearTimeout(backstop);
      resolve(outcome);
    };
    const backstop =
      command.timeoutMs === null
        ? null
        : setTimeout(() => {
            request.cancel();
            settle({ exitCode: BARRIER_EXIT.timeout, message: `barrier ${command.name}: timed out after ${command.timeoutMs! / 1000} s (the agent did not answer)`, result: null });
          }, command.timeoutMs + BARRIER_ANSWER_GRACE_MS);
    request.done.then(
      (response) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(response.text);
        } catch {
          return settle({ exitCode: BARRIER_EXIT.unreachable, message: `the agent at ${where} answered ${response.statusCode} without JSON; is it a berkeley-agent control server?`, result: null });
        }
        if (response.statusCode !== 200) {
          const error = (parsed as { error?: string }).error ?? `HTTP ${response.statusCode}`;
          const exitCode = response.statusCode === 400 || response.statusCode === 413 ? BARRIER_EXIT.usage : BARRIER_EXIT.unreachable;
          return settle({ exitCode, message: `barrier ${command.name}: ${error}`, result: null });
        }
        settle(interpret(parsed as BarrierResult, command));
      },
      (error: unknown) => {
        const code = error instanceof ControlRequestError ? error.code : String(error);
        const unreachable = error instanceof ControlRequestError && error.phase === 'connect' && (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EHOSTUNREACH');
        const message = unreachable
          ? `cannot reach the agent's control server at ${where} (${code}); is the agent running, and is --http right?`
          : `the agent at ${where} went away while ${command.name} was waiting (${code})`;
        settle({ exitCode: BARRIER_EXIT.unreachable, message, result: null });
      },
    );
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
