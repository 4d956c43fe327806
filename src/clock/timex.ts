// The Linux kernel clock's control interface: adjtimex(2) and clock_adjtime(2) with struct timex,
// bound through koffi. The binding is made lazily (only when the system clock is asked for), and a
// missing koffi is an error reported to the operator, never a crash: a virtual-clock agent runs
// without it (src/net/kernel-stamps.ts also uses koffi, and falls back to user-space stamps).
//
// The driver above (kernel.ts) sees only the TimexSyscall interface, so every write path is tested
// against a fake and the real binding is exercised with modes = 0 (a pure read) alone.
import { loadLibc } from '../native/libc.ts';
import { getSystemErrorName } from 'node:util';

// Mode bits (timex.modes), from <linux/timex.h>.
export const ADJ_OFFSET = 0x0001;
export const ADJ_FREQUENCY = 0x0002;
export const ADJ_MAXERROR = 0x0004;
export const ADJ_ESTERROR = 0x0008;
export const ADJ_STATUS = 0x0010;
export const ADJ_TIMECONST = 0x0020;
export const ADJ_TAI = 0x0080;
export const ADJ_SETOFFSET = 0x0100;
export const ADJ_MICRO = 0x1000;
export const ADJ_NANO = 0x2000;
export const ADJ_TICK = 0x4000;
export const ADJ_OFFSET_SINGLESHOT = 0x8001;
export const ADJ_OFFSET_SS_READ = 0xa001;

// Status bits (timex.status).
export const STA_PLL = 0x0001;
export const STA_PPSFREQ = 0x0002;
export const STA_PPSTIME = 0x0004;
export const STA_FLL = 0x0008;
export const STA_INS = 0x0010;
export const STA_DEL = 0x0020;
export const STA_UNSYNC = 0x0040;
export const STA_FREQHOLD = 0x0080;
export const STA_PPSSIGNAL = 0x0100;
export const STA_PPSJITTER = 0x0200;
export const STA_PPSWANDER = 0x0400;
export const STA_PPSERROR = 0x0800;
export const STA_CLOCKERR = 0x1000;
export const STA_NANO = 0x2000;
export const STA_MODE = 0x4000;
export const STA_CLK = 0x8000;
/** Bits ADJ_STATUS cannot change (the kernel keeps its own value). */
export const STA_RONLY = STA_PPSSIGNAL | STA_PPSJITTER | STA_PPSWANDER | STA_PPSERROR | STA_CLOCKERR | STA_NANO | STA_MODE | STA_CLK;

// Clock states returned by adjtimex.
export const TIME_OK = 0;
export const TIME_INS = 1;
export const TIME_DEL = 2;
export const TIME_OOP = 3;
export const TIME_WAIT = 4;
export const TIME_ERROR = 5;

/** timex.freq (and ppsfreq, tolerance) are ppm scaled by 2^16. */
export const FREQ_SCALE = 65_536;
/** The kernel refuses |freq| beyond this (MAXFREQ, 500 ppm). */
export const KERNEL_FREQUENCY_PPM_MAX = 500;
/** maxerror/esterror saturate here (NTP_PHASE_LIMIT, 16 s in µs); beyond it the kernel sets STA_UNSYNC. */
export const KERNEL_ERROR_US_MAX = 16_000_000;
/** timex.tick when nobody has changed it: 1e6 / USER_HZ µs. */
export const TICK_US_DEFAULT = 10_000;
/** sizeof(struct timex) on 64-bit glibc (x86_64, aarch64): 208 bytes. */
export const TIMEX_BYTES = 208;

/** struct timex, field for field (C names; units as in adjtimex(2)). */
export interface Timex {
  modes: number;
  /** PLL offset: ns with STA_NANO, else µs. */
  offset: number;
  /** Frequency offset, ppm * 2^16. */
  freq: number;
  /** µs. */
  maxerror: number;
  /** µs. */
  esterror: number;
  status: number;
  constant: number;
  precision: number;
  tolerance: number;
  /** Current time on return; with ADJ_SETOFFSET the offset to add (tv_usec holds ns with ADJ_NANO). */
  time: { tv_sec: number; tv_usec: number };
  tick: number;
  ppsfreq: number;
  jitter: number;
  shift: number;
  stabil: number;
  jitcnt: number;
  calcnt: number;
  errcnt: number;
  stbcnt: number;
  tai: number;
}

/** What a caller sets: `modes` and the fields those modes read; the rest is zero. */
export type TimexRequest = Partial<Omit<Timex, 'time'>> & { modes: number; time?: { tv_sec: number; tv_usec: number } };

export type TimexResult =
  | { ok: true; /** TIME_* clock state. */ state: number; timex: Timex }
  | { ok: false; errno: number; /** errno name, e.g. EPERM. */ code: string; message: string };

export interface TimexSyscall {
  /** adjtimex(2): reads (modes = 0) or adjusts the kernel clock. */
  adjtimex(request: TimexRequest): TimexResult;
  /** clock_adjtime(CLOCK_REALTIME, ...): the same on a named clock; used for ADJ_SETOFFSET. */
  clockAdjtime(request: TimexRequest): TimexResult;
}

export function emptyTimex(): Timex {
  return {
    modes: 0, offset: 0, freq: 0, maxerror: 0, esterror: 0, status: 0, constant: 0, precision: 0, tolerance: 0,
    time: { tv_sec: 0, tv_usec: 0 }, tick: 0, ppsfreq: 0, jitter: 0, shift: 0, stabil: 0, jitcnt: 0, calcnt: 0,
    errcnt: 0, stbcnt: 0, tai: 0,
  };
}

export function timexOf(request: TimexRequest): Timex {
  const timex = { ...emptyTimex(), ...request };
  timex.time = { tv_sec: request.time?.tv_sec ?? 0, tv_usec: request.time?.tv_usec ?? 0 };
  return timex;
}

export function errnoResult(errno: number, what: string): TimexResult {
  let code = `errno ${errno}`;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    // Unknown numbers keep the numeric form.
  }
  return { ok: false, errno, code, message: `${what} failed: ${code}` };
}

const CLOCK_REALTIME = 0;
const EPERM = 1;

interface Binding {
  adjtimex(timex: unknown): number;
  clockAdjtime(clockId: number, timex: unknown): number;
  errno(): number;
}

let cachedBinding: Binding | { error: string } | null = null;

function bind(): Binding | { error: string } {
  if (process.platform !== 'linux') return { error: `the kernel clock needs Linux (this is ${process.platform})` };
  if (process.arch !== 'x64' && process.arch !== 'arm64') {
    return { error: `struct timex is laid out for 64-bit Linux (x64, arm64) only; this is ${process.arch}` };
  }
  const loaded = loadLibc();
  if ('error' in loaded) return { error: loaded.error };
  const { koffi, libc } = loaded;
  try {
    // Anonymous types: koffi's type names are global, and this module may be loaded twice (tests).
    const timeval = koffi.struct({ tv_sec: 'long', tv_usec: 'long' });
    const timex = koffi.struct({
      modes: 'uint', offset: 'long', freq: 'long', maxerror: 'long', esterror: 'long', status: 'int',
      constant: 'long', precision: 'long', tolerance: 'long', time: timeval, tick: 'long', ppsfreq: 'long',
      jitter: 'long', shift: 'int', stabil: 'long', jitcnt: 'long', calcnt: 'long', errcnt: 'long',
      stbcnt: 'long', tai: 'int', reserved: koffi.array('int', 11),
    });
    // A layout mistake would write the wrong fields into the kernel: check it against the ABI.
    const offsets = timex.members ?? {};
    if (koffi.sizeof(timex) !== TIMEX_BYTES || offsets.status?.offset !== 40 || offsets.time?.offset !== 72 || offsets.tai?.offset !== 160) {
      return { error: `struct timex layout mismatch (${koffi.sizeof(timex)} bytes); refusing to touch the kernel clock` };
    }
    const pointer = koffi.inout(koffi.pointer(timex));
    const adjtimex = libc.func('adjtimex', 'int', [pointer]);
    const clockAdjtime = libc.func('clock_adjtime', 'int', ['int', pointer]);
    return {
      adjtimex: (value) => adjtimex(value) as number,
      clockAdjtime: (clockId, value) => clockAdjtime(clockId, value) as number,
      errno: () => koffi.errno(),
    };
  } catch (error) {
    return { error: `cannot bind adjtimex/clock_adjtime through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
}

function call(binding: Binding, name: string, invoke: (timex: Timex) => number, request: TimexRequest): TimexResult {
  const timex = timexOf(request);
  let state: number;
  try {
    state = invoke(timex);
  } catch (error) {
    // koffi rejects values it cannot convert; surface that like a failed call.
    return { ok: false, errno: 0, code: 'EBINDING', message: `${name}: ${(error as Error).message}` };
  }
  if (state < 0) return errnoResult(binding.errno(), name);
  timex.modes = request.modes;
  return { ok: true, state, timex };
}

/**
 * Wraps a syscall so that every call with modes != 0 is refused before it reaches the kernel: for
 * status tools and the live-kernel test, which may only read.
 */
export function readOnlySyscall(syscall: TimexSyscall): TimexSyscall {
  const refuse = (name: string, request: TimexRequest): TimexResult => ({
    ok: false,
    errno: EPERM,
    code: 'EPERM',
    message: `${name}: modes 0x${request.modes.toString(16)} refused by a read-only binding`,
  });
  return {
    adjtimex: (request) => (request.modes === 0 ? syscall.adjtimex(request) : refuse('adjtimex', request)),
    clockAdjtime: (request) => (request.modes === 0 ? syscall.clockAdjtime(request) : refuse('clock_adjtime', request)),
  };
}

/**
 * The real adjtimex/clock_adjtime. Never throws: on non-Linux, without koffi or with an unexpected
 * ABI it returns the reason. `readOnly` refuses every write (see readOnlySyscall).
 */
export function loadTimexSyscall(options: { readOnly?: boolean } = {}): TimexSyscall | { error: string } {
  cachedBinding ??= bind();
  const binding = cachedBinding;
  if ('error' in binding) return { error: binding.error };
  const syscall: TimexSyscall = {
    adjtimex: (request) => call(binding, 'adjtimex', (timex) => binding.adjtimex(timex), request),
    clockAdjtime: (request) => call(binding, 'clock_adjtime', (timex) => binding.clockAdjtime(CLOCK_REALTIME, timex), request),
  };
  return options.readOnly ? readOnlySyscall(syscall) : syscall;
}
