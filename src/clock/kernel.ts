// The Linux kernel clock driver (`--clock system`): disciplines CLOCK_REALTIME through adjtimex,
// the way chrony's sys_generic/sys_linux do. Host time IS the system clock here, so reads and
// arrival stamps pass through unchanged.
//
// - Frequency: ADJ_FREQUENCY (ppm * 2^16), within the kernel's +-500 ppm.
// - Slew: the kernel frequency is raised (or lowered) by the slew rate for |phase| / rate, then put
//   back by a timer this driver owns. The kernel PLL (ADJ_OFFSET) is not used: the discipline in
//   src/core/sync does phase and frequency, and two loops on one clock fight.
// - Step: clock_adjtime(ADJ_SETOFFSET | ADJ_NANO), relative and atomic, so no time passes between
//   reading the clock and writing it. The kernel then marks itself unsynchronized (ntp_clear sets
//   STA_UNSYNC and maxerror = 16 s): call markSynchronized again once the clock is good.
//
// Write failures (lost capability, EINVAL) never throw: they go to `onError` and are counted,
// because some happen in a timer callback where a throw would take the process down.
import type { ClockDriver, ClockState, KernelClockState } from './driver.ts';
import type { HostClock } from './host.ts';
import {
  ADJ_ESTERROR,
  ADJ_FREQUENCY,
  ADJ_MAXERROR,
  ADJ_NANO,
  ADJ_OFFSET,
  ADJ_OFFSET_SINGLESHOT,
  ADJ_SETOFFSET,
  ADJ_STATUS,
  FREQ_SCALE,
  KERNEL_ERROR_US_MAX,
  KERNEL_FREQUENCY_PPM_MAX,
  STA_DEL,
  STA_FLL,
  STA_FREQHOLD,
  STA_INS,
  STA_PLL,
  STA_PPSFREQ,
  STA_PPSTIME,
  STA_RONLY,
  STA_UNSYNC,
  TICK_US_DEFAULT,
  type Timex,
  type TimexResult,
  type TimexSyscall,
} from './timex.ts';
import { KERNEL_SLEW_END_EARLY_MS, KERNEL_SLEW_END_RETRY_MS } from '../core/limits.ts';

const FREQ_SCALED_MAX = KERNEL_FREQUENCY_PPM_MAX * FREQ_SCALE;
/** setTimeout's longest delay; longer slews re-arm (a 3 s phase at 1 ppm takes 35 days). */
const TIMER_DELAY_MS_MAX = 2_147_483_647;
/** Status bits kept across opening the driver: sync state and a pending leap second. PLL, FLL, PPS and FREQHOLD go. */
const STATUS_KEPT_AT_OPEN = STA_UNSYNC | STA_INS | STA_DEL;
/** Kernel feedback loops that would fight our discipline. */
const KERNEL_LOOPS = STA_PLL | STA_FLL | STA_PPSFREQ | STA_PPSTIME | STA_FREQHOLD;

/** Host time as this driver needs it (a HostClock, or a fake in tests). */
export type HostTimeSource = Pick<HostClock, 'nowNs' | 'monoMs'>;

/** Monotonic time and timers for the slew; injectable so tests control when a slew ends. */
export interface SlewScheduler {
  monoMs(): number;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export class KernelClockError extends Error {
  constructor(
    /** errno name (EPERM, EINVAL) or EBINDING / EINPUT. */
    readonly code: string,
    /** What the driver was doing: 'setFrequency', 'slew', 'slew end', 'step', ... */
    readonly operation: string,
    message: string,
  ) {
    super(message);
    this.name = 'KernelClockError';
  }
}

export interface KernelClockOptions {
  /**
   * Called after the clock was stepped by `deltaNs`. The host clock's realtime anchor must move by
   * the same amount (HostClock notices steps above 5 ms only, and only within a second).
   */
  onStepped?: (deltaNs: number) => void;
  /** Called for every failed write, with an operator-readable message; default: only counted. */
  onError?: (error: KernelClockError) => void;
  scheduler?: SlewScheduler;
}

export type KernelClockOpenResult = { ok: true; driver: KernelClockDriver; warnings: string[] } | { ok: false; reason: string };

interface Slew {
  /** Phase to apply from startMonoMs on, ns, signed. */
  phaseNs: number;
  /** Rate the caller asked for (magnitude), kept to re-plan when the frequency changes. */
  requestedRatePpm: number;
  /** Rate actually added to the kernel frequency, signed (after clamping and 2^-16 ppm quantization). */
  ratePpm: number;
  /** Kernel frequency while slewing, ppm. */
  kernelPpm: number;
  startMonoMs: number;
  /** Planned length on the monotonic clock. */
  durationMs: number;
}

function clampScaled(freqScaled: number): number {
  return Math.min(FREQ_SCALED_MAX, Math.max(-FREQ_SCALED_MAX, freqScaled));
}

/** ns to the kernel's µs error fields: rounded up, saturated at 16 s; garbage means "unknown" (16 s). */
function errorUs(errorNs: number): number {
  if (!Number.isFinite(errorNs) || errorNs < 0) return KERNEL_ERROR_US_MAX;
  return Math.min(KERNEL_ERROR_US_MAX, Math.ceil(errorNs / 1000));
}

function kernelState(timex: Timex): KernelClockState {
  return {
    maxErrorNs: timex.maxerror * 1000,
    estErrorNs: timex.esterror * 1000,
    unsync: (timex.status & STA_UNSYNC) !== 0,
    frequencyPpm: timex.freq / FREQ_SCALE,
    status: timex.status,
  };
}

function defaultScheduler(host: HostTimeSource): SlewScheduler {
  return {
    monoMs: () => host.monoMs(),
    setTimer: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
    clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
}

export class KernelClockDriver implements ClockDriver {
  readonly mode = 'system' as const;
  readonly frequencyPpmMax = KERNEL_FREQUENCY_PPM_MAX;

  /** Base frequency written to the kernel, ppm * 2^16 (what we apply when not slewing). */
  private baseScaled: number;
  private slewInProgress: Slew | null = null;
  /**
   * What the last slew left undone (positive) or did too much (negative: the end timer fired
   * late and the slew rate ran for longer than planned). Shown as slewRemainingNs until the next
   * slew or step; 0 when a slew ended on time.
   */
  private residualNs = 0;
  private timer: unknown = null;
  private lastKernel: KernelClockState;
  private closed = false;
  private readonly scheduler: SlewScheduler;

  steps = 0;
  slews = 0;
  writeErrors = 0;
  lastError: KernelClockError | null = null;

  /** Use KernelClockDriver.open(), which prepares the kernel first. */
  private constructor(
    private readonly syscall: TimexSyscall,
    private readonly host: HostTimeSource,
    private readonly options: KernelClockOptions,
    initial: Timex,
  ) {
    this.baseScaled = clampScaled(initial.freq);
    this.lastKernel = kernelState(initial);
    this.scheduler = options.scheduler ?? defaultScheduler(host);
  }

  /**
   * Reads the kernel clock and turns off its own loops (PLL, FLL, PPS) so they do not fight ours,
   * as chrony does at start: first a zero PLL offset with the PLL on (the kernel drops whatever
   * offset a previous daemon left it to apply), then the PLL off. Sets ADJ_NANO, so STA_NANO is on
   * from the start, as a step would set it anyway. Keeps the frequency, STA_UNSYNC and the error
   * estimates: a clock that stayed synchronized across a restart is still known to be.
   */
  static open(syscall: TimexSyscall, host: HostTimeSource, options: KernelClockOptions = {}): KernelClockOpenResult {
    const read = syscall.adjtimex({ modes: 0 });
    if (!read.ok) return { ok: false, reason: `cannot read the kernel clock: ${read.message}` };
    const before = read.timex;
    const warnings: string[] = [];
    if (before.tick !== TICK_US_DEFAULT) {
      warnings.push(`the kernel tick is ${before.tick} µs, not ${TICK_US_DEFAULT} (changed with adjtimex --tick?); it is left as it is and adds ${((before.tick - TICK_US_DEFAULT) * 100).toFixed(0)} ppm to every frequency shown`);
    }
    if ((before.status & KERNEL_LOOPS) !== 0 || before.offset !== 0) {
      warnings.push(`the kernel's own clock loop was active (status 0x${before.status.toString(16)}, offset ${before.offset}; left by another time daemon?); turned off`);
    }
    const kept = before.status & STATUS_KEPT_AT_OPEN;
    const reset = syscall.adjtimex({ modes: ADJ_OFFSET | ADJ_STATUS | ADJ_NANO, status: kept | STA_PLL, offset: 0 });
    if (!reset.ok) return { ok: false, reason: writeFailureReason(reset) };
    const off = syscall.adjtimex({ modes: ADJ_STATUS, status: kept });
    if (!off.ok) return { ok: false, reason: writeFailureReason(off) };
    // An adjtime(3)-style offset left by another program (up to +-0.5 s at 500 ppm) would keep
    // slewing on top of our frequency until the first step: cancel it, as chrony does.
    const singleShot = syscall.adjtimex({ modes: ADJ_OFFSET_SINGLESHOT, offset: 0 });
    if (!singleShot.ok) return { ok: false, reason: writeFailureReason(singleShot) };
    const driver = new KernelClockDriver(syscall, host, options, off.timex);
    return { ok: true, driver, warnings };
  }

  nowNs(): bigint {
    return this.host.nowNs();
  }

  atHostNs(hostNs: bigint): bigint {
    return hostNs;
  }

  state(): ClockState {
    const read = this.syscall.adjtimex({ modes: 0 });
    if (read.ok) this.lastKernel = kernelState(read.timex);
    const slew = this.slewInProgress;
    return {
      mode: 'system',
      hostOffsetNs: 0,
      frequencyPpm: this.baseScaled / FREQ_SCALE,
      slewRemainingNs: Math.round(slew ? this.remainingNs(slew, this.scheduler.monoMs()) : this.residualNs),
      // A magnitude, as the virtual driver reports it; the direction is slewRemainingNs's sign.
      slewRatePpm: slew ? Math.abs(slew.ratePpm) : 0,
      kernel: { ...this.lastKernel },
      virtualBase: null,
    };
  }

  setFrequency(frequencyPpm: number): void {
    if (this.closed) return;
    if (!Number.isFinite(frequencyPpm)) return this.reject('setFrequency', `frequency ${frequencyPpm} ppm is not a number`);
    const baseScaled = clampScaled(Math.round(frequencyPpm * FREQ_SCALE));
    const slew = this.slewInProgress;
    if (slew) {
      // Same slew, re-planned around the new base (its rate may have to shrink to stay within 500 ppm).
      this.startSlew('setFrequency', baseScaled, this.remainingNs(slew, this.scheduler.monoMs()), slew.requestedRatePpm);
      return;
    }
    if (this.writeFrequency('setFrequency', baseScaled)) this.baseScaled = baseScaled;
  }

  slew(phaseNs: number, ratePpm: number): void {
    if (this.closed) return;
    if (!Number.isFinite(phaseNs) || !Number.isFinite(ratePpm)) return this.reject('slew', `slew of ${phaseNs} ns at ${ratePpm} ppm is not a number`);
    if (this.startSlew('slew', this.baseScaled, phaseNs, Math.abs(ratePpm))) this.slews += 1;
  }

  step(deltaNs: number): void {
    if (this.closed) return;
    if (!Number.isFinite(deltaNs)) return this.reject('step', `step of ${deltaNs} ns is not a number`);
    // The step replaces the slew: end it first so that the kernel runs at the base frequency.
    if (this.slewInProgress) this.startSlew('step', this.baseScaled, 0, 0);
    this.residualNs = 0;
    const wholeNs = Math.round(deltaNs);
    if (wholeNs === 0) return;
    // The kernel wants a normalized timespec: 0 <= tv_nsec < 1e9, so -1.5 s is { -2 s, 0.5 s }.
    // In bigint: a step of decades (a box at 1970) is ~1.8e18 ns, where float64 division and
    // multiplication round by hundreds of ns and could leave tv_nsec negative or >= 1e9.
    const { seconds, nanoseconds } = timespecOf(wholeNs);
    const result = this.syscall.clockAdjtime({ modes: ADJ_SETOFFSET | ADJ_NANO, time: { tv_sec: seconds, tv_usec: nanoseconds } });
    if (!this.check('step', result)) return;
    this.steps += 1;
    this.options.onStepped?.(wholeNs);
  }

  markSynchronized(estErrorNs: number, maxErrorNs: number): void {
    if (this.closed) return;
    // ADJ_STATUS replaces the whole status, so start from the kernel's (a leap second flag set by
    // someone else stays). STA_NANO is read-only here; ADJ_NANO at open and every step set it.
    const read = this.syscall.adjtimex({ modes: 0 });
    if (!this.check('markSynchronized', read)) return;
    const status = read.timex.status & ~STA_RONLY & ~STA_UNSYNC & ~KERNEL_LOOPS;
    const esterror = errorUs(estErrorNs);
    const maxerror = Math.max(esterror, errorUs(maxErrorNs));
    this.check('markSynchronized', this.syscall.adjtimex({ modes: ADJ_STATUS | ADJ_ESTERROR | ADJ_MAXERROR, status, esterror, maxerror }));
  }

  close(): void {
    if (this.closed) return;
    if (this.slewInProgress) this.startSlew('close', this.baseScaled, 0, 0);
    this.cancelTimer();
    this.closed = true;
  }

  /** Phase still to apply; negative once the slew has run past its planned end. */
  private remainingNs(slew: Slew, monoNowMs: number): number {
    const elapsedMs = Math.max(0, monoNowMs - slew.startMonoMs);
    // ppm * ms = ns. The monotonic clock itself runs at the slewed kernel rate, hence the division.
    return slew.phaseNs - (slew.ratePpm * elapsedMs) / (1 + slew.kernelPpm * 1e-6);
  }

  /**
   * Writes base + rate to the kernel and starts the end timer; phase 0 (or no room for a rate)
   * ends any slew. Commits nothing when the write fails: the kernel still runs the old plan.
   */
  private startSlew(operation: string, baseScaled: number, phaseNs: number, requestedRatePpm: number): boolean {
    const sign = Math.sign(phaseNs);
    // Room left under the 500 ppm limit on the side this slew pushes.
    const roomPpm = Math.max(0, KERNEL_FREQUENCY_PPM_MAX - (sign * baseScaled) / FREQ_SCALE);
    const ratePpm = Math.min(requestedRatePpm, roomPpm);
    const kernelScaled = clampScaled(Math.round(baseScaled + sign * ratePpm * FREQ_SCALE));
    if (!this.writeFrequency(operation, kernelScaled)) return false;
    const startMonoMs = this.scheduler.monoMs();
    this.cancelTimer();
    this.baseScaled = baseScaled;
    const appliedRatePpm = (kernelScaled - baseScaled) / FREQ_SCALE;
    if (appliedRatePpm === 0) {
      // Nothing to do, or the base frequency already sits at the limit on this side: the phase
      // stays owed and shows as slewRemainingNs.
      this.slewInProgress = null;
      this.residualNs = phaseNs;
      return true;
    }
    const kernelPpm = kernelScaled / FREQ_SCALE;
    const durationMs = (Math.abs(phaseNs) / Math.abs(appliedRatePpm)) * (1 + kernelPpm * 1e-6);
    this.slewInProgress = { phaseNs, requestedRatePpm, ratePpm: appliedRatePpm, kernelPpm, startMonoMs, durationMs };
    this.residualNs = 0;
    this.armTimer(durationMs);
    return true;
  }

  private onSlewTimer(): void {
    this.timer = null;
    const slew = this.slewInProgress;
    if (!slew || this.closed) return;
    const leftMs = slew.durationMs - (this.scheduler.monoMs() - slew.startMonoMs);
    if (leftMs > KERNEL_SLEW_END_EARLY_MS) {
      this.armTimer(leftMs);
      return;
    }
    if (!this.writeFrequency('slew end', this.baseScaled)) {
      // The kernel is still slewing: keep accounting for it and try again.
      this.timer = this.scheduler.setTimer(() => this.onSlewTimer(), KERNEL_SLEW_END_RETRY_MS);
      return;
    }
    // Timers fire late: whatever ran past the plan is recorded (negative), not hidden.
    this.residualNs = this.remainingNs(slew, this.scheduler.monoMs());
    this.slewInProgress = null;
  }

  private armTimer(delayMs: number): void {
    this.cancelTimer();
    this.timer = this.scheduler.setTimer(() => this.onSlewTimer(), Math.min(TIMER_DELAY_MS_MAX, Math.max(0, delayMs)));
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.scheduler.clearTimer(this.timer);
    this.timer = null;
  }

  private writeFrequency(operation: string, freqScaled: number): boolean {
    return this.check(operation, this.syscall.adjtimex({ modes: ADJ_FREQUENCY, freq: freqScaled }));
  }

  private check(operation: string, result: TimexResult): result is Extract<TimexResult, { ok: true }> {
    if (result.ok) {
      this.lastKernel = kernelState(result.timex);
      return true;
    }
    this.fail(new KernelClockError(result.code, operation, `kernel clock ${operation}: ${result.message}`));
    return false;
  }

  private reject(operation: string, message: string): void {
    this.fail(new KernelClockError('EINPUT', operation, `kernel clock ${operation}: ${message}; ignored`));
  }

  private fail(error: KernelClockError): void {
    this.writeErrors += 1;
    this.lastError = error;
    this.options.onError?.(error);
  }
}

function writeFailureReason(result: Extract<TimexResult, { ok: false }>): string {
  const hint = result.code === 'EPERM' ? '; run as root or grant CAP_SYS_TIME (AmbientCapabilities=CAP_SYS_TIME in the unit)' : '';
  return `cannot adjust the kernel clock: ${result.message}${hint}`;
}

/** A whole number of ns as a normalized timespec (seconds floored, 0 <= nanoseconds < 1e9), exactly. */
export function timespecOf(wholeNs: number): { seconds: number; nanoseconds: number } {
  const totalNs = BigInt(wholeNs);
  let seconds = totalNs / 1_000_000_000n;
  let nanoseconds = totalNs - seconds * 1_000_000_000n;
  // bigint division truncates toward zero; a timespec floors.
  if (nanoseconds < 0n) {
    seconds -= 1n;
    nanoseconds += 1_000_000_000n;
  }
  return { seconds: Number(seconds), nanoseconds: Number(nanoseconds) };
}
