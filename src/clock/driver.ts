// The clock is reached only through this small driver interface (as chrony's local clock is):
// read it, step it, slew it, set its frequency. The driver does what it is told within its own
// hardware limits; the decisions (step or slew, how much frequency, when to refuse) are made by
// the pure discipline in src/core/sync/discipline.ts, shared with the simulator.

export type ClockMode = 'virtual' | 'system';

/**
 * What a virtual clock counts from: CLOCK_MONOTONIC_RAW (nothing steering the host clock moves
 * it) or, where RAW cannot be read, the host clock itself.
 */
export type VirtualBase = 'monotonic-raw' | 'host';

/** What a driver knows about its clock right now. */
export interface ClockState {
  mode: ClockMode;
  /** This clock minus the host's system clock, now. 0 in system mode. */
  hostOffsetNs: number;
  /** Frequency adjustment in effect (not counting a slew in progress), ppm; positive = faster. */
  frequencyPpm: number;
  /** Part of the last slew still to be applied. */
  slewRemainingNs: number;
  /** The rate at which the current slew runs, ppm (0 when none). */
  slewRatePpm: number;
  /** Kernel error estimates (system mode; null for the virtual clock). */
  kernel: KernelClockState | null;
  /** Virtual clock: its time base; null in system mode. */
  virtualBase: VirtualBase | null;
}

export interface KernelClockState {
  /** Kernel's maximum error estimate (timex.maxerror), in ns. */
  maxErrorNs: number;
  /** Kernel's estimated error (timex.esterror), in ns. */
  estErrorNs: number;
  /** STA_UNSYNC is set: the kernel (and anything reading it) considers the clock unsynchronized. */
  unsync: boolean;
  /** The kernel's frequency (timex.freq) in ppm, as read back. */
  frequencyPpm: number;
  /** timex.status as a number (STA_* bits). */
  status: number;
}

export interface ClockDriver {
  readonly mode: ClockMode;
  /** Largest |frequency + slew rate| this driver can apply, in ppm. */
  readonly frequencyPpmMax: number;
  /** This clock, now, in ns since the Unix epoch. */
  nowNs(): bigint;
  /** This clock at the given host time (host ns from HostClock); used for arrival stamps. */
  atHostNs(hostNs: bigint): bigint;
  /** Jumps the clock by `deltaNs` at once (positive = forward); cancels a slew in progress. */
  step(deltaNs: number): void;
  /**
   * Starts moving the clock by `phaseNs` gradually at `ratePpm` (already clamped by the caller),
   * on top of the frequency; replaces whatever is left of the previous slew.
   */
  slew(phaseNs: number, ratePpm: number): void;
  /** Sets the frequency adjustment (ppm, positive = faster); the caller keeps it within frequencyPpmMax. */
  setFrequency(frequencyPpm: number): void;
  /** Tells the clock (the kernel, for system mode) how good it is: clears STA_UNSYNC, sets error estimates. */
  markSynchronized(estErrorNs: number, maxErrorNs: number): void;
  state(): ClockState;
  /** Ends any slew in progress and leaves the frequency as it is (the kernel keeps it after exit). */
  close(): void;
}
