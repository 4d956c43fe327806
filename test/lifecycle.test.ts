// The lifecycle's paths that a real process makes racy to observe, driven in-process with a fake
// `process`: a second signal during a stop that hangs, a stop that never finishes, a crash.
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { EXIT_CRASHED, EXIT_STOPPED, installLifecycle, type ProcessLike, type Stoppable } from '../src/daemon/lifecycle.ts';

class FakeProcess extends EventEmitter {
  exits: number[] = [];
  exit(code: number): void {
    this.exits.push(code);
  }
}

const asProcess = (fake: FakeProcess): ProcessLike => fake as unknown as ProcessLike;

function daemonWith(stop: () => Promise<void>): Stoppable & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    stop: () => {
      calls.push('stop');
      return stop();
    },
    saveAndReleaseClock: () => {
      calls.push('saveAndReleaseClock');
    },
  };
}

const logger = pino({ level: 'silent' });
const never = (): Promise<void> => new Promise(() => {});

describe('lifecycle', () => {
  it('a signal stops gracefully and exits 0 once the stop finishes', async () => {
    const proc = new FakeProcess();
    const daemon = daemonWith(() => Promise.resolve());
    installLifecycle({ daemon, logger, process: asProcess(proc) });
    proc.emit('SIGHUP');
    await new Promise((resolve) => setImmediate(resolve));
    expect(daemon.calls).toEqual(['stop']);
    expect(proc.exits).toEqual([EXIT_STOPPED]);
  });

  it('a second signal while a stop hangs saves the state, ends the slew and exits 1 at once', () => {
    const proc = new FakeProcess();
    const daemon = daemonWith(never);
    installLifecycle({ daemon, logger, process: asProcess(proc), stopTimeoutMs: 60_000 });
    proc.emit('SIGTERM');
    expect(proc.exits).toEqual([]);
    proc.emit('SIGINT');
    expect(daemon.calls).toEqual(['stop', 'saveAndReleaseClock']);
    expect(proc.exits).toEqual([EXIT_CRASHED]);
  });

  it('a stop that never finishes is cut short after the stop timeout with exit 1', async () => {
    const proc = new FakeProcess();
    installLifecycle({ daemon: daemonWith(never), logger, process: asProcess(proc), stopTimeoutMs: 50 });
    proc.emit('SIGQUIT');
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(proc.exits).toEqual([EXIT_CRASHED]);
  });

  it('an uncaught exception saves the state and ends the slew before stopping, and exits 1', async () => {
    const proc = new FakeProcess();
    const daemon = daemonWith(() => Promise.resolve());
    installLifecycle({ daemon, logger, process: asProcess(proc) });
    proc.emit('uncaughtException', new Error('boom'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(daemon.calls).toEqual(['saveAndReleaseClock', 'stop']);
    expect(proc.exits).toEqual([EXIT_CRASHED]);
  });
});
