// The clock is reached only through this small driver interface (as chrony's local clock is):
// the agent reads it, converts arrival times, and hands it corrections. Step-versus-slew policy
// lives here, next to the clock it protects.

export type ClockMode = 'virtual' | 'system';

export type CorrectionOutcome = 'step' | 'slew';

export interface ClockReport {
  mode: ClockMode;
  /** This clock minus the host's system clock, now. 0 in system mode. */
  hostOffsetNs: number;
  /** Rate of this clock relative to the host's (virtual) or to true time (system), in ppm. */
  frequencyPpm: number;
  /** True once a first correction has been applied. */
  synchronized: boolean;
  /** Part of the last slew still to be applied. */
  slewRemainingNs: number;
  steps: number;
  slews: number;
}

export interface ClockDriver {
  readonly mode: ClockMode;
  /** This clock, now, in ns since the Unix epoch. */
  nowNs(): bigint;
  /** This clock at the given host time (host ns from HostClock); used for arrival stamps. */
  atHostNs(hostNs: bigint): bigint;
  /** Moves the clock by `correctionNs` (step or slew per policy). */
  correct(correctionNs: number): CorrectionOutcome;
  report(): ClockReport;
}

export interface DisciplinePolicy {
  /** Corrections at or above this are stepped; smaller ones are slewed. */
  stepThresholdNs: number;
  /** Slews never change the rate by more than this. */
  slewPpmMax: number;
}
