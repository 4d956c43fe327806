// A virtual-clock driver over the host clock: what the daemon runs with `--clock virtual`.
import type { ClockDriver, ClockState } from './driver.ts';
import type { HostClock } from './host.ts';
import { VirtualClock } from './virtual.ts';
import { VIRTUAL_CLOCK_PPM_MAX } from '../core/limits.ts';


export class VirtualClockDriver implements ClockDriver {
  readonly mode = 'virtual' as const;
  readonly frequencyPpmMax = VIRTUAL_CLOCK_PPM_MAX;
  private readonly clock: VirtualClock;

  constructor(
    private readonly host: HostClock,
    options: { initialOffsetNs: number; driftPpm: number },
  ) {
    this.clock = new VirtualClock({ ...options, startHostNs: host.nowNs() });
    host.onRefined((moveNs) => this.clock.hostShifted(moveNs));
  }

  nowNs(): bigint {
    return this.clock.readAtNs(this.host.nowNs());
  }

  atHostNs(hostNs: bigint): bigint {
    return this.clock.readAtNs(hostNs);
  }

  step(deltaNs: number): void {
    this.clock.step(deltaNs, this.host.nowNs());
  }

  slew(phaseNs: number, ratePpm: number): void {
    this.clock.slew(phaseNs, ratePpm, this.host.nowNs());
  }

  setFrequency(frequencyPpm: number): void {
    this.clock.setFrequency(frequencyPpm, this.host.nowNs());
  }

  markSynchronized(): void {
    // Nothing outside this process reads a virtual clock.
  }

  /** The configured oscillator error (--virtual-drift). */
  get driftPpm(): number {
    return this.clock.driftPpm;
  }

  state(): ClockState {
    const hostNs = this.host.nowNs();
    return {
      mode: 'virtual',
      hostOffsetNs: Math.round(this.clock.offsetAtNs(hostNs)),
      frequencyPpm: this.clock.frequencyPpm,
      slewRemainingNs: Math.round(this.clock.slewRemainingAtNs(hostNs)),
      slewRatePpm: this.clock.slewRateAtNs(hostNs),
      kernel: null,
    };
  }

  close(): void {}
}
