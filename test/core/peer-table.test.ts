// The peer table alone (src/core/membership/peers.ts): admission from discovery and frames, the
// proof that a peer answers, the bound on the table and who makes room, forgetting peers that
// never answered, greeting static endpoints, and which peers a round polls or greets.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame, type FrameBody } from '../../src/core/frames.ts';
import type { NodeEvent } from '../../src/core/events.ts';
import { DEAD_PEER_POLL_EVERY_ROUNDS, SILENT_PEER_FULL_RATE_GREETINGS, STATIC_HELLO_INTERVAL_MS, UNANSWERED_PEER_TTL_MS } from '../../src/core/limits.ts';
import { PeerTable, type PeerTableConfig } from '../../src/core/membership/peers.ts';
import type { Outbox } from '../../src/core/outbox.ts';
import type { Endpoint, NodeId } from '../../src/core/types.ts';

const SELF = 'self';
const BOOT = 77;
const CONFIG: PeerTableConfig = { nodeId: SELF, bootId: BOOT, peersMax: 3, pollIntervalMs: 1000, replayProtection: true };

const at = (port: number): Endpoint => ({ address: '198.18.0.2', port });

function setup(config: Partial<PeerTableConfig> = {}) {
  const hellos: { to: number; wantReply: boolean }[] = [];
  const events: NodeEvent[] = [];
  const host = { masterId: null as NodeId | null, sendHello: (to: Endpoint, wantReply: boolean) => hellos.push({ to: to.port, wantReply }) };
  const outbox: Outbox = {
    send: (_to: Endpoint, _body: FrameBody) => {},
    sendTo: (_nodeId: NodeId, _body: FrameBody) => {},
    emit: (event) => events.push(event),
  };
  const counters = { peersRefused: 0, peersExpired: 0, greetingsDeferred: 0 };
  const table = new PeerTable({ ...CONFIG, ...config }, host, outbox, counters);
  return { table, host, hellos, events, counters };
}

/** A HELLO from `from`, addressed to us (an answer) or to anyone (a greeting). */
function hello(from: NodeId, answer: boolean, seq = 1): Frame {
  return { type: FrameType.hello, from, prio: 3, boot: 5, seq, to: answer ? SELF : '', toBoot: answer ? BOOT : 0, term: 0, wantReply: false } as unknown as Frame;
}

describe('peer table', () => {
  it('admits a discovered peer and greets it; a known one only moves', () => {
    const { table, hellos, events } = setup();
    table.discovered({ nodeId: SELF, priority: 0, endpoint: at(1) }, 0);
    table.discovered({ nodeId: 'a', priority: 1, endpoint: at(1) }, 0);
    expect(hellos).toEqual([{ to: 1, wantReply: true }]);
    expect(events).toEqual([{ kind: 'peer-new', nodeId: 'a', endpoint: at(1), via: 'discovery' }]);
    expect(table.get('a')).toMatchObject({ lastHeardMs: null, answered: false });
    table.discovered({ nodeId: 'a', priority: 2, endpoint: at(2) }, 0);
    expect(hellos).toHaveLength(1);
    expect(table.get('a')).toMatchObject({ priority: 2, endpoint: at(2) });
    expect(table.addressOf(at(2))).toEqual({ toId: 'a', toBoot: 0 });
    expect(table.addressOf(at(1))).toEqual({ toId: '', toBoot: 0 });
  });

  it('a frame addressed to our run proves its sender answers; an unaddressed one does not clear suspicion', () => {
    const { table, events } = setup();
    table.heard(hello('a', false), at(1), 10);
    expect(table.get('a')).toMatchObject({ lastHeardMs: 10, answered: false, bootSeen: 5 });
    expect(table.addressOf(at(1))).toEqual({ toId: 'a', toBoot: 5 });
    table.markSuspect('a', 'test');
    table.heard(hello('a', false, 2), at(1), 20);
    expect(table.get('a')?.suspect).toBe(true);
    table.heard(hello('a', true, 3), at(1), 30);
    expect(table.get('a')).toMatchObject({ suspect: false, answered: true });
    expect(events.map((event) => event.kind)).toEqual(['peer-new', 'peer-suspect', 'peer-alive']);
    // Replay protection recorded each stream's highest sequence number.
    expect(table.get('a')?.replay.anyone?.seqMax).toBe(2);
    expect(table.get('a')?.replay.direct?.seqMax).toBe(3);
  });

  it('refuses a newcomer when full, unless a peer proved silent makes room', () => {
    const { table, events, counters } = setup();
    for (const [index, id] of ['a', 'b', 'c'].entries()) table.heard(hello(id, id !== 'b'), at(index + 1), index);
    table.heard(hello('d', true), at(4), 10);
    expect(table.get('d')).toBeUndefined();
    expect(counters.peersRefused).toBe(1);
    // 'b' never answered; once suspect it is proved silent and gives way.
    table.markSuspect('b', 'test');
    table.heard(hello('d', true), at(4), 20);
    expect(table.get('b')).toBeUndefined();
    expect(table.get('d')).toBeDefined();
    expect(counters.peersExpired).toBe(1);
    expect(events).toContainEqual({ kind: 'peer-expired', nodeId: 'b', why: 'table full' });
  });

  it('forgets a silent peer after UNANSWERED_PEER_TTL_MS, never the master', () => {
    const { table, host } = setup();
    table.heard(hello('a', false), at(1), 0);
    table.heard(hello('m', false), at(2), 0);
    table.markSuspect('a', 'test');
    table.markSuspect('m', 'test');
    host.masterId = 'm';
    table.tick(UNANSWERED_PEER_TTL_MS - 1);
    expect(table.size).toBe(2);
    table.tick(UNANSWERED_PEER_TTL_MS + 1000);
    expect(table.get('a')).toBeUndefined();
    expect(table.get('m')).toBeDefined();
  });

  it('greets a static endpoint every STATIC_HELLO_INTERVAL_MS until a frame comes from it', () => {
    const { table, hellos } = setup();
    expect(table.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY);
    table.addStaticEndpoint(at(9), 0);
    expect(hellos).toEqual([{ to: 9, wantReply: true }]);
    expect(table.nextDeadlineMs()).toBe(STATIC_HELLO_INTERVAL_MS);
    table.tick(STATIC_HELLO_INTERVAL_MS);
    expect(hellos).toHaveLength(2);
    table.heard(hello('s', true), at(9), STATIC_HELLO_INTERVAL_MS + 1);
    expect(table.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY);
    table.tick(3 * STATIC_HELLO_INTERVAL_MS);
    expect(hellos).toHaveLength(2);
  });

  it('a round polls the peers that answer and greets the silent ones, polling them now and then', () => {
    const { table, hellos } = setup({ peersMax: 10 });
    table.heard(hello('live', true), at(1), 0);
    table.heard(hello('quiet', false), at(2), 0);
    table.markSuspect('quiet', 'test');
    expect(table.roundMembers(1, 0)).toEqual(['live']);
    expect(hellos).toEqual([{ to: 2, wantReply: true }]);
    expect(table.roundMembers(DEAD_PEER_POLL_EVERY_ROUNDS, 1000)).toEqual(['live', 'quiet']);
    expect(hellos).toHaveLength(1);
    // After the full-rate greetings it backs off (odd rounds: never a polling round).
    let nowMs = 1000;
    let round = 1;
    while (table.get('quiet')!.silentGreetings < SILENT_PEER_FULL_RATE_GREETINGS + 1) {
      nowMs += 1000;
      round += 2;
      table.roundMembers(round, nowMs);
    }
    expect(table.get('quiet')!.nextGreetMs).toBe(nowMs + 2 * CONFIG.pollIntervalMs);
    const greeted = hellos.length;
    table.roundMembers(round + 2, nowMs + 1000);
    expect(hellos).toHaveLength(greeted);
    table.roundMembers(round + 4, nowMs + 2000);
    expect(hellos).toHaveLength(greeted + 1);
  });
});
