// A node's barriers alone (src/core/barrier/node-barriers.ts), with a fake node as host: the table
// exists exactly while the node is master, a master alone releases its own participants without
// the network, and a member's participants go to its master and re-register when it changes.
import { describe, expect, it } from 'vitest';
import type { FrameBody } from '../../src/core/frames.ts';
import { NodeBarriers } from '../../src/core/barrier/node-barriers.ts';
import type { Outbox } from '../../src/core/outbox.ts';
import type { NodeId, Role } from '../../src/core/types.ts';

function setup() {
  const host = { role: 'electing' as Role, masterId: null as NodeId | null, term: 1, left: false };
  const sent: { to: NodeId; body: FrameBody }[] = [];
  const outbox: Outbox = { send: () => {}, sendTo: (to, body) => sent.push({ to, body }), emit: () => {} };
  // A small LCG: the table draws generation ids until it finds an unused one.
  let state = 12345;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const barriers = new NodeBarriers({ nodeId: 'self', random }, host, outbox);
  return { host, sent, barriers };
}

describe('node barriers', () => {
  it('keeps a table exactly while the node is master (and not after it left)', () => {
    const { host, barriers } = setup();
    barriers.settle(0);
    expect(barriers.report(0).table).toBeNull();
    host.role = 'master';
    host.masterId = 'self';
    barriers.settle(0);
    expect(barriers.report(0).table).not.toBeNull();
    host.role = 'slave';
    host.masterId = 'other';
    barriers.settle(0);
    expect(barriers.report(0).table).toBeNull();
    host.role = 'master';
    host.left = true;
    barriers.settle(0);
    expect(barriers.report(0).table).toBeNull();
  });

  it('a master releases its own participants locally, with the largest error code', () => {
    const { host, sent, barriers } = setup();
    host.role = 'master';
    host.masterId = 'self';
    const first = barriers.join({ name: 'start', count: 1, errorCode: 3 }, 0);
    const second = barriers.join({ name: 'start', count: null, errorCode: 7 }, 1);
    expect(first.ok && second.ok).toBe(true);
    const released = barriers.drainOutcomes().filter((outcome) => outcome.kind === 'released');
    expect(released.map((outcome) => outcome.kind === 'released' && outcome.exitCode)).toEqual([7, 7]);
    expect(sent).toEqual([]);
    expect(barriers.drainOutcomes()).toEqual([]);
  });

  it("a member's participant goes to its master, and again to a new master", () => {
    const { host, sent, barriers } = setup();
    host.role = 'slave';
    host.masterId = 'm1';
    expect(barriers.join({ name: 'b', count: null, errorCode: 0 }, 0).ok).toBe(true);
    expect(sent.map(({ to }) => to)).toEqual(['m1']);
    expect(barriers.nextDeadlineMs()).toBeLessThan(Number.POSITIVE_INFINITY);
    host.masterId = 'm2';
    host.term = 2;
    barriers.settle(10);
    expect(sent.map(({ to }) => to)).toEqual(['m1', 'm2']);
    // Reading the report never creates a client on a node without participants.
    expect(setup().barriers.report(0).client.joinsSent).toBe(0);
  });
});
