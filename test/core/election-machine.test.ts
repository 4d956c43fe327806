// The election sub-machine alone (src/core/election/election.ts), with a fake node as its host:
// ring hops and their acknowledgements, skipping a dead successor, the bully fallback, backoff
// after a failed election, and that tick() acts on exactly the deadlines nextDeadlineMs() reports.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame, type FrameBody } from '../../src/core/frames.ts';
import type { NodeEvent } from '../../src/core/events.ts';
import { Election, type ElectionConfig, type ElectionHost, type ElectionPeer } from '../../src/core/election/election.ts';
import type { Outbox } from '../../src/core/outbox.ts';
import type { ElectionAlgorithm, Endpoint, NodeId, Role } from '../../src/core/types.ts';

const CONFIG: ElectionConfig = {
  nodeId: 'n5',
  priority: 0,
  neverMaster: false,
  electionAlgorithm: 'ring',
  discoveryWindowMs: 1000,
  hopAckTimeoutMs: 100,
  ringTimeoutMs: 2000,
  bullyAnswerTimeoutMs: 300,
  bullyCoordinatorTimeoutMs: 700,
  pollIntervalMs: 1000,
  random: () => 0.5,
};

const endpointOf = (nodeId: NodeId): Endpoint => ({ address: '198.18.0.1', port: Number(nodeId.slice(1)) });

class FakeNode implements ElectionHost, Outbox {
  term = 0;
  key = { nodeId: CONFIG.nodeId, priority: CONFIG.priority };
  get selfKey() {
    return this.key;
  }
  role: Role = 'electing';
  masterId: NodeId | null = null;
  lastMasterHeardMs = 0;
  readonly table: ElectionPeer[];
  sent: { to: string; body: FrameBody }[] = [];
  events: NodeEvent[] = [];
  won: ElectionAlgorithm[] = [];
  stale: Endpoint[] = [];
  election!: Election;

  constructor(peerIds: NodeId[]) {
    this.table = peerIds.map((nodeId) => ({ nodeId, priority: 0, endpoint: endpointOf(nodeId), suspect: false }));
  }
  peers(): Iterable<ElectionPeer> {
    return this.table;
  }
  peerCount(): number {
    return this.table.length;
  }
  enterElection(term: number): void {
    this.term = term;
    this.masterId = null;
    this.role = 'electing';
  }
  becomeMaster(algorithm: ElectionAlgorithm, nowMs: number): void {
    this.won.push(algorithm);
    this.role = 'master';
    this.masterId = CONFIG.nodeId;
    this.election.finish(CONFIG.nodeId, algorithm, nowMs);
  }
  informStale(to: Endpoint): void {
    this.stale.push(to);
  }
  sendHello(to: Endpoint): void {
    this.sent.push({ to: `${to.port}`, body: { type: FrameType.hello } as FrameBody });
  }
  markSuspect(nodeId: NodeId): void {
    const peer = this.table.find((candidate) => candidate.nodeId === nodeId);
    if (peer) peer.suspect = true;
  }
  sendTo(nodeId: NodeId, body: FrameBody): void {
    this.sent.push({ to: nodeId, body });
  }
  send(to: Endpoint, body: FrameBody): void {
    this.sent.push({ to: `n${to.port}`, body });
  }
  emit(event: NodeEvent): void {
    this.events.push(event);
  }
  /** Frames sent since the last call, as "type->to". */
  take(): string[] {
    return this.sent.splice(0).map(({ to, body }) => `${body.type}->${to}`);
  }
}

function setup(peerIds: NodeId[], config: Partial<ElectionConfig> = {}) {
  const node = new FakeNode(peerIds);
  const counters = { electionsStarted: 0, electionsByAlgorithm: { ring: 0, bully: 0, takeover: 0 } };
  node.key = { nodeId: config.nodeId ?? CONFIG.nodeId, priority: config.priority ?? CONFIG.priority };
  node.election = new Election({ ...CONFIG, ...config }, node, node, counters, 0);
  return { node, election: node.election, counters };
}

const E = FrameType.election;
const B = FrameType.bully;

describe('election sub-machine', () => {
  it('waits out the discovery window, then sends its candidacy to its ring successor', () => {
    const { node, election, counters } = setup(['n7', 'n3']);
    expect(election.nextDeadlineMs()).toBe(1000); // random 0.5: no jitter
    election.tick(999);
    expect(election.current).toBeNull();
    election.tick(1000);
    expect(node.term).toBe(1);
    expect(node.take()).toEqual([`${E}->n7`]);
    expect(election.current).toMatchObject({ kind: 'ring', term: 1, startedMs: 1000, deadlineMs: 3000 });
    expect(election.nextDeadlineMs()).toBe(1100);
    expect(counters).toEqual({ electionsStarted: 1, electionsByAlgorithm: { ring: 1, bully: 0, takeover: 0 } });
  });

  it('sends an unacknowledged hop again, then skips the dead successor', () => {
    const { node, election } = setup(['n7', 'n3']);
    election.start('test', 0);
    node.take();
    election.tick(100);
    expect(node.take()).toEqual([`${E}->n7`]);
    expect(election.nextDeadlineMs()).toBe(200);
    election.tick(200);
    expect(node.table.find((peer) => peer.nodeId === 'n7')?.suspect).toBe(true);
    expect(node.take()).toEqual([`${E}->n3`]);
    // An acknowledgement clears the hop: only the ring's own deadline is left.
    const hop = (election.current as { hop: { hopId: number } }).hop;
    election.onElectionAck({ type: FrameType.electionAck, from: 'n3', term: 1, hopId: hop.hopId } as Frame & { type: typeof FrameType.electionAck });
    expect(election.nextDeadlineMs()).toBe(CONFIG.ringTimeoutMs);
  });

  it('a ring of one wins at once; its own candidacy coming round wins too', () => {
    const alone = setup([]);
    alone.election.start('test', 0);
    expect(alone.node.won).toEqual(['ring']);
    expect(alone.election.last).toMatchObject({ term: 1, algorithm: 'ring', winner: 'n5', durationMs: 0 });

    const { node, election } = setup(['n3']);
    election.start('test', 10);
    election.onElection({ type: E, from: 'n3', term: 1, prio: 0, hopId: 9, candidateId: 'n5', candidatePrio: 0 } as Frame & { type: typeof E }, endpointOf('n3'), 50);
    expect(node.won).toEqual(['ring']);
    expect(election.last).toMatchObject({ winner: 'n5', durationMs: 40 });
  });

  it('passes on a higher candidate, and not a lower one again', () => {
    const { node, election } = setup(['n7', 'n3']);
    const frame = (candidateId: string, term: number) => ({ type: E, from: 'n3', term, prio: 0, hopId: 1, candidateId, candidatePrio: 0 }) as Frame & { type: typeof E };
    election.onElection(frame('n9', 4), endpointOf('n3'), 0);
    expect(node.term).toBe(4);
    expect(node.take()).toEqual([`${FrameType.electionAck}->n3`, `${E}->n7`]);
    expect((election.current as { bestSent: { nodeId: string } }).bestSent.nodeId).toBe('n9');
    election.onElection(frame('n8', 4), endpointOf('n3'), 1);
    expect(node.take()).toEqual([`${FrameType.electionAck}->n3`]);
  });

  it('falls back to bully when the ring times out, and wins when no higher key answers', () => {
    const { node, election } = setup(['n3', 'n7', 'n9']);
    election.start('test', 0);
    const ringDeadlineMs = CONFIG.ringTimeoutMs;
    // Acknowledge every hop so that only the ring deadline is left.
    for (;;) {
      const state = election.current as { hop: { hopId: number; toId: string } | null };
      if (state.hop === null) break;
      election.onElectionAck({ type: FrameType.electionAck, from: state.hop.toId, term: node.term, hopId: state.hop.hopId } as Frame & { type: typeof FrameType.electionAck });
    }
    node.take();
    election.tick(ringDeadlineMs);
    expect(election.current).toMatchObject({ kind: 'bully-answers', term: 2, startedMs: 0, deadlineMs: ringDeadlineMs + 300 });
    expect(node.take().sort()).toEqual([`${B}->n7`, `${B}->n9`]);
    election.tick(ringDeadlineMs + 300);
    expect(node.won).toEqual(['bully']);
    expect(election.last).toMatchObject({ term: 2, algorithm: 'bully', durationMs: ringDeadlineMs + 300 });
  });

  it('after a bully answer waits for a coordinator, and backs off when none comes', () => {
    const { node, election } = setup(['n9'], { electionAlgorithm: 'bully' });
    election.start('test', 0);
    election.onBullyOk({ type: FrameType.bullyOk, from: 'n9', term: 1 } as Frame & { type: typeof FrameType.bullyOk }, 50);
    expect(election.current).toMatchObject({ kind: 'bully-coordinator', deadlineMs: 750 });
    election.tick(750);
    expect(election.current).toBeNull();
    const failed = node.events.find((event) => event.kind === 'election-failed');
    // hopAckTimeoutMs x 2^1 x (0.5 + 0.5)
    expect(failed).toMatchObject({ kind: 'election-failed', term: 1, retryInMs: 200 });
    expect(election.nextDeadlineMs()).toBe(1000); // the discovery window still rules
    election.tick(1000);
    expect(election.current).toMatchObject({ kind: 'bully-answers', term: 2 });
    // A failed election leaves no record: the retry still says no master was found.
    expect(election.last).toBeNull();
    expect(node.events.filter((event) => event.kind === 'election-start').at(-1)).toMatchObject({ reason: 'no master found' });
  });

  it('answers a lower challenger and waits for a higher one', () => {
    const { node, election } = setup(['n3', 'n9']);
    node.term = 3;
    node.role = 'slave';
    election.onBully({ type: B, from: 'n3', term: 4, prio: 0 } as Frame & { type: typeof B }, endpointOf('n3'), 0);
    expect(node.take()).toEqual([`${B}->n9`, `${FrameType.bullyOk}->n3`]);
    expect(election.current).toMatchObject({ kind: 'bully-answers', term: 4 });
    election.onBully({ type: B, from: 'n9', term: 5, prio: 0 } as Frame & { type: typeof B }, endpointOf('n9'), 10);
    expect(node.take()).toEqual([]);
    expect(election.current).toMatchObject({ kind: 'bully-coordinator', term: 5, startedMs: 0, deadlineMs: 710 });
  });

  it('never leaves tick() with work still due at the deadline it reported', () => {
    for (const peers of [[], ['n3'], ['n7'], ['n3', 'n7', 'n9'], ['n1', 'n2', 'n3', 'n4']]) {
      for (const algorithm of ['ring', 'bully'] as const) {
        const { node, election } = setup(peers, { electionAlgorithm: algorithm, hopAckTimeoutMs: 0.1 + 0.2, ringTimeoutMs: 1000.3 });
        for (let step = 0; step < 50 && node.role !== 'master'; step += 1) {
          const deadlineMs = election.nextDeadlineMs();
          expect(deadlineMs).toBeLessThan(Number.POSITIVE_INFINITY);
          election.tick(deadlineMs);
          expect(election.nextDeadlineMs()).toBeGreaterThan(deadlineMs);
        }
        expect(node.role).toBe('master');
      }
    }
  });
});
