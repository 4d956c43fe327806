// The member side of Berkeley rounds: answering the master's polls, applying each round's
// correction once, and noticing when the master has gone silent. The deadline (the master counts
// as silent from then on) is stored when the master is heard, and both the node's tick() and
// nextDeadlineMs() read that one value. Which master to follow is the node's decision, not this.
import { FrameType, type Frame, type ReplyBody } from '../frames.ts';

export class MemberSide {
  private lastMasterHeardMsValue = 0;
  private masterSilentAtMsValue: number;
  /** The last correction applied, as (term, round): each is applied at most once. */
  private appliedTerm = -1;
  private appliedRound = -1;

  constructor(private readonly masterTimeoutMs: number) {
    this.masterSilentAtMsValue = this.lastMasterHeardMsValue + masterTimeoutMs;
  }

  /** Monotonic ms the master was last heard. */
  get lastMasterHeardMs(): number {
    return this.lastMasterHeardMsValue;
  }

  /** From then on the master counts as silent (masterTimeoutMs after it was last heard). */
  get masterSilentAtMs(): number {
    return this.masterSilentAtMsValue;
  }

  /** A frame from the master we follow (or the master we now follow). */
  heardMaster(nowMs: number): void {
    this.lastMasterHeardMsValue = nowMs;
    this.masterSilentAtMsValue = nowMs + this.masterTimeoutMs;
  }

  /** Whether the master has been silent for masterTimeoutMs. */
  masterSilent(nowMs: number): boolean {
    return nowMs >= this.masterSilentAtMsValue;
  }

  /**
   * The answer to a poll: its send stamp back, our arrival stamp, whether our clock is synchronized
   * and, while its time is provisional, how far it has been moved (null: locked).
   */
  reply(poll: Frame & { type: typeof FrameType.poll }, rxNs: bigint, synced: boolean, provisionalNs: number | null = null): ReplyBody {
    const body: ReplyBody = { type: FrameType.reply, round: poll.round, probe: poll.probe, pollTxNs: poll.txNs, rxNs, synced };
    if (provisionalNs !== null) body.provisionalNs = provisionalNs;
    return body;
  }

  /** Whether a correction of (term, round) is new: at most one per round; a lost one is superseded by the next round's. */
  isNewCorrection(term: number, round: number): boolean {
    return !(term === this.appliedTerm && round <= this.appliedRound);
  }

  /** A correction of (term, round) was applied (the master's own too). */
  applied(term: number, round: number): void {
    this.appliedTerm = term;
    this.appliedRound = round;
  }
}
