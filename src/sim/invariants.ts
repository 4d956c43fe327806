// Safety invariants, checked by the simulator after every event (TigerBeetle's VOPR style). The
// checker only sees what the shell sees: each node's status (role, term, master), the corrections
// it drains and its clock readings. A violation throws (or, in 'collect' mode, is recorded) with
// the seed and the simulated time, so the run can be reproduced exactly.
//
//   two-masters         never two live nodes with role master in the same term
//   term-decreased      a node's term never decreases (a restart without persisted state excepted)
//   foreign-correction  a node applies a correction only from the master it follows in its
//                       current term (the master's own correction names itself)
//   correction-replayed a node never applies the same (term, round) twice, nor an older one (but
//                       from a master that restarted without its state and claimed the term again)
//   clock-stepped-back  once synchronized and locked, a clock is never stepped backwards; while its
//                       time is provisional, only by PROVISIONAL_STEP_NS_MIN or more
//   clock-stepped-back-twice  before synchronization, a clock steps backwards at most once (per
//                       clock: a process's fresh virtual clock starts over), but for steps of at
//                       least PROVISIONAL_STEP_NS_MIN while its time is provisional
//   clock-ran-back      a clock reading never decreases between corrections (slews included)
//   established-stepped a master's correction onto its upstream once the cluster's time is
//                       established (slewOnly) never steps the clock, either way
import { PROVISIONAL_STEP_NS_MIN } from '../core/limits.ts';
import type { Correction } from '../core/node.ts';
import type { NodeId, Role } from '../core/types.ts';

export type InvariantCode =
  | 'two-masters'
  | 'term-decreased'
  | 'foreign-correction'
  | 'correction-replayed'
  | 'clock-stepped-back'
  | 'clock-stepped-back-twice'
  | 'clock-ran-back'
  | 'established-stepped';

export const INVARIANT_CODES: readonly InvariantCode[] = [
  'two-masters',
  'term-decreased',
  'foreign-correction',
  'correction-replayed',
  'clock-stepped-back',
  'clock-stepped-back-twice',
  'clock-ran-back',
  'established-stepped',
];

export class InvariantViolation extends Error {
  readonly code: InvariantCode;
  readonly seed: number;
  readonly atMs: number;
  readonly nodeIds: NodeId[];
  readonly description: string;
  /** Filled by the runner: the network's components at the time, for diagnosis. */
  components: string[][] = [];
  /** Filled by the runner: a status line of each node involved, for diagnosis. */
  nodeStates: string[] = [];

  constructor(code: InvariantCode, seed: number, atMs: number, nodeIds: NodeId[], description: string, reproduce: string) {
    super(`seed ${seed}: invariant ${code} violated at ${atMs.toFixed(3)} ms simulated: ${description}${reproduce ? ` (reproduce: ${reproduce})` : ''}`);
    this.name = 'InvariantViolation';
    this.code = code;
    this.seed = seed;
    this.atMs = atMs;
    this.nodeIds = nodeIds;
    this.description = description;
  }
}

/** What the checker needs of a node's status. */
export interface NodeView {
  role: Role;
  term: number;
  masterId: NodeId | null;
}

export interface CorrectionObservation {
  /** Clock readings at the same simulated instant, just before and just after the correction. */
  beforeNs: bigint;
  afterNs: bigint;
  /** Whether the clock counted as synchronized before this correction. */
  wasSynchronized: boolean;
  /** Whether the clock's time was provisional for this correction (still so after it). */
  provisional?: boolean;
  /** The discipline's step threshold (a provisional clock steps back by at least this). */
  stepThresholdNs?: number;
}

export type CheckMode = 'throw' | 'collect';

export interface CheckerOptions {
  seed: number;
  mode?: CheckMode;
  /** Appended to violation messages: how to rerun this case. */
  reproduce?: string;
  /** Simulated time, for messages. */
  nowMs: () => number;
}

interface Tracked {
  alive: boolean;
  view: NodeView | null;
  /** Highest (term, round) applied by this incarnation, and the life of the master that sent it. */
  applied: { term: number; round: number; masterLife: number } | null;
  /** Last clock reading, or null when the clock was replaced. */
  lastReadingNs: bigint | null;
  /** Backward steps of this clock before it was synchronized. */
  backStepsUnsynchronized: number;
}

export class InvariantChecker {
  readonly violations: InvariantViolation[] = [];
  /** Checks performed, by kind (to show the checker actually ran). */
  readonly checks = { states: 0, corrections: 0, readings: 0 };
  /**
   * Terms in which different nodes were master at different times (not at once). Not a violation
   * of the invariants above, which are about simultaneous masters, but a sign of terms reused
   * after restarts that lost state; kept as a statistic.
   */
  termsReusedByAnotherMaster = 0;
  /**
   * Corrections in a term that a master which lost its state (restarted without it) claimed
   * again, alone, with its rounds counted from 1: a new mastership, not a replay. The protocol
   * cannot tell such a master which terms it used in its earlier life; kept as a statistic.
   */
  termsReusedAfterStateLoss = 0;
  /** Restarts without persisted state, per node: each begins a new life whose terms may repeat. */
  private readonly lives = new Map<NodeId, number>();
  private readonly options: Required<Omit<CheckerOptions, 'nowMs'>> & Pick<CheckerOptions, 'nowMs'>;
  private readonly nodes = new Map<NodeId, Tracked>();
  private readonly masterOfTerm = new Map<number, NodeId>();

  constructor(options: CheckerOptions) {
    this.options = { mode: 'throw', reproduce: '', ...options };
  }

  private tracked(nodeId: NodeId): Tracked {
    let tracked = this.nodes.get(nodeId);
    if (!tracked) {
      tracked = { alive: false, view: null, applied: null, lastReadingNs: null, backStepsUnsynchronized: 0 };
      this.nodes.set(nodeId, tracked);
    }
    return tracked;
  }

  private violate(code: InvariantCode, nodeIds: NodeId[], description: string): void {
    const violation = new InvariantViolation(code, this.options.seed, this.options.nowMs(), nodeIds, description, this.options.reproduce);
    this.violations.push(violation);
    if (this.options.mode === 'throw') throw violation;
  }

  /**
   * A node (re)started. Without persisted state it begins at term 0 and forgets what it applied,
   * so those checks start over; with persisted state they span the restart. `clockKept` says
   * whether its clock survived (a machine clock does; a virtual clock of the process does not).
   */
  started(nodeId: NodeId, options: { persistedState: boolean; clockKept: boolean }): void {
    const tracked = this.tracked(nodeId);
    tracked.alive = true;
    if (!options.persistedState) {
      tracked.view = null;
      tracked.applied = null;
      this.lives.set(nodeId, (this.lives.get(nodeId) ?? 0) + 1);
    }
    if (!options.clockKept) {
      tracked.lastReadingNs = null;
      tracked.backStepsUnsynchronized = 0;
    }
  }

  crashed(nodeId: NodeId): void {
    this.tracked(nodeId).alive = false;
  }

  /** The node's status after an input. */
  observeState(nodeId: NodeId, view: NodeView): void {
    this.checks.states += 1;
    const tracked = this.tracked(nodeId);
    const previous = tracked.view;
    tracked.view = { role: view.role, term: view.term, masterId: view.masterId };
    if (previous !== null && view.term < previous.term) {
      this.violate('term-decreased', [nodeId], `${nodeId} went from term ${previous.term} to term ${view.term}`);
    }
    if (view.role !== 'master') return;
    for (const [otherId, other] of this.nodes) {
      if (otherId === nodeId || !other.alive || other.view === null) continue;
      if (other.view.role === 'master' && other.view.term === view.term) {
        this.violate('two-masters', [nodeId, otherId], `${nodeId} and ${otherId} are both master in term ${view.term}`);
      }
    }
    const owner = this.masterOfTerm.get(view.term);
    if (owner === undefined) this.masterOfTerm.set(view.term, nodeId);
    else if (owner !== nodeId) {
      this.termsReusedByAnotherMaster += 1;
      this.masterOfTerm.set(view.term, nodeId);
    }
  }

  /** A correction the node drained, with its status at that moment and the clock around it. */
  observeCorrection(nodeId: NodeId, correction: Correction, view: NodeView, clock: CorrectionObservation): void {
    this.checks.corrections += 1;
    const tracked = this.tracked(nodeId);
    const own = correction.masterId === nodeId;
    const expectedRole: Role = own ? 'master' : 'slave';
    if (view.role !== expectedRole || view.masterId !== correction.masterId || view.term !== correction.term) {
      this.violate(
        'foreign-correction',
        [nodeId, correction.masterId],
        `${nodeId} (${view.role}, master ${view.masterId ?? 'none'}, term ${view.term}) applied a correction of ${correction.correctionNs} ns from ${correction.masterId} for term ${correction.term} round ${correction.round}`,
      );
    }
    const applied = tracked.applied;
    // The master's corrections onto its upstream are numbered apart from the rounds.
    const upstream = correction.source === 'upstream';
    if (upstream && correction.slewOnly === true && clock.afterNs !== clock.beforeNs) {
      this.violate('established-stepped', [nodeId], `${nodeId} stepped its clock by ${clock.afterNs - clock.beforeNs} ns onto its upstream although the cluster's time was established (correction ${correction.correctionNs} ns)`);
    }
    const masterLife = this.lives.get(correction.masterId) ?? 0;
    const reusedAfterStateLoss = !upstream && applied !== null && correction.term === applied.term && masterLife !== applied.masterLife;
    if (reusedAfterStateLoss) this.termsReusedAfterStateLoss += 1;
    if (!upstream && !reusedAfterStateLoss && applied !== null && (correction.term < applied.term || (correction.term === applied.term && correction.round <= applied.round))) {
      this.violate(
        'correction-replayed',
        [nodeId],
        `${nodeId} applied term ${correction.term} round ${correction.round} after term ${applied.term} round ${applied.round}`,
      );
    }
    if (!upstream) tracked.applied = { term: correction.term, round: correction.round, masterLife };
    // A provisional clock may step back to where boxes that booted later moved the reference.
    const stepThresholdNs = clock.stepThresholdNs ?? 0;
    const provisionalStep = clock.provisional === true && stepThresholdNs > 0 && clock.beforeNs - clock.afterNs >= BigInt(Math.round(Math.min(stepThresholdNs, PROVISIONAL_STEP_NS_MIN)));
    if (clock.wasSynchronized && clock.afterNs < clock.beforeNs && !provisionalStep) {
      this.violate(
        'clock-stepped-back',
        [nodeId],
        `${nodeId}'s synchronized clock stepped back by ${clock.beforeNs - clock.afterNs} ns (correction ${correction.correctionNs} ns from ${correction.masterId}, term ${correction.term} round ${correction.round})`,
      );
    }
    if (!clock.wasSynchronized && clock.afterNs < clock.beforeNs) {
      tracked.backStepsUnsynchronized += 1;
      if (tracked.backStepsUnsynchronized > 1 && !provisionalStep) {
        this.violate(
          'clock-stepped-back-twice',
          [nodeId],
          `${nodeId}'s clock, not yet synchronized, stepped back a second time, by ${clock.beforeNs - clock.afterNs} ns (correction ${correction.correctionNs} ns from ${correction.masterId}, term ${correction.term} round ${correction.round})`,
        );
      }
    }
    // Before synchronization, one initial step may go backwards: readings start over from here.
    tracked.lastReadingNs = clock.afterNs;
  }

  /** A clock reading at the current simulated time (sampled after each input of the node). */
  observeReading(nodeId: NodeId, readingNs: bigint): void {
    this.checks.readings += 1;
    const tracked = this.tracked(nodeId);
    if (tracked.lastReadingNs !== null && readingNs < tracked.lastReadingNs) {
      this.violate('clock-ran-back', [nodeId], `${nodeId}'s clock read ${readingNs} ns after ${tracked.lastReadingNs} ns (${tracked.lastReadingNs - readingNs} ns back without a correction)`);
    }
    tracked.lastReadingNs = readingNs;
  }
}
