// Starting at one cluster instant (issue 19), for `barrier --synchronized` and `at`: wait until
// this participant's synchronized clock reaches an instant, then return or run a command.
//
// The agent's clock is the host's CLOCK_REALTIME plus its offset (0 on the kernel clock; a virtual
// clock's hostOffsetNs). So the instant on the agent's clock is an instant on the host clock, and
// this process waits for that: it sleeps on a timer (timers wake up late on a busy host, never
// early enough to matter) until SYNC_START_SPIN_NS before it, then sleeps in the kernel until the
// host clock reads it (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME), src/clock/raw.ts): the
// scheduler wakes it at the instant instead of it competing for a core in a spin, which on a busy
// host costs whole time slices. Only where that call cannot be bound does it spin on
// clock_gettime(CLOCK_REALTIME) for the last stretch. The agent reads the host clock through an
// anchor (src/clock/host.ts) known to within its anchorErrorNs, so the wait ends that much later:
// never before the instant on the participant's own clock.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { HostClock } from '../clock/host.ts';
import { openAbsoluteSleep, openClock } from '../clock/raw.ts';
import { CLOCK_REALTIME } from '../native/libc.ts';
import { SYNC_START_SPIN_NS } from '../core/limits.ts';
import { prepareCommand, type PreparedCommand } from './start-command.ts';

/** This agent's clock as a waiting command needs it. */
export interface ParticipantClock {
  mode: string;
  /** The agent's clock minus the host's realtime clock, ns. */
  hostOffsetNs: number;
  /** How far the agent's reading of the host clock may be off (its anchor's error), ns. */
  hostAnchorErrorNs: number;
  /** A bound on |agent's clock - the master's|, ns, or null when not known. */
  errorBoundNs: number | null;
}

export interface StartReport {
  /** The instant, cluster clock, ns since the epoch (decimal string: past 2^53). */
  instantNs: string;
  /** When the wait ended, host CLOCK_REALTIME, ns (decimal string). */
  startedHostNs: string;
  /** The same moment on the participant's clock (host + offset). */
  startedClockNs: string;
  /** How far past the instant the instant already was when the wait began (0: on time), ns. */
  lateNs: number;
  /** How far past the instant the wait ended (the first read after the wait; a timer that overslept shows here), ns. */
  overshootNs: number;
  hostOffsetNs: number;
  errorBoundNs: number | null;
  /** How the last stretch was waited: in the kernel (clock_nanosleep), spinning where that cannot be bound, or not at all (late). */
  wokeBy: 'clock_nanosleep' | 'spin' | 'none';
  /** Why it spun (the binding's or the call's error), when it did. */
  fallback?: string;
}

/** Sleeps in the kernel until the host clock reads targetNs; null, or why it could not. */
export type SleepUntilHostNs = (targetNs: bigint) => string | null;

let realtimeSleep: { sleepUntilNs: SleepUntilHostNs } | { error: string } | null = null;

/** The kernel sleep until a CLOCK_REALTIME instant, bound once (or why it cannot be). */
export function hostRealtimeSleep(): { sleepUntilNs: SleepUntilHostNs } | { error: string } {
  realtimeSleep ??= openAbsoluteSleep(CLOCK_REALTIME, 'CLOCK_REALTIME');
  return realtimeSleep;
}

/** The host's CLOCK_REALTIME in ns: clock_gettime through koffi, else the anchored hrtime. */
export function hostRealtime(): () => bigint {
  // Bind the kernel sleep too, now: binding it after a release would eat into the margin.
  hostRealtimeSleep();
  // The one koffi binding of clock_gettime (native/libc.ts); its trial read warms the call up.
  const realtime = openClock(CLOCK_REALTIME, 'CLOCK_REALTIME');
  if (!('error' in realtime)) return realtime.nowNs;
  const host = new HostClock();
  return () => host.nowNs();
}

export interface WaitOptions {
  /** Host CLOCK_REALTIME now, ns. */
  hostNowNs: () => bigint;
  /** The agent's clock now; `refresh` (long waits) asks again for the offset. */
  clock: ParticipantClock;
  refresh?: () => Promise<ParticipantClock>;
  sleepMs?: (ms: number) => Promise<void>;
  /** The last stretch: a kernel sleep until a host instant (default: clock_nanosleep), or why there is none (spin). */
  sleepUntilHostNs?: { sleepUntilNs: SleepUntilHostNs } | { error: string };
  /** How long before the instant the timer sleep hands over to the last stretch, ns. */
  spinNs?: number;
}

/** Long waits ask the agent for its offset again this long before the instant (it slews). */
const REFRESH_BEFORE_NS = 1_000_000_000n;
/** And at least this often before that. */
const REFRESH_EVERY_MS = 10_000;

/**
 * Waits until the participant's clock reaches `instantNs` (cluster clock, ns). Returns at once,
 * reporting how late, when the instant has passed already.
 */
export async function waitForInstant(instantNs: bigint, options: WaitOptions): Promise<StartReport> {
  const sleepMs = options.sleepMs ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const spinNs = BigInt(options.spinNs ?? SYNC_START_SPIN_NS);
  let clock = options.clock;
  // The host time at which the participant's clock reads the instant, made later by the agent's
  // own uncertainty about the host clock, so that the start is never early.
  const targetOf = (c: ParticipantClock): bigint => instantNs - BigInt(Math.round(c.hostOffsetNs)) + BigInt(Math.ceil(Math.max(0, c.hostAnchorErrorNs)));
  let targetNs = targetOf(clock);
  const firstNs = options.hostNowNs();
  const lateNs = firstNs > targetNs ? Number(firstNs - targetNs) : 0;
  let wokeBy: StartReport['wokeBy'] = lateNs > 0 ? 'none' : 'spin';
  let fallback: string | undefined;
  if (lateNs === 0) {
    for (;;) {
      const remainingNs = targetNs - options.hostNowNs();
      if (remainingNs <= spinNs) break;
      if (options.refresh !== undefined && remainingNs > REFRESH_BEFORE_NS) {
        await sleepMs(Math.min(REFRESH_EVERY_MS, Number(remainingNs - REFRESH_BEFORE_NS) / 1e6));
        clock = await options.refresh();
        targetNs = targetOf(clock);
        continue;
      }
      await sleepMs(Number(remainingNs - spinNs) / 1e6);
    }
    // The last stretch (a timer could wake us milliseconds late): in the kernel, else spinning.
    const kernel = options.sleepUntilHostNs ?? hostRealtimeSleep();
    const failed = 'error' in kernel ? kernel.error : kernel.sleepUntilNs(targetNs);
    if (failed === null) wokeBy = 'clock_nanosleep';
    else fallback = failed;
  }
  // After the kernel sleep this reads once and goes on (it returns at the instant or later); the
  // read is the start's moment.
  let startedHostNs = options.hostNowNs();
  while (startedHostNs < targetNs) startedHostNs = options.hostNowNs();
  return {
    overshootNs: Number(startedHostNs - targetNs),
    instantNs: instantNs.toString(),
    startedHostNs: startedHostNs.toString(),
    startedClockNs: (startedHostNs + BigInt(Math.round(clock.hostOffsetNs))).toString(),
    lateNs,
    hostOffsetNs: clock.hostOffsetNs,
    errorBoundNs: clock.errorBoundNs,
    wokeBy,
    ...(fallback === undefined ? {} : { fallback }),
  };
}

/** One line for stderr about a start, or null when there is nothing to say (on time, kernel clock). */
export function describeStart(what: string, report: StartReport, mode: string): string | null {
  if (report.lateNs > 0) return `${what}: started ${formatNs(report.lateNs)} after the instant (it was already past when ${what.startsWith('at') ? 'the command began waiting' : 'the release arrived'})`;
  if (mode !== 'virtual') return null;
  const bound = report.errorBoundNs === null ? 'bound unknown' : `bound ±${formatNs(report.errorBoundNs)}`;
  return `${what}: started at the instant on the agent's virtual clock (host offset ${report.hostOffsetNs >= 0 ? '+' : '-'}${formatNs(Math.abs(report.hostOffsetNs))}, ${bound})`;
}

function formatNs(ns: number): string {
  if (ns < 1e3) return `${Math.round(ns)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(3)} ms`;
  return `${(ns / 1e9).toFixed(3)} s`;
}

/** Exit codes when the command cannot be run (as env(1) and the shells use them). */
export const COMMAND_EXIT = { cannotExecute: 126, notFound: 127 } as const;

/**
 * Runs `command` now (`onSpawned` once it was started, with the host clock when spawn() returned:
 * the child has exec'd by then), directly (no shell), with this process's stdio, and resolves with
 * the exit code to pass on: the command's, 128 + signal number if a signal ended it, 126/127 if it
 * could not be started. Node cannot exec in place, so the command is a child of this process.
 */
export function runCommand(command: readonly string[], onSpawned: (spawnedHostNs: bigint | null) => void = () => {}, hostNowNs: (() => bigint) | null = null): Promise<{ exitCode: number; message: string | null }> {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { stdio: 'inherit' });
  const spawnedHostNs = hostNowNs === null ? null : hostNowNs();
  // Anything we print goes out only now, so that it does not delay the start.
  onSpawned(spawnedHostNs);
  return awaitCommand(child, file);
}

/** Waits for a spawned command and passes its end on. */
function awaitCommand(child: ChildProcess, file: string): Promise<{ exitCode: number; message: string | null }> {
  return new Promise((resolve) => {
    const stopForwarding = forwardSignals((signal) => child.kill(signal));
    let finished = false;
    const done = (outcome: { exitCode: number; message: string | null }) => {
      if (finished) return;
      finished = true;
      stopForwarding();
      resolve(outcome);
    };
    child.once('error', (error: NodeJS.ErrnoException) => done(cannotRun(file, error.code ?? error.message)));
    child.once('exit', (code, signal) => {
      if (signal !== null) done({ exitCode: 128 + (osConstants.signals[signal] ?? 0), message: null });
      else done({ exitCode: code ?? 0, message: null });
    });
  });
}

/** Signals that would end us go to the command (it is the foreground job); we exit with its status. Returns the undo. */
function forwardSignals(send: (signal: NodeJS.Signals) => void): () => void {
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, () => send(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

function cannotRun(file: string, code: string): { exitCode: number; message: string } {
  return { exitCode: code === 'ENOENT' ? COMMAND_EXIT.notFound : COMMAND_EXIT.cannotExecute, message: `cannot run ${JSON.stringify(file)}: ${code}` };
}

/** How the command of a start began. */
export interface CommandStart {
  /** posix_spawnp (prepared while waiting; vfork, no copy of this process), or child_process.spawn where that cannot be had. */
  via: 'posix_spawn' | 'spawn';
  /** From the host instant to the start call's return (the command has exec'd by then), ns; null without an instant (plain release). */
  startedAfterNs: number | null;
  /** Why not posix_spawn, when not. */
  fallback?: string;
}

/** The command of a start, prepared while waiting for the instant (start-command.ts); or why not. */
export function commandFor(command: readonly string[] | null): PreparedCommand | { error: string } | null {
  return command === null ? null : prepareCommand(command);
}

/**
 * Starts the command of a start now, directly (no shell), with this process's stdio; `print` runs
 * once it started, with how. Resolves with the exit code to pass on: the command's, 128 + signal
 * number if a signal ended it, 126/127 if it could not be started.
 */
export function startCommand(
  command: readonly string[],
  start: StartReport | null,
  prepared: PreparedCommand | { error: string } | null,
  hostNowNs: (() => bigint) | null,
  print: (how: CommandStart) => void,
): Promise<{ exitCode: number; message: string | null }> {
  const targetNs = start === null ? null : BigInt(start.startedHostNs) - BigInt(start.overshootNs);
  const since = (nowNs: bigint | null): number | null => (targetNs === null || nowNs === null ? null : Number(nowNs - targetNs));
  const file = command[0] as string;
  if (prepared !== null && !('error' in prepared)) {
    const started = prepared.startNow();
    const startedAfterNs = since(hostNowNs === null ? null : hostNowNs());
    print({ via: 'posix_spawn', startedAfterNs });
    if ('error' in started) return Promise.resolve(cannotRun(file, started.error));
    const stopForwarding = forwardSignals((signal) => {
      try {
        process.kill(started.pid, signal);
      } catch {
        // Gone already.
      }
    });
    return prepared.wait(started.pid).then((status) => {
      stopForwarding();
      return { exitCode: 'code' in status ? status.code : 128 + status.signal, message: null };
    });
  }
  const fallback = prepared === null ? 'not prepared' : prepared.error;
  return runCommand(command, (spawnedHostNs) => print({ via: 'spawn', startedAfterNs: since(spawnedHostNs), fallback }), hostNowNs);
}

/** Splits `... -- COMMAND ARGS...` off an argument list (the first `--` only). */
export function splitCommand(argv: readonly string[]): { own: string[]; command: string[] | null } {
  const at = argv.indexOf('--');
  if (at < 0) return { own: [...argv], command: null };
  return { own: argv.slice(0, at), command: argv.slice(at + 1) };
}
