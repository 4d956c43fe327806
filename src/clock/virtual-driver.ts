// A virtual-clock driver: what the daemon runs with `--clock virtual`. Its time base is
// CLOCK_MONOTONIC_RAW anchored once to the host's realtime (so it starts where the host clock is,
// plus --virtual-offset): nothing that steers the host clock (chronyd following this agent over
// NTP, a step by an operator) moves it. Where RAW cannot be read it falls back to the host clock
// itself, as before, and then moves with every slew and step of the host clock.
import type { ClockDriver, ClockState, VirtualBase } from './driver.ts';
import type { HostClock } from './host.ts';
import { VirtualClock } from './virtual.ts';
import { VIRTUAL_BASE_ANCHOR_READS, VIRTUAL_BASE_PAIR_READS, VIRTUAL_CLOCK_PPM_MAX } from '../core/limits.ts';

/** The host clock as this driver needs it (a HostClock, or one over fake sources in tests). */
export type VirtualHostClock = Pick<HostClock, 'nowNs' | 'onRefined'>;

/** Reads the host's CLOCK_REALTIME in ns. */
type RealtimeReader = Pick<HostClock, 'nowNs'>;

/** One instant read on both clocks: the host's realtime and the time base. */
interface Pair {
  hostNs: bigint;
  baseNs: bigint;
  widthNs: bigint;
}

export class VirtualClockDriver implements ClockDriver {
  readonly mode = 'virtual' as const;
  readonly frequencyPpmMax = VIRTUAL_CLOCK_PPM_MAX;
  readonly base: VirtualBase;
  private readonly clock: VirtualClock;
  /** The base's reading, in ns since the epoch: RAW plus the anchor, or the host clock itself. */
  private readonly baseNs: () => bigint;
  /**
   * The host's realtime as paired with the base: CLOCK_REALTIME read directly where it can be. The
   * HostClock's anchored reading notices a step of the host clock only at its next check (up to a
   * second later), and an arrival stamp from the kernel (already stepped) converted against the
   * stale anchor in that second lands the step's size in the future: a poll answered then gave
   * the master a sample off by half the step, and a provisional clock was stepped by it.
   */
  private readonly realtime: RealtimeReader;

  /**
   * `rawNs` reads CLOCK_MONOTONIC_RAW (see openMonotonicRaw); null falls back to the host clock
   * as the base. `initialOffsetNs` is the offset from the host clock at start either way.
   */
  constructor(
    private readonly host: VirtualHostClock,
    options: { initialOffsetNs: number; driftPpm: number; rawNs: (() => bigint) | null; realtimeNs?: (() => bigint) | null },
  ) {
    const { rawNs } = options;
    const realtimeNs = options.realtimeNs ?? null;
    this.realtime = realtimeNs === null ? host : { nowNs: realtimeNs };
    if (rawNs === null) {
      this.base = 'host';
      this.baseNs = () => host.nowNs();
      // A better anchor of the host clock is not a move of the host clock: compensate.
      host.onRefined((moveNs) => this.clock.hostShifted(moveNs));
    } else {
      this.base = 'monotonic-raw';
      let best: Pair | null = null;
      for (let read = 0; read < VIRTUAL_BASE_ANCHOR_READS; read += 1) {
        const pair = readPair(this.realtime, rawNs);
        if (best === null || pair.widthNs < best.widthNs) best = pair;
      }
      const anchorNs = (best as Pair).hostNs - (best as Pair).baseNs;
      this.baseNs = () => rawNs() + anchorNs;
      // No onRefined: a better estimate of the host's realtime changes hostOffsetNs, not this clock.
    }
    this.clock = new VirtualClock({ initialOffsetNs: options.initialOffsetNs, driftPpm: options.driftPpm, startHostNs: this.baseNs() });
  }

  /**
   * The host's realtime and the base at one instant (the same reading when the base is the host):
   * the tightest of a few brackets, so that a preemption or cold code between the readings (the
   * status is read once a second) costs a wider bracket rather than an error.
   */
  private pair(): Pair {
    if (this.base === 'host') {
      const hostNs = this.host.nowNs();
      return { hostNs, baseNs: hostNs, widthNs: 0n };
    }
    let best = readPair(this.realtime, this.baseNs);
    for (let read = 1; read < VIRTUAL_BASE_PAIR_READS; read += 1) {
      const pair = readPair(this.realtime, this.baseNs);
      if (pair.widthNs < best.widthNs) best = pair;
    }
    return best;
  }

  nowNs(): bigint {
    return this.clock.readAtNs(this.baseNs());
  }

  /**
   * An arrival stamp in host realtime (kernel or user space) on this clock: moved back from now by
   * its age. The age is microseconds to milliseconds, so the host's rate against RAW (ppm) does not
   * matter here.
   */
  atHostNs(hostNs: bigint): bigint {
    if (this.base === 'host') return this.clock.readAtNs(hostNs);
    const now = this.pair();
    return this.clock.readAtNs(now.baseNs - (now.hostNs - hostNs));
  }

  step(deltaNs: number): void {
    this.clock.step(deltaNs, this.baseNs());
  }

  slew(phaseNs: number, ratePpm: number): void {
    this.clock.slew(phaseNs, ratePpm, this.baseNs());
  }

  setFrequency(frequencyPpm: number): void {
    this.clock.setFrequency(frequencyPpm, this.baseNs());
  }

  markSynchronized(): void {
    // Nothing outside this process reads a virtual clock.
  }

  /** The configured oscillator error (--virtual-drift), against the base. */
  get driftPpm(): number {
    return this.clock.driftPpm;
  }

  state(): ClockState {
    const { hostNs, baseNs } = this.pair();
    return {
      mode: 'virtual',
      // This clock minus the host's realtime at the same instant.
      hostOffsetNs: Number(this.clock.readAtNs(baseNs) - hostNs),
      frequencyPpm: this.clock.frequencyPpm,
      slewRemainingNs: Math.round(this.clock.slewRemainingAtNs(baseNs)),
      slewRatePpm: this.clock.slewRateAtNs(baseNs),
      kernel: null,
      virtualBase: this.base,
    };
  }

  close(): void {}
}

/** Host, base, host: the base's reading paired with the middle of the host's bracket around it. */
function readPair(host: RealtimeReader, baseNs: () => bigint): Pair {
  const beforeNs = host.nowNs();
  const base = baseNs();
  const afterNs = host.nowNs();
  return { hostNs: (beforeNs + afterNs) / 2n, baseNs: base, widthNs: afterNs - beforeNs };
}
