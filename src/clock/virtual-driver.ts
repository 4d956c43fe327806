// A virtual-clock driver over the host clock: what the daemon runs with `--clock virtual`.
import type { ClockDriver, ClockReport, CorrectionOutcome, DisciplinePolicy } from './driver.ts';
import type { HostClock } from './host.ts';
import { VirtualClock } from './virtual.ts';

export class VirtualClockDriver implements ClockDriver {
  readonly mode = 'virtual' as const;
  private readonly clock: VirtualClock;

  constructor(
    private readonly host: HostClock,
    options: { initialOffsetNs: number; driftPpm: number; policy: DisciplinePolicy },
  ) {
    this.clock = new VirtualClock({ ...options, startHostNs: host.nowNs() });
  }

  nowNs(): bigint {
    return this.clock.readAtNs(this.host.nowNs());
  }

  atHostNs(hostNs: bigint): bigint {
    return this.clock.readAtNs(hostNs);
  }

  correct(correctionNs: number): CorrectionOutcome {
    return this.clock.correct(correctionNs, this.host.nowNs());
  }

  report(): ClockReport {
    const hostNs = this.host.nowNs();
    return {
      mode: 'virtual',
      hostOffsetNs: Math.round(this.clock.offsetAtNs(hostNs)),
      frequencyPpm: this.clock.frequencyPpm,
      synchronized: this.clock.synchronized,
      slewRemainingNs: Math.round(this.clock.slewRemainingAtNs(hostNs)),
      steps: this.clock.steps,
      slews: this.clock.slews,
    };
  }
}
