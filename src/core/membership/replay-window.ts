// Replay protection: every frame carries its sender's boot id and a sequence number counted from 1
// per destination stream. A receiver takes each (boot, seq) of a sender once and refuses a boot
// older than the newest it has seen, or a sequence number more than REPLAY_WINDOW_FRAMES below the
// highest (a sliding bitmap, as in IPsec's anti-replay window). Pure: no peers, no outbox.
import { REPLAY_WINDOW_FRAMES } from '../limits.ts';

/** One stream of one sender: its newest boot id, highest sequence number, and which of the window below it were seen. */
export interface ReplayRecord {
  boot: number;
  seqMax: number;
  seenBelow: bigint;
}

/**
 * A sender's two streams: frames addressed to this node's run (`direct`), and those sent before the
 * sender knew our id or boot (`anyone`, toBoot 0).
 */
export interface ReplayStreams {
  direct: ReplayRecord | null;
  anyone: ReplayRecord | null;
}

/** What replay protection reads of a frame. */
export interface SequencedFrame {
  boot: number;
  seq: number;
  toBoot: number;
}

const REPLAY_WINDOW_MASK = (1n << BigInt(REPLAY_WINDOW_FRAMES)) - 1n;

export function newReplayStreams(): ReplayStreams {
  return { direct: null, anyone: null };
}

function streamOf(frame: SequencedFrame): keyof ReplayStreams {
  return frame.toBoot === 0 ? 'anyone' : 'direct';
}

/**
 * Whether a frame's (boot, seq) is new for its sender. `streams` is null for a sender not known
 * yet (its record starts with this frame); `bootSeen` is the newest boot seen from it in either
 * stream (0: none).
 */
export function isFreshSequence(streams: ReplayStreams | null, bootSeen: number, frame: SequencedFrame): boolean {
  // Nothing from a run of the sender older than the newest we have seen, in either stream.
  if (streams !== null && frame.boot < bootSeen) return false;
  const record = streams?.[streamOf(frame)] ?? null;
  if (record === null || frame.boot > record.boot) return true;
  if (frame.boot < record.boot) return false;
  if (frame.seq > record.seqMax) return true;
  const below = record.seqMax - frame.seq;
  if (below === 0 || below > REPLAY_WINDOW_FRAMES) return false;
  return (record.seenBelow & (1n << BigInt(below - 1))) === 0n;
}

/** Records a fresh frame's (boot, seq) (after isFreshSequence accepted it). */
export function recordSequence(streams: ReplayStreams, frame: SequencedFrame): void {
  const stream = streamOf(frame);
  const record = streams[stream];
  if (record === null || frame.boot > record.boot) {
    streams[stream] = { boot: frame.boot, seqMax: frame.seq, seenBelow: 0n };
    return;
  }
  if (frame.seq > record.seqMax) {
    const shift = frame.seq - record.seqMax;
    // The old highest becomes "seen, `shift` below"; older marks move down with it.
    record.seenBelow = shift > REPLAY_WINDOW_FRAMES ? 0n : ((record.seenBelow << BigInt(shift)) | (1n << BigInt(shift - 1))) & REPLAY_WINDOW_MASK;
    record.seqMax = frame.seq;
    return;
  }
  const below = record.seqMax - frame.seq;
  // Outside the window (only possible when isFreshSequence did not check it): nothing to mark.
  if (below >= 1 && below <= REPLAY_WINDOW_FRAMES) record.seenBelow |= 1n << BigInt(below - 1);
}

/**
 * The sending side: per destination stream (node id, and whether its boot is known), the last
 * sequence number sent, counted from 1 at each boot and never reset during the run. Bounded:
 * past `streamsMax` the oldest stream is dropped (its destination is long gone).
 */
export class OutgoingSequences {
  private readonly lastSeq = new Map<string, number>();

  constructor(private readonly streamsMax: number) {}

  /** The sequence number for the next frame to `toId` ('' = not identified yet) in run `toBoot` (0 = unknown). */
  next(toId: string, toBoot: number): number {
    const streamKey = `${toId} ${toBoot === 0 ? 0 : 1}`;
    const seq = (this.lastSeq.get(streamKey) ?? 0) + 1;
    if (!this.lastSeq.has(streamKey) && this.lastSeq.size >= this.streamsMax) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
    this.lastSeq.set(streamKey, seq);
    return seq;
  }

  get size(): number {
    return this.lastSeq.size;
  }
}
