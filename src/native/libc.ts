// glibc through koffi, loaded once and only when something asks for it (the kernel clock,
// kernel receive timestamps, sd_notify). Never throws: an agent without koffi, or not on Linux,
// gets the reason and falls back (virtual clock, user-space stamps, no readiness message).
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');

export interface Libc {
  koffi: Koffi;
  libc: ReturnType<Koffi['load']>;
}

let cached: Libc | { error: string } | null = null;

export function loadLibc(): Libc | { error: string } {
  cached ??= load();
  return cached;
}

function load(): Libc | { error: string } {
  if (process.platform !== 'linux') return { error: `needs Linux (this is ${process.platform})` };
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    return { error: `cannot load koffi (${(error as Error).message.split('\n')[0]}); reinstall with npm ci` };
  }
  try {
    // glibc's soname first; the process's own symbols (any libc already mapped) as a fallback.
    let libc: ReturnType<Koffi['load']>;
    try {
      libc = koffi.load('libc.so.6');
    } catch {
      libc = koffi.load(null);
    }
    return { koffi, libc };
  } catch (error) {
    return { error: `cannot load libc through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
}

/** clock_gettime(2) clock ids (Linux, every architecture). */
export const CLOCK_REALTIME = 0;
/** The oscillator's own count: never stepped, never slewed or frequency-adjusted by adjtimex. */
export const CLOCK_MONOTONIC_RAW = 4;

/** clock_gettime into a 2-slot BigInt64Array (tv_sec, tv_nsec: 64-bit on our Linux targets). */
export type ClockGettime = (clockId: number, out: BigInt64Array) => number;

let cachedClockGettime: { clockGettime: ClockGettime } | { error: string } | null = null;

/** libc's clock_gettime, bound once. Never throws. */
export function loadClockGettime(): { clockGettime: ClockGettime } | { error: string } {
  cachedClockGettime ??= bindClockGettime();
  return cachedClockGettime;
}

function bindClockGettime(): { clockGettime: ClockGettime } | { error: string } {
  const loaded = loadLibc();
  if ('error' in loaded) return loaded;
  try {
    // A typed array for the out-parameter: about 100-150 ns a call here (scripts/bench/clock-read.ts).
    const clockGettime = loaded.libc.func('int clock_gettime(int clock, _Out_ void *out)');
    return { clockGettime: (clockId, out) => clockGettime(clockId, out) as number };
  } catch (error) {
    return { error: `cannot bind clock_gettime through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
}

/** clock_nanosleep(2) flag: the request is an absolute time on the clock, not an interval. */
export const TIMER_ABSTIME = 1;
/** errno: a signal handler interrupted the call. */
export const EINTR = 4;
/** prctl(2) option: this thread's timer slack, ns (1 = none to speak of; 0 = back to the default). */
export const PR_SET_TIMERSLACK = 29;

/**
 * clock_nanosleep with an absolute timespec in a 2-slot BigInt64Array; returns 0 or the error
 * number (it does not set errno). `remain` is unused with TIMER_ABSTIME.
 */
export type ClockNanosleep = (clockId: number, flags: number, request: BigInt64Array) => number;
/** prctl with integer arguments; returns 0 or -1. */
export type Prctl = (option: number, arg2: number) => number;
/** sched_getscheduler / sched_setscheduler for this thread: the policy, or -1; 0 or -1. */
export interface Scheduler {
  get: () => number;
  set: (policy: number, priority: number) => number;
}
/** sched_setscheduler(2) policies. */
export const SCHED_OTHER = 0;
export const SCHED_FIFO = 1;

export interface ClockNanosleepBinding {
  clockNanosleep: ClockNanosleep;
  prctl: Prctl | null;
  scheduler: Scheduler | null;
}

let cachedClockNanosleep: ClockNanosleepBinding | { error: string } | null = null;

/**
 * libc's clock_nanosleep, bound once, with prctl (the timer slack that would otherwise make a
 * wake-up up to 50 µs late) and the scheduler calls (a real-time priority for the sleep, where
 * permitted). Never throws. prctl and scheduler are null where they cannot be bound.
 */
export function loadClockNanosleep(): ClockNanosleepBinding | { error: string } {
  cachedClockNanosleep ??= bindClockNanosleep();
  return cachedClockNanosleep;
}

function bindClockNanosleep(): ClockNanosleepBinding | { error: string } {
  const loaded = loadLibc();
  if ('error' in loaded) return loaded;
  let clockNanosleep: ClockNanosleep;
  try {
    const bound = loaded.libc.func('int clock_nanosleep(int clock, int flags, const void *request, void *remain)');
    clockNanosleep = (clockId, flags, request) => bound(clockId, flags, request, null) as number;
  } catch (error) {
    return { error: `cannot bind clock_nanosleep through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
  let prctl: Prctl | null = null;
  try {
    // Declared with fixed integer arguments (glibc's is variadic; same registers on x86-64 and arm64 Linux).
    const bound = loaded.libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)');
    prctl = (option, arg2) => bound(option, arg2, 0, 0, 0) as number;
  } catch {
    prctl = null;
  }
  let scheduler: Scheduler | null = null;
  try {
    const get = loaded.libc.func('int sched_getscheduler(int pid)');
    const set = loaded.libc.func('int sched_setscheduler(int pid, int policy, const void *param)');
    const param = new Int32Array(1);
    scheduler = {
      get: () => get(0) as number,
      set: (policy, priority) => {
        param[0] = priority;
        return set(0, policy, param) as number;
      },
    };
  } catch {
    scheduler = null;
  }
  return { clockNanosleep, prctl, scheduler };
}

/** posix_spawnattr_setflags(3) flags (glibc): reset these signals to the default; set the mask. */
export const POSIX_SPAWN_SETSIGDEF = 0x04;
export const POSIX_SPAWN_SETSIGMASK = 0x08;
export const POSIX_SPAWN_SETSCHEDULER = 0x20;
/** Signals Node ignores, which an exec'd command would inherit ignored. */
export const SIGPIPE = 13;
export const SIGXFSZ = 25;

export interface SpawnBinding {
  /** posix_spawnp: 0 and the pid in pidOut[0], or an error number (exec failures included). */
  posixSpawnp: (pidOut: Int32Array, file: string, attr: Uint8Array, argv: (string | null)[], envp: (string | null)[]) => number;
  /** waitpid(pid, &status, 0) on a worker thread: the callback gets the pid (or -1) and the status. */
  waitpidAsync: (pid: number, statusOut: Int32Array, done: (error: unknown, result: number) => void) => void;
  /** A posix_spawnattr_t that resets SIGPIPE and SIGXFSZ to the default and clears the signal mask. */
  attr: Uint8Array;
  /** The same, and the child at SCHED_OTHER before its exec (when the caller spawns at SCHED_FIFO). */
  attrOrdinary: Uint8Array;
  /** fcntl with an int argument (stdio: close-on-exec off, blocking). */
  fcntl: (fd: number, cmd: number, arg: number) => number;
}

let cachedSpawn: SpawnBinding | { error: string } | null = null;

/**
 * posix_spawnp and waitpid, bound once. glibc's posix_spawn starts the child with CLONE_VM |
 * CLONE_VFORK: no copy of this process's page tables, unlike the fork() of child_process.spawn,
 * which for a Node process costs milliseconds. Never throws.
 */
export function loadSpawn(): SpawnBinding | { error: string } {
  cachedSpawn ??= bindSpawn();
  return cachedSpawn;
}

function bindSpawn(): SpawnBinding | { error: string } {
  const loaded = loadLibc();
  if ('error' in loaded) return loaded;
  try {
    const f = (signature: string) => loaded.libc.func(signature);
    const posixSpawnp = f('int posix_spawnp(_Out_ int *pid, const char *file, const void *fileActions, const void *attr, const char **argv, const char **envp)');
    const waitpid = f('int waitpid(int pid, _Out_ int *status, int options)');
    const fcntl = f('int fcntl(int fd, int cmd, int arg)');
    const attrInit = f('int posix_spawnattr_init(void *attr)');
    const setFlags = f('int posix_spawnattr_setflags(void *attr, short flags)');
    const setSigdefault = f('int posix_spawnattr_setsigdefault(void *attr, const void *set)');
    const setSigmask = f('int posix_spawnattr_setsigmask(void *attr, const void *set)');
    const setPolicy = f('int posix_spawnattr_setschedpolicy(void *attr, int policy)');
    const setParam = f('int posix_spawnattr_setschedparam(void *attr, const void *param)');
    const sigemptyset = f('int sigemptyset(void *set)');
    const sigaddset = f('int sigaddset(void *set, int signal)');
    // Opaque glibc structures, sized generously (posix_spawnattr_t is 336 bytes, sigset_t 128 on x86-64).
    const attr = new Uint8Array(1024);
    const attrOrdinary = new Uint8Array(1024);
    const defaults = new Uint8Array(256);
    const empty = new Uint8Array(256);
    const results = [
      sigemptyset(defaults),
      sigaddset(defaults, SIGPIPE),
      sigaddset(defaults, SIGXFSZ),
      sigemptyset(empty),
      ...[attr, attrOrdinary].flatMap((each) => [attrInit(each), setSigdefault(each, defaults), setSigmask(each, empty)]),
      setFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK),
      setPolicy(attrOrdinary, SCHED_OTHER),
      setParam(attrOrdinary, new Int32Array(1)),
      setFlags(attrOrdinary, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSCHEDULER),
    ] as number[];
    if (results.some((result) => result !== 0)) return { error: 'cannot set up posix_spawn attributes' };
    return {
      posixSpawnp: (pidOut, file, spawnAttr, argv, envp) => posixSpawnp(pidOut, file, null, spawnAttr, argv, envp) as number,
      waitpidAsync: (pid, statusOut, done) => waitpid.async(pid, statusOut, 0, done),
      attr,
      attrOrdinary,
      fcntl: (fd, cmd, arg) => fcntl(fd, cmd, arg) as number,
    };
  } catch (error) {
    return { error: `cannot bind posix_spawnp through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
}
