// How a running agent ends: every signal whose default action would kill the process ends it the
// graceful way instead (LEAVE to the peers, state saved, a kernel slew ended, the mDNS goodbye),
// and an uncaught exception or unhandled rejection still saves the state and ends the slew before
// the process exits non-zero. Without this, SIGHUP (an ssh session dropping), SIGQUIT or SIGUSR2
// killed the agent silently, leaving the kernel slewing at the slew's frequency.
import type { Logger } from 'pino';
import { AGENT_STOP_TIMEOUT_MS, CRASH_STOP_TIMEOUT_MS } from '../core/limits.ts';

/**
 * Signals that end the agent gracefully. SIGHUP is a hangup (the terminal or ssh session went
 * away), not a reload: the agent has nothing to reload that a restart would not also reload.
 * Left out: SIGKILL and SIGSTOP (cannot be caught); SIGSEGV, SIGBUS, SIGFPE and SIGILL (no
 * JavaScript may run after a real fault); SIGABRT (Node's own abort); SIGUSR1 (Node starts its
 * inspector on it; only root or the agent's own user can send it); SIGPIPE (Node ignores it).
 */
export const STOP_SIGNALS = [
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR2',
  'SIGALRM',
  'SIGVTALRM',
  'SIGPROF',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGPWR',
  'SIGIO',
  'SIGSTKFLT',
  'SIGTRAP',
  'SIGSYS',
] as const satisfies readonly NodeJS.Signals[];

/** Exit codes: a stop by signal is a clean end; a crash or a stop that hung is a failure. */
export const EXIT_STOPPED = 0;
export const EXIT_CRASHED = 1;

/** What the lifecycle needs of a running daemon. */
export interface Stoppable {
  /** Graceful: LEAVE, state saved, slew ended, sockets closed. */
  stop(): Promise<void>;
  /** Synchronous and safe to call in any state: save the state, end a slew. */
  saveAndReleaseClock(): void;
}

/** The parts of `process` used here (tests pass a fake). */
export interface ProcessLike {
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  exit(code: number): void;
}

export interface LifecycleOptions {
  daemon: Stoppable;
  logger: Logger;
  /** Told before a stop starts (systemd's STOPPING=1). */
  onStopping?: () => void;
  process?: ProcessLike;
  stopTimeoutMs?: number;
  crashStopTimeoutMs?: number;
}

/** Installs the handlers; returns a function that removes them (tests). */
export function installLifecycle(options: LifecycleOptions): () => void {
  const proc: ProcessLike = options.process ?? (process as unknown as ProcessLike);
  const { daemon, logger } = options;
  let stopping = false;

  const finish = (stop: Promise<void>, code: number, timeoutMs: number) => {
    // A stuck shutdown must not keep the service from stopping.
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'stop did not finish in time; exiting');
      proc.exit(EXIT_CRASHED);
    }, timeoutMs);
    timer.unref();
    stop.then(
      () => {
        clearTimeout(timer);
        proc.exit(code);
      },
      (error: unknown) => {
        clearTimeout(timer);
        logger.error({ err: errorText(error) }, 'stop failed');
        proc.exit(EXIT_CRASHED);
      },
    );
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal while stopping: the operator insists. The state is saved and the slew
      // ended first (the graceful stop may be what hangs).
      logger.warn({ signal }, 'second signal while stopping; exiting now');
      safely(() => daemon.saveAndReleaseClock(), logger);
      proc.exit(EXIT_CRASHED);
      return;
    }
    stopping = true;
    safely(() => options.onStopping?.(), logger);
    logger.info({ signal }, 'stopping');
    finish(daemon.stop(), EXIT_STOPPED, options.stopTimeoutMs ?? AGENT_STOP_TIMEOUT_MS);
  };

  const onCrash = (error: unknown, origin?: string) => {
    // First what must survive whatever state the program is in: the term on disk, the kernel
    // clock at its base frequency. Then, if nothing else breaks, the LEAVE to the peers.
    logger.fatal({ err: errorText(error), stack: error instanceof Error ? error.stack : undefined, origin: origin ?? 'uncaughtException' }, 'internal error; stopping');
    safely(() => daemon.saveAndReleaseClock(), logger);
    if (stopping) {
      proc.exit(EXIT_CRASHED);
      return;
    }
    stopping = true;
    safely(() => options.onStopping?.(), logger);
    let stop: Promise<void>;
    try {
      stop = daemon.stop();
    } catch (stopError) {
      stop = Promise.reject(stopError as Error);
    }
    finish(stop, EXIT_CRASHED, options.crashStopTimeoutMs ?? CRASH_STOP_TIMEOUT_MS);
  };
  const onRejection = (reason: unknown) => onCrash(reason, 'unhandledRejection');

  const signalListeners = STOP_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of signalListeners) proc.on(signal, listener);
  proc.on('uncaughtException', onCrash);
  proc.on('unhandledRejection', onRejection);
  return () => {
    for (const [signal, listener] of signalListeners) proc.removeListener(signal, listener);
    proc.removeListener('uncaughtException', onCrash);
    proc.removeListener('unhandledRejection', onRejection);
  };
}

function safely(action: () => void, logger: Logger): void {
  try {
    action();
  } catch (error) {
    logger.error({ err: errorText(error) }, 'error while stopping');
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
