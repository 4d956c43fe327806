// One master's round alone (src/core/sync/probe-round.ts): probes in ping-pong, the best sample
// per member, the early stop, the reply wait, and members leaving mid-round.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame, type FrameBody } from '../../src/core/frames.ts';
import type { NodeEvent } from '../../src/core/events.ts';
import type { Outbox } from '../../src/core/outbox.ts';
import { ProbeRound, type ProbeRoundConfig } from '../../src/core/sync/probe-round.ts';

const CONFIG: ProbeRoundConfig = { probesPerRound: 4, probesMin: 2, probeSpacingMs: 100, replyWaitMs: 500 };

class RecordingOutbox implements Outbox {
  polls: { to: string; probe: number }[] = [];
  sendTo(nodeId: string, body: FrameBody): void {
    if (body.type !== FrameType.poll) throw new Error(`unexpected frame type ${body.type}`);
    this.polls.push({ to: nodeId, probe: body.probe });
  }
  send(): void {
    throw new Error('a round addresses members by id');
  }
  emit(_event: NodeEvent): void {}
}

/** A REPLY whose timestamps give exactly this offset and delay. */
function reply(from: string, probe: number, offsetNs: number, delayNs: number, synced = false): Frame & { type: typeof FrameType.reply } {
  const t2 = BigInt(delayNs / 2 + offsetNs);
  return { type: FrameType.reply, from, term: 1, round: 1, probe, pollTxNs: 0n, rxNs: t2, txNs: t2, synced } as Frame & { type: typeof FrameType.reply };
}

function setup(members: string[], options: { full?: boolean; recent?: Record<string, number[]>; config?: Partial<ProbeRoundConfig> } = {}) {
  const outbox = new RecordingOutbox();
  let probesSent = 0;
  const round = new ProbeRound(1, members, options.full ?? false, 0, { ...CONFIG, ...options.config }, outbox, (nodeId) => options.recent?.[nodeId], () => {
    probesSent += 1;
  });
  return { outbox, round, probesSent: () => probesSent };
}

describe('probe round', () => {
  it('probes every member at once, then every probeSpacingMs while unanswered', () => {
    const { outbox, round, probesSent } = setup(['a', 'b']);
    expect(round.advance(0)).toBe(false);
    expect(outbox.polls).toEqual([{ to: 'a', probe: 0 }, { to: 'b', probe: 0 }]);
    expect(round.nextDeadlineMs()).toBe(100);
    expect(round.advance(99)).toBe(false);
    expect(outbox.polls).toHaveLength(2);
    round.advance(100);
    expect(outbox.polls.slice(2)).toEqual([{ to: 'a', probe: 1 }, { to: 'b', probe: 1 }]);
    expect(probesSent()).toBe(4);
  });

  it('an answer to the latest probe releases the next one at once (ping-pong)', () => {
    const { outbox, round } = setup(['a', 'b']);
    round.advance(0);
    round.onReply(reply('a', 0, 10, 1000), 1000n, 5);
    expect(outbox.polls.at(-1)).toEqual({ to: 'a', probe: 1 });
    // b's next probe is still due on the spacing; a's moved to 5 + spacing.
    expect(round.nextDeadlineMs()).toBe(100);
  });

  it('keeps the least-delay sample, counts a duplicate reply once, and remembers a synced reply', () => {
    const { round } = setup(['a'], { config: { probesPerRound: 3 } });
    round.advance(0);
    round.onReply(reply('a', 0, 500, 8000), 8000n, 1);
    round.onReply(reply('a', 1, -20, 2000, true), 2000n, 2);
    round.onReply(reply('a', 1, 999, 1000), 1000n, 3); // a duplicate: ignored
    expect(round.sampleOf('a')).toEqual({ offsetNs: -20, delayNs: 2000 });
    expect(round.syncedOf('a')).toBe(true);
    expect(round.onReply(reply('a', 2, 300, 4000), 4000n, 4)).toBe(true);
    expect(round.sampleOf('a')).toEqual({ offsetNs: -20, delayNs: 2000 });
  });

  it('is over replyWaitMs after the last probe when replies are missing', () => {
    const { outbox, round } = setup(['a'], { config: { probesPerRound: 2 } });
    round.advance(0);
    round.advance(100);
    expect(outbox.polls).toHaveLength(2);
    expect(round.nextDeadlineMs()).toBe(600);
    expect(round.advance(599)).toBe(false);
    expect(round.advance(600)).toBe(true);
    expect(round.sampleOf('a')).toBeUndefined();
  });

  it('stops probing a member early once its delay is near its recent minimum, except in a full round', () => {
    const recent = { a: [1000, 1100, 1200] };
    const early = setup(['a'], { recent });
    early.round.advance(0);
    early.round.onReply(reply('a', 0, 0, 1000), 1000n, 1); // probesMin (2) not reached yet
    expect(early.outbox.polls).toHaveLength(2);
    expect(early.round.onReply(reply('a', 1, 0, 1000), 1000n, 2)).toBe(true);
    expect(early.outbox.polls).toHaveLength(2);

    const full = setup(['a'], { recent, full: true });
    full.round.advance(0);
    full.round.onReply(reply('a', 0, 0, 1000), 1000n, 1);
    expect(full.round.onReply(reply('a', 1, 0, 1000), 1000n, 2)).toBe(false);
    expect(full.outbox.polls).toHaveLength(3);
  });

  it('a member that left is neither polled nor waited for nor averaged', () => {
    const { outbox, round } = setup(['a', 'b'], { config: { probesPerRound: 1 } });
    round.advance(0);
    round.onReply(reply('a', 0, 7, 1000), 1000n, 1);
    round.removeMember('b');
    expect(round.memberOrder).toEqual(['a']);
    expect(round.advance(2)).toBe(true);
    expect(outbox.polls).toHaveLength(2);
    expect(round.onReply(reply('b', 0, 0, 1000), 1000n, 3)).toBe(false);
    expect(round.sampleOf('b')).toBeUndefined();
  });

  it('a round with no members is over at once', () => {
    const { round } = setup([]);
    expect(round.advance(0)).toBe(true);
  });
});
