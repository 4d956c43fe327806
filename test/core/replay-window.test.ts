// The replay window alone (src/core/membership/replay-window.ts): which (boot, seq) pairs of one
// sender are fresh, how the window slides, and how the sending side numbers its streams.
import { describe, expect, it } from 'vitest';
import { REPLAY_WINDOW_FRAMES } from '../../src/core/limits.ts';
import { isFreshSequence, newReplayStreams, OutgoingSequences, recordSequence, type ReplayStreams } from '../../src/core/membership/replay-window.ts';

const direct = (boot: number, seq: number) => ({ boot, seq, toBoot: 7 });
const anyone = (boot: number, seq: number) => ({ boot, seq, toBoot: 0 });

/** Takes a frame the way the node does: check, then record. Returns whether it was fresh. */
function take(streams: ReplayStreams, frame: { boot: number; seq: number; toBoot: number }, bootSeen = 0): boolean {
  if (!isFreshSequence(streams, bootSeen, frame)) return false;
  recordSequence(streams, frame);
  return true;
}

describe('replay window', () => {
  it('takes any frame of a sender not known yet', () => {
    expect(isFreshSequence(null, 0, direct(1, 5))).toBe(true);
  });

  it('takes each sequence number once, in any order inside the window', () => {
    const streams = newReplayStreams();
    expect(take(streams, direct(1, 10))).toBe(true);
    expect(take(streams, direct(1, 10))).toBe(false);
    expect(take(streams, direct(1, 8))).toBe(true);
    expect(take(streams, direct(1, 8))).toBe(false);
    expect(take(streams, direct(1, 12))).toBe(true);
    expect(take(streams, direct(1, 9))).toBe(true);
    expect(take(streams, direct(1, 11))).toBe(true);
    for (const seq of [8, 9, 10, 11, 12]) expect(isFreshSequence(streams, 1, direct(1, seq))).toBe(false);
    expect(streams.direct).toMatchObject({ boot: 1, seqMax: 12 });
  });

  it('refuses sequence numbers that fell out of the window', () => {
    const streams = newReplayStreams();
    take(streams, direct(1, 1));
    const top = 1 + REPLAY_WINDOW_FRAMES + 5;
    take(streams, direct(1, top));
    expect(isFreshSequence(streams, 1, direct(1, top - REPLAY_WINDOW_FRAMES))).toBe(true);
    expect(isFreshSequence(streams, 1, direct(1, top - REPLAY_WINDOW_FRAMES - 1))).toBe(false);
    expect(isFreshSequence(streams, 1, direct(1, 2))).toBe(false);
  });

  it('a jump past the whole window forgets the marks below it', () => {
    const streams = newReplayStreams();
    take(streams, direct(1, 1));
    take(streams, direct(1, 2));
    take(streams, direct(1, 2 + REPLAY_WINDOW_FRAMES + 1));
    expect(streams.direct?.seenBelow).toBe(0n);
  });

  it('a newer boot restarts the stream; an older boot is refused in either stream', () => {
    const streams = newReplayStreams();
    take(streams, direct(1, 50));
    expect(take(streams, direct(2, 1), 1)).toBe(true);
    expect(streams.direct).toEqual({ boot: 2, seqMax: 1, seenBelow: 0n });
    expect(isFreshSequence(streams, 2, direct(1, 51))).toBe(false);
    // The unaddressed stream has no record yet, but the sender's newest boot still rules.
    expect(isFreshSequence(streams, 2, anyone(1, 1))).toBe(false);
    expect(isFreshSequence(streams, 2, anyone(2, 1))).toBe(true);
  });

  it('keeps the addressed and unaddressed streams apart', () => {
    const streams = newReplayStreams();
    take(streams, anyone(1, 3));
    expect(streams.direct).toBeNull();
    expect(take(streams, direct(1, 3))).toBe(true);
    expect(take(streams, anyone(1, 3))).toBe(false);
  });
});

describe('outgoing sequences', () => {
  it('counts from 1 per destination stream', () => {
    const sequences = new OutgoingSequences(10);
    expect(sequences.next('a', 0)).toBe(1);
    expect(sequences.next('a', 0)).toBe(2);
    expect(sequences.next('a', 99)).toBe(1);
    expect(sequences.next('a', 100)).toBe(2); // any known boot is the one direct stream
    expect(sequences.next('b', 0)).toBe(1);
    expect(sequences.next('', 0)).toBe(1);
  });

  it('drops the oldest stream past its bound', () => {
    const sequences = new OutgoingSequences(2);
    sequences.next('a', 0);
    sequences.next('a', 0);
    sequences.next('b', 0);
    sequences.next('c', 0);
    expect(sequences.size).toBe(2);
    expect(sequences.next('a', 0)).toBe(1); // 'a' was dropped
    expect(sequences.next('c', 0)).toBe(2);
  });
});
