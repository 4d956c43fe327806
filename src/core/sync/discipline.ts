// The clock discipline: what a node does with the corrections its master sends. Pure (times are
// passed in), so the daemon and the simulator run the same loop over different clocks.
//
// - Initial synchronization: the first corrections are stepped in full (the first measurements of
//   freshly started processes are the noisiest, so one is not trusted alone), but backwards only
//   once, like chrony's makestep: a later backward one is slewed, so that a clock never reads the
//   same time twice after its first step back.
// - Then a proportional-integral loop: each correction is slewed in part (the phase gain filters
//   one round's measurement noise) and feeds a frequency estimate (the integral), so the clock runs
//   at the cluster's rate between rounds and keeps running at it when the master is lost.
// - A synchronized clock never steps backwards; a forward correction at or above the step
//   threshold is stepped, everything else is slewed at no more than the slew limit.
// - Except while its time is provisional (the provisional window after its first correction, see
//   PROVISIONAL_WINDOW_MS_DEFAULT): the cluster is still forming, its reference may move (back,
//   too) when boxes that boot later outvote a pair that met first, so a correction of a
//   millisecond or more (PROVISIONAL_STEP_NS_MIN) is stepped in either direction, and the panic
//   threshold does not apply yet. The
//   discipline keeps the sum of what it moved the clock meanwhile (provisionalNs), so that the
//   master can choose the reference from the clocks as they were.
// - A correction above the panic threshold after synchronization is refused.
import {
  FREQUENCY_GAIN,
  FREQUENCY_INPUT_NS_MIN,
  FREQUENCY_INPUT_PPM_MAX,
  FREQUENCY_INTERVAL_MS_MAX,
  FREQUENCY_INTERVAL_POLLS_MAX,
  FREQUENCY_PPM_MAX,
  INITIAL_STEPS,
  OFFSET_RMS_WEIGHT,
  PROVISIONAL_NS_MAX,
  PROVISIONAL_STEP_NS_MIN,
  PHASE_GAIN,
  SPIKE_NS_MIN,
  SPIKE_RMS_FACTOR,
  UPSTREAM_BURST_INTERVAL_MS,
  UPSTREAM_RATE_INTERVAL_SHARE_MIN,
} from '../limits.ts';

/**
 * Where a correction comes from, when not the cluster's rounds: the master's own correction onto
 * its upstream (issue 18) arrives every upstream poll interval, already filtered by the NTP
 * client (so no spike hold), and, once the cluster's time is established, is only ever slewed
 * (`slewOnly`: never a step, and beyond the panic threshold refused even while provisional).
 */
export interface CorrectionSource {
  source?: 'upstream';
  slewOnly?: boolean;
  /** How often corrections of this source come (the upstream's poll interval), ms. */
  pollIntervalMs?: number;
}

export interface DisciplineConfig {
  /** Once synchronized, forward corrections at least this large are stepped; 0 = never step. */
  stepThresholdNs: number;
  /** Slews never change the rate by more than this (further limited by the driver). */
  slewPpmMax: number;
  /** Once synchronized, larger corrections are refused (panic threshold); Infinity = never. */
  correctionNsMax: number;
  /** Largest |frequency + slew rate| the clock driver can apply. */
  driverPpmMax: number;
  /** The cluster's poll interval: corrections come about this often. */
  pollIntervalMs: number;
  /** How long after its first correction the clock's time stays provisional; 0 = never provisional. */
  provisionalWindowMs: number;
}

export type DisciplineAction =
  | { kind: 'step'; deltaNs: number; frequencyPpm: number; why: 'initial' | 'threshold' | 'provisional' }
  | { kind: 'slew'; phaseNs: number; ratePpm: number; frequencyPpm: number }
  /** A correction far beyond this clock's recent noise, held once (see correct()). */
  | { kind: 'hold'; correctionNs: number; limitNs: number }
  | { kind: 'refuse'; correctionNs: number; correctionNsMax: number };

export interface DisciplineState {
  synchronized: boolean;
  /**
   * While the clock's time is provisional: how far the discipline has moved it since the start
   * (steps, slews and the frequency's effect), so its raw time is its time minus this. null once
   * locked (or started synchronized).
   */
  provisionalNs: number | null;
  /** Frequency adjustment in effect, ppm (positive = the clock is sped up). */
  frequencyPpm: number;
  /** This clock minus the cluster's time at the last accepted correction (= -correction). */
  lastOffsetNs: number | null;
  /** Root mean square of recent offsets (accepted corrections), once synchronized. */
  rmsOffsetNs: number | null;
  /** Monotonic ms of the last accepted correction. */
  lastUpdateMs: number | null;
  updates: number;
  steps: number;
  slews: number;
  refused: number;
  /** Corrections held as spikes (far beyond the recent noise, not confirmed by the next one). */
  spikes: number;
  lastRefused: { correctionNs: number; atMs: number } | null;
}

export interface DisciplineStart {
  /** Frequency to start from (a drift file), ppm. */
  frequencyPpm?: number;
  /** Start synchronized (e.g. the kernel clock kept its synchronization across a restart). */
  synchronized?: boolean;
  /**
   * The start frequency was learned by this loop (a drift file), so acquisition is skipped. A
   * frequency merely found in the kernel may be a previous run's slew cut short by a crash.
   */
  frequencyLearned?: boolean;
}

function clamp(value: number, limit: number): number {
  return Math.max(-limit, Math.min(limit, value));
}

export class Discipline {
  private readonly config: DisciplineConfig;
  private readonly frequencyPpmMax: number;
  private frequency: number;
  private synchronized: boolean;
  private initialCorrections = 0;
  /** This clock has stepped backwards (allowed once, before synchronization). */
  private steppedBack = false;
  /** Updates since synchronization (for acquisition); a saved frequency skips most of it. */
  private lockUpdates = 0;
  private lastUpdateMs: number | null = null;
  private lastOffsetNs: number | null = null;
  /** Exponentially weighted mean of squared offsets (null until the first synchronized one). */
  private meanSquareOffset: number | null = null;
  private counts = { updates: 0, steps: 0, slews: 0, refused: 0, spikes: 0 };
  /** The previous correction was held as a spike: the next large one confirms it. */
  private spikeHeld = false;
  private lastRefused: { correctionNs: number; atMs: number } | null = null;
  /** Monotonic ms of the first correction (the provisional window runs from it). */
  private firstCorrectionMs: number | null = null;
  /** What the discipline has moved the clock by while provisional; null once locked. */
  private provisionalNs: number | null;
  /** Where the last accepted correction came from: a change of reference starts acquisition over. */
  private lastSource: 'cluster' | 'upstream' = 'cluster';
  /**
   * Rate estimates taken since the reference changed (null: it never did). The frequency kept from
   * the old reference is no estimate of the new one's rate, so it gets no weight in the running
   * mean: the first estimate against the new reference is taken whole, the n-th by 1/n.
   */
  private ratesSinceReference: number | null = null;
  /** The frequency the clock started with: its raw rate (the frequency's effect counts from it). */
  private readonly startFrequency: number;

  constructor(config: DisciplineConfig, start: DisciplineStart = {}) {
    this.config = config;
    // Leave room for a slew on top of the frequency.
    this.frequencyPpmMax = Math.min(FREQUENCY_PPM_MAX, config.driverPpmMax / 2);
    const initial = start.frequencyPpm ?? 0;
    this.frequency = Number.isFinite(initial) ? clamp(initial, this.frequencyPpmMax) : 0;
    this.synchronized = start.synchronized ?? false;
    this.startFrequency = this.frequency;
    // A clock that kept its synchronization across a restart is locked: its time is established.
    this.provisionalNs = this.synchronized || config.provisionalWindowMs <= 0 ? null : 0;
    // A frequency from the drift file is already close: start with the steady gains.
    if (start.frequencyLearned === true && Number.isFinite(initial)) this.lockUpdates = Math.ceil(1 / FREQUENCY_GAIN);
  }

  get policy(): Readonly<DisciplineConfig> {
    return this.config;
  }

  get isSynchronized(): boolean {
    return this.synchronized;
  }

  /** The clock's time is still provisional (see the provisional window). */
  get isProvisional(): boolean {
    return this.provisionalNs !== null;
  }

  /**
   * While the clock's time is provisional, how far the discipline has moved it by `nowMs`
   * (monotonic), with `slewRemainingNs` of the last slew still to go; null once locked. The shell
   * tells the core this before each input, so a REPLY carries it as of its sending.
   */
  provisionalNsAt(nowMs: number, slewRemainingNs: number): number | null {
    if (this.provisionalNs === null) return null;
    const frequencyNs = this.provisionalMarkMs === null ? 0 : (this.provisionalMarkFrequency - this.startFrequency) * (nowMs - this.provisionalMarkMs);
    return clamp(this.provisionalNs + frequencyNs - slewRemainingNs, PROVISIONAL_NS_MAX);
  }

  get frequencyPpm(): number {
    return this.frequency;
  }

  /** The slew rate available now: the configured limit, within what the driver has left. */
  slewRatePpm(): number {
    return Math.max(0, Math.min(this.config.slewPpmMax, this.config.driverPpmMax - Math.abs(this.frequency)));
  }

  /**
   * A correction from the master ("move your clock by this much"), received at monotonic `nowMs`;
   * `slewRemainingNs` is what the clock still had to slew of the previous correction (a correction
   * measured before that was done includes it, and it says nothing about the frequency).
   * Returns what to do with the clock; the caller carries it out through its driver.
   */
  correct(correctionNs: number, nowMs: number, slewRemainingNs = 0, source: CorrectionSource = {}): DisciplineAction {
    // The window ends at the first correction past it: decided as a locked clock.
    if (this.provisionalNs !== null && this.firstCorrectionMs !== null && nowMs - this.firstCorrectionMs >= this.config.provisionalWindowMs) this.provisionalNs = null;
    const action = this.decide(correctionNs, nowMs, slewRemainingNs, source);
    this.trackProvisional(action, nowMs, slewRemainingNs);
    return action;
  }

  /**
   * Adds what the action moves the clock by to provisionalNs: its phase (a step or a slew drops
   * what was left of the previous slew, which never moved the clock), and what the frequency
   * since the previous correction added beyond the starting rate (ppm * ms = ns).
   */
  private trackProvisional(action: DisciplineAction, nowMs: number, slewRemainingNs: number): void {
    if (this.provisionalNs === null) return;
    this.firstCorrectionMs ??= nowMs;
    if (this.provisionalMarkMs !== null) this.provisionalNs += (this.provisionalMarkFrequency - this.startFrequency) * (nowMs - this.provisionalMarkMs);
    if (action.kind === 'step') this.provisionalNs += action.deltaNs - slewRemainingNs;
    else if (action.kind === 'slew') this.provisionalNs += action.phaseNs - slewRemainingNs;
    this.provisionalNs = clamp(this.provisionalNs, PROVISIONAL_NS_MAX);
    this.provisionalMarkMs = nowMs;
    this.provisionalMarkFrequency = this.frequency;
  }

  private provisionalMarkMs: number | null = null;
  private provisionalMarkFrequency = 0;

  private get provisional(): boolean {
    return this.provisionalNs !== null;
  }

  private decide(correctionNs: number, nowMs: number, slewRemainingNs: number, source: CorrectionSource): DisciplineAction {
    if (!Number.isFinite(correctionNs)) return this.refuse(correctionNs, nowMs);
    const provisional = this.provisional;
    const slewOnly = source.slewOnly === true;
    if ((this.synchronized && !provisional) || slewOnly) {
      if (Math.abs(correctionNs) > this.config.correctionNsMax) return this.refuse(correctionNs, nowMs);
    }
    // The reference moved (later boxes outvoted where the cluster met) while the cluster forms.
    const provisionalStep = !slewOnly && provisional && this.config.stepThresholdNs > 0 && Math.abs(correctionNs) >= Math.min(this.config.stepThresholdNs, PROVISIONAL_STEP_NS_MIN);
    const provisionalStepBack = provisionalStep && correctionNs < 0;

    if (!this.synchronized) {
      this.initialCorrections += 1;
      if (this.initialCorrections >= INITIAL_STEPS) this.synchronized = true;
      this.accept(correctionNs, nowMs, null);
      if (slewOnly || (correctionNs < 0 && this.steppedBack && !provisionalStepBack)) {
        // Backwards a second time: slewed in full (time runs slower, never back).
        this.counts.slews += 1;
        return { kind: 'slew', phaseNs: correctionNs, ratePpm: this.slewRatePpm(), frequencyPpm: this.frequency };
      }
      if (correctionNs < 0) this.steppedBack = true;
      this.counts.steps += 1;
      return { kind: 'step', deltaNs: correctionNs, frequencyPpm: this.frequency, why: 'initial' };
    }

    // A new reference (a master that starts following its upstream, or stops): the frequency
    // learned against the old one may be ppm off the new one, and the steady gains would take many
    // corrections (minutes at an upstream's 16 s) to find out. Acquire again, and do not read a
    // frequency out of the interval since the old reference's last correction.
    const sourceKind = source.source ?? 'cluster';
    const referenceChanged = sourceKind !== this.lastSource;
    this.lastSource = sourceKind;
    if (referenceChanged) {
      this.lockUpdates = 0;
      this.ratesSinceReference = 0;
    }
    const intervalMs = this.lastUpdateMs === null || referenceChanged ? null : nowMs - this.lastUpdateMs;
    // ppm * ms = ns: beyond this a correction is a jump of the cluster's time (a new master, a
    // healed partition), not the noise and drift of one interval.
    const jumpLimitNs = Math.max(FREQUENCY_INPUT_NS_MIN, FREQUENCY_INPUT_PPM_MAX * (intervalMs ?? 0));
    // A correction far beyond this clock's recent noise is most likely one measurement spoiled by
    // scheduling (a process woken late on one side): held once, like ntpd's popcorn spike
    // suppressor, whether it would be slewed or stepped (a wrong forward step could never be taken
    // back). If the next correction is large too, the change was real and it is applied.
    const spikeLimitNs = this.meanSquareOffset === null ? null : Math.max(SPIKE_NS_MIN, SPIKE_RMS_FACTOR * Math.sqrt(this.meanSquareOffset));
    // An upstream's estimate comes out of the NTP client's own filter and selection, polls apart.
    if (source.source !== 'upstream' && spikeLimitNs !== null && Math.abs(correctionNs) > spikeLimitNs && !this.spikeHeld) {
      this.spikeHeld = true;
      this.counts.spikes += 1;
      return { kind: 'hold', correctionNs, limitNs: spikeLimitNs };
    }
    this.spikeHeld = false;

    // Forward only: a synchronized clock never runs backwards.
    if (!slewOnly && this.config.stepThresholdNs > 0 && correctionNs >= this.config.stepThresholdNs) {
      this.accept(correctionNs, nowMs, null);
      this.counts.steps += 1;
      return { kind: 'step', deltaNs: correctionNs, frequencyPpm: this.frequency, why: 'threshold' };
    }
    // ... unless its time is still provisional: boxes that booted later outvoted where it went.
    if (provisionalStep) {
      this.accept(correctionNs, nowMs, null);
      this.counts.steps += 1;
      return { kind: 'step', deltaNs: correctionNs, frequencyPpm: this.frequency, why: 'provisional' };
    }

    // Acquisition (gear shifting): the n-th update after synchronization takes 1/(n+1) of the rate
    // error into the frequency, a running mean of the first estimates (what a constant frequency
    // error calls for), until that falls to the steady gain; the phase gain follows at twice the
    // square root, which keeps the loop critically damped (Ki = (Kp/2)^2) on the way down.
    this.lockUpdates += 1;
    const frequencyGain = Math.max(FREQUENCY_GAIN, 1 / (this.lockUpdates + 1));
    const phaseGain = Math.min(1, Math.max(PHASE_GAIN, 2 * Math.sqrt(frequencyGain)));
    // Corrections further apart than a few poll intervals (a master lost for a while) say little
    // about the frequency; long poll intervals get a longer allowance.
    const intervalMsMax = Math.max(FREQUENCY_INTERVAL_MS_MAX, FREQUENCY_INTERVAL_POLLS_MAX * (source.pollIntervalMs ?? this.config.pollIntervalMs));
    // An upstream's estimates were filtered and voted on by the NTP client already, and come a poll
    // interval apart, where a rate error of tens of ppm is a correction of a millisecond: bounded
    // by the jump limit alone (the recent noise of a 2 s burst would cut the rate short).
    const upstream = source.source === 'upstream';
    // ... and are meant to come a sample's spacing apart (a burst's interval at the least): one
    // that came much sooner (the master steered on another server's reply) carries no rate.
    const intervalMsMin = upstream ? UPSTREAM_RATE_INTERVAL_SHARE_MIN * Math.min(UPSTREAM_BURST_INTERVAL_MS, source.pollIntervalMs ?? this.config.pollIntervalMs) : 0;
    if ((spikeLimitNs !== null || upstream) && intervalMs !== null && intervalMs > intervalMsMin && intervalMs <= intervalMsMax) {
      // The integral: what is left after the previous correction was applied is, on average, the
      // rate error times the interval. Its input is bounded by the jump limit and by the recent
      // noise, so that neither a jump nor a bad measurement throws the frequency off.
      const inputLimitNs = upstream || spikeLimitNs === null ? jumpLimitNs : Math.min(jumpLimitNs, spikeLimitNs);
      const inputNs = clamp(correctionNs - slewRemainingNs, inputLimitNs);
      let gain = frequencyGain;
      if (this.ratesSinceReference !== null) {
        this.ratesSinceReference += 1;
        gain = Math.max(FREQUENCY_GAIN, 1 / this.ratesSinceReference);
      }
      // ns per ms = ppm.
      this.frequency = clamp(this.frequency + (gain * inputNs) / intervalMs, this.frequencyPpmMax);
    }
    // The RMS measures the noise: a jump does not count, and one large value counts only up to the
    // spike limit, so that it takes a few rounds of larger noise, not one jump, to widen the limit.
    const isJump = Math.abs(correctionNs) > jumpLimitNs;
    this.accept(correctionNs, nowMs, isJump ? null : clamp(correctionNs, spikeLimitNs ?? Number.POSITIVE_INFINITY));
    this.counts.slews += 1;
    // A jump is slewed in full: filtering it would only slow the return.
    const phaseNs = isJump ? correctionNs : phaseGain * correctionNs;
    return { kind: 'slew', phaseNs, ratePpm: this.slewRatePpm(), frequencyPpm: this.frequency };
  }

  /** `noiseNs`: what this correction adds to the RMS offset (null: nothing, e.g. initial steps). */
  private accept(correctionNs: number, nowMs: number, noiseNs: number | null): void {
    this.counts.updates += 1;
    this.lastUpdateMs = nowMs;
    this.lastOffsetNs = -correctionNs;
    if (noiseNs !== null) {
      const square = noiseNs * noiseNs;
      this.meanSquareOffset = this.meanSquareOffset === null ? square : this.meanSquareOffset + OFFSET_RMS_WEIGHT * (square - this.meanSquareOffset);
    }
  }

  private refuse(correctionNs: number, nowMs: number): DisciplineAction {
    this.spikeHeld = false;
    this.counts.refused += 1;
    this.lastRefused = { correctionNs, atMs: nowMs };
    return { kind: 'refuse', correctionNs, correctionNsMax: this.config.correctionNsMax };
  }

  state(): DisciplineState {
    const rmsOffsetNs = this.meanSquareOffset === null ? null : Math.sqrt(this.meanSquareOffset);
    return {
      synchronized: this.synchronized,
      provisionalNs: this.provisionalNs,
      frequencyPpm: this.frequency,
      lastOffsetNs: this.lastOffsetNs,
      rmsOffsetNs,
      lastUpdateMs: this.lastUpdateMs,
      ...this.counts,
      lastRefused: this.lastRefused,
    };
  }
}

/** What the discipline steers: the clock driver in the daemon, a virtual clock in the simulator. */
export interface SteerableClock {
  step(deltaNs: number): void;
  slew(phaseNs: number, ratePpm: number): void;
  setFrequency(frequencyPpm: number): void;
}

/** Carries out a discipline decision. The frequency first: a kernel slew runs on top of it. */
export function carryOut(action: DisciplineAction, clock: SteerableClock): void {
  if (action.kind === 'refuse' || action.kind === 'hold') return;
  clock.setFrequency(action.frequencyPpm);
  if (action.kind === 'step') clock.step(action.deltaNs);
  else clock.slew(action.phaseNs, action.ratePpm);
}
