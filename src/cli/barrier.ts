// `barrier NAME`: one participant of a named barrier (emulab-sync's semantics), through the local
// agent's control server (POST /barrier), which registers it with the elected master and answers
// when the barrier releases. The request is held open while waiting (see control-client.ts).
import type { BarrierResult } from '../daemon/barrier-waits.ts';
import { ControlRequestError, requestControl } from './control-client.ts';
import { BARRIER_ANSWER_GRACE_MS, SYNC_START_WAIT_NS_MAX } from '../core/limits.ts';
import { describeStart, waitForInstant, type StartReport } from './sync-start.ts';

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
  /** --synchronized: ask for a release instant and start at it. */
  synchronized?: boolean;
}


export interface BarrierOutcome {
  exitCode: number;
  /** For stderr (null when there is nothing to say: released, registered). */
  message: string | null;
  result: BarrierResult | null;
}

export function runBarrier(command: BarrierCommand): Promise<BarrierOutcome> {
  const where = `${command.host}:${command.port}`;
  const body = {
    name: command.name,
    count: command.count,
    errorCode: command.errorCode,
    wait: command.wait,
    timeoutMs: command.timeoutMs,
    // Only when asked: an older agent's control server refuses unknown fields.
    ...(command.synchronized === true ? { synchronized: true } : {}),
  };
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

/**
 * After a release (exit code 0) of a --synchronized participant: waits until this participant's
 * clock reaches the release instant the master gave. A release without an instant (an older
 * master) or an instant further ahead than any margin (a wrong clock) starts at once, with a line.
 */
export async function startAtRelease(outcome: BarrierOutcome, command: BarrierCommand, hostNowNs: () => bigint): Promise<{ start: StartReport | null; messages: string[] }> {
  const result = outcome.result;
  if (result === null || result.result !== 'released') return { start: null, messages: [] };
  if (result.releaseAtNs === undefined || result.clock === undefined) {
    return { start: null, messages: [`barrier ${command.name}: the master sent no release instant (an agent older than --synchronized?); released on arrival`] };
  }
  const clock = result.clock;
  const instantNs = BigInt(result.releaseAtNs);
  const aheadNs = instantNs - (hostNowNs() + BigInt(Math.round(clock.hostOffsetNs)));
  if (aheadNs > BigInt(SYNC_START_WAIT_NS_MAX)) {
    return { start: null, messages: [`barrier ${command.name}: the release instant is ${Number(aheadNs) / 1e9} s ahead of this clock; released on arrival`] };
  }
  const start = await waitForInstant(instantNs, {
    hostNowNs,
    clock: { mode: clock.mode, hostOffsetNs: clock.hostOffsetNs, hostAnchorErrorNs: clock.hostAnchorErrorNs, errorBoundNs: clock.errorBoundNs },
  });
  const messages: string[] = [];
  const line = describeStart(`barrier ${command.name}`, start, clock.mode);
  if (line !== null) messages.push(line);
  if (!clock.synchronized) messages.push(`barrier ${command.name}: this agent's clock is not synchronized; the start is on its own clock`);
  return { start, messages };
}
