// pino logger: JSON lines on stdout (journald keeps them), pretty on a terminal or on request.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty' | 'auto';
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function createLogger(options: { level: LevelWithSilent; format: LogFormat; name?: string }): Logger {
  const usePretty = options.format === 'pretty' || (options.format === 'auto' && process.stdout.isTTY === true);
  const base = { level: options.level, base: options.name ? { node: options.name } : { pid: process.pid } };
  if (usePretty) {
    return pino(base, pretty({ colorize: process.stdout.isTTY === true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ dest: 1, sync: false }));
}

/** Lets a noisy condition log once per interval while a counter keeps the full count. */
export class RateLimiter {
  private nextAllowedMs = 0;
  suppressed = 0;

  constructor(private readonly intervalMs: number) {}

  allow(nowMs: number): boolean {
    if (nowMs >= this.nextAllowedMs) {
      this.nextAllowedMs = nowMs + this.intervalMs;
      return true;
    }
    this.suppressed += 1;
    return false;
  }

  /** Returns and resets the number of suppressed occurrences. */
  takeSuppressed(): number {
    const count = this.suppressed;
    this.suppressed = 0;
    return count;
  }
}
