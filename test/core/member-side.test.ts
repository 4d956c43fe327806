// The member side alone (src/core/sync/member.ts): the master-silent deadline is the one stored
// when the master was last heard, a poll is answered with its stamps, and each round's correction
// is applied once.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame } from '../../src/core/frames.ts';
import { MemberSide } from '../../src/core/sync/member.ts';

describe('member side', () => {
  it('counts the master silent exactly at the stored deadline', () => {
    // 0.1 + 0.2 style values: the deadline is stored once, never recomputed in another form.
    const member = new MemberSide(0.3);
    expect(member.masterSilentAtMs).toBe(0.3);
    member.heardMaster(0.1);
    const deadlineMs = member.masterSilentAtMs;
    expect(deadlineMs).toBe(0.1 + 0.3);
    expect(member.masterSilent(deadlineMs - Number.EPSILON)).toBe(false);
    expect(member.masterSilent(deadlineMs)).toBe(true);
    expect(member.lastMasterHeardMs).toBe(0.1);
  });

  it('answers a poll with its send stamp, our arrival stamp and whether we are synchronized', () => {
    const member = new MemberSide(1000);
    const poll = { type: FrameType.poll, round: 9, probe: 2, txNs: 123n } as Frame & { type: typeof FrameType.poll };
    expect(member.reply(poll, 456n, true)).toEqual({ type: FrameType.reply, round: 9, probe: 2, pollTxNs: 123n, rxNs: 456n, synced: true });
    // While our time is provisional the reply says how far our clock has been moved.
    expect(member.reply(poll, 456n, true, -1800e9)).toEqual({ type: FrameType.reply, round: 9, probe: 2, pollTxNs: 123n, rxNs: 456n, synced: true, provisionalNs: -1800e9 });
    expect('provisionalNs' in member.reply(poll, 456n, false, null)).toBe(false);
  });

  it('applies a correction at most once per round, and any round of a new term', () => {
    const member = new MemberSide(1000);
    expect(member.isNewCorrection(4, 1)).toBe(true);
    member.applied(4, 5);
    expect(member.isNewCorrection(4, 5)).toBe(false);
    expect(member.isNewCorrection(4, 3)).toBe(false);
    expect(member.isNewCorrection(4, 6)).toBe(true);
    expect(member.isNewCorrection(8, 1)).toBe(true);
  });
});
