// Election state machines, driven directly: ProtocolNode instances connected by the node pump
// (src/sim/pump.ts: fixed latency, perfect clocks, frames through the real codec, filters to drop
// frames), plus single-node tests with hand-made frames for the term and correction rules.
import { describe, expect, it } from 'vitest';
import { nodeConfig } from '../src/core/defaults.ts';
import { claimTerm } from '../src/core/election/terms.ts';
import { FrameType, type Frame, type OutgoingFrame } from '../src/core/frames.ts';
import { DUPLICATE_ID_ANSWER_INTERVAL_MS, PROTOCOL_VERSION } from '../src/core/limits.ts';
import { ProtocolNode } from '../src/core/node.ts';
import { compareKeys, type ElectionKey, type Endpoint, type NodeId } from '../src/core/types.ts';
import { nsAt, Pump } from '../src/sim/pump.ts';
import { SeededRandom } from '../src/sim/random.ts';
import { decodeFrame, encodeFrame } from '../src/wire/codec.ts';

/** The highest key among the given nodes. */
function highest(keys: ElectionKey[]): NodeId {
  return [...keys].sort(compareKeys).at(-1)!.nodeId;
}

/** Exactly one master, the expected one; every live node names it and shares its term. */
function expectAgreement(pump: Pump, expectedMaster: NodeId, context: string): number {
  expect(pump.masters(), context).toEqual([expectedMaster]);
  const term = pump.get(expectedMaster).status().term;
  for (const [id, entry] of pump.nodes) {
    const status = entry.node.status();
    expect(status.masterId, `${context}: ${id} names its master`).toBe(expectedMaster);
    expect(status.term, `${context}: ${id} term`).toBe(term);
    expect(status.role, `${context}: ${id} role`).toBe(id === expectedMaster ? 'master' : 'slave');
    expect(status.election.inProgress, `${context}: ${id} still electing`).toBeNull();
  }
  return term;
}

describe('ring election', () => {
  it('a lone node elects itself after the discovery window', () => {
    const pump = new Pump();
    pump.add('solo');
    expect(pump.get('solo').status().role).toBe('electing');
    const windowMs = pump.get('solo').nextDeadlineMs();
    expect(windowMs).toBeGreaterThanOrEqual(2000);
    expect(windowMs).toBeLessThanOrEqual(3000);
    pump.runUntil(windowMs - 1);
    expect(pump.masters()).toEqual([]);
    pump.runUntil(windowMs);
    expect(pump.masters()).toEqual(['solo']);
    // Elected in term 1; as master it holds the first term of its own (its slot) from there.
    expect(pump.get('solo').status().term).toBe(claimTerm('solo', 1));
  });

  // (id, priority) sets; the winner is decided by priority first, then by id bytes.
  const clusters: [string, [NodeId, number][]][] = [
    ['equal priorities', [['n1', 100], ['n2', 100], ['n3', 100], ['n4', 100], ['n5', 100], ['n6', 100]]],
    ['a low id with the top priority', [['alpha', 300], ['bravo', 100], ['charlie', 100], ['delta', 200], ['echo', 100]]],
    ['ids that differ only in the last byte', [['node-a', 7], ['node-b', 7], ['node-c', 7], ['node-B', 7]]],
    ['two nodes', [['x', 1], ['y', 1]]],
  ];

  for (const [name, members] of clusters) {
    it(`simultaneous initiators (${name}) end with one master, the highest key, in one term`, () => {
      // random() = 0.5 makes every discovery window exactly 2500 ms: all start at the same instant.
      const pump = new Pump({ random: () => 0.5 });
      for (const [id, priority] of members) pump.add(id, priority);
      pump.introduceAll();
      pump.runUntil(2500);
      // Every node started an election on its own, in the same instant.
      for (const entry of pump.nodes.values()) {
        const starts = entry.events.filter(({ event }) => event.kind === 'election-start');
        expect(starts.map(({ atMs, event }) => [atMs, event.kind === 'election-start' && event.reason])).toEqual([[2500, 'no master found']]);
      }
      pump.runUntil(4000);
      const winner = highest(members.map(([nodeId, priority]) => ({ nodeId, priority })));
      const term = expectAgreement(pump, winner, name);
      expect(term).toBe(claimTerm(winner, 1));
      for (const entry of pump.nodes.values()) {
        const status = entry.node.status();
        expect(status.election.last?.algorithm, entry.id).toBe('ring');
        expect(status.counters.electionsByAlgorithm.bully, entry.id).toBe(0);
      }
      // Every hop was acknowledged.
      const hops = pump.sentOfType(FrameType.election).length;
      expect(pump.sentOfType(FrameType.electionAck).length).toBe(hops);
      // The winner announced itself to every member, not only its ring successor.
      const announced = pump.sentOfType(FrameType.coordinator, winner).map((sent) => sent.to).sort();
      expect(announced).toEqual(members.map(([id]) => id).filter((id) => id !== winner).sort());
    });
  }

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('jittered starts with random priorities agree on the highest key (seed %d)', (seed) => {
    const random = new SeededRandom(seed);
    const pump = new Pump({ seed });
    const keys: ElectionKey[] = [];
    const count = 3 + random.integer(8);
    for (let index = 0; index < count; index += 1) {
      const key = { nodeId: `host-${random.integer(1000)}-${index}`, priority: 100 + random.integer(3) };
      keys.push(key);
      pump.add(key.nodeId, key.priority);
    }
    pump.introduceAll();
    pump.runUntil(4500);
    expectAgreement(pump, highest(keys), `seed ${seed}`);
  });

  it('a dead successor is skipped and the ring still completes', () => {
    const pump = new Pump({ random: () => 0.5 });
    for (const id of ['n1', 'n2', 'n3', 'n4', 'n5']) pump.add(id);
    // n3x sorts between n3 and n4: it is n3's ring successor, and it never answers.
    const ghost = pump.ghost('n3x');
    pump.introduceAll([ghost]);
    pump.runUntil(4000);
    expectAgreement(pump, 'n5', 'dead successor');
    expect(pump.get('n5').status().election.last?.algorithm).toBe('ring');
    for (const entry of pump.nodes.values()) expect(entry.node.status().counters.electionsByAlgorithm.bully, entry.id).toBe(0);
    // n3 tried the ghost twice (one resend), then marked it suspect and went on to n4.
    const toGhost = pump.sent.filter((sent) => sent.from === 'n3' && sent.to === 'n3x' && sent.frame.type === FrameType.election);
    expect(toGhost.length).toBeGreaterThanOrEqual(2);
    const n3Ghost = pump.get('n3').status().peers.find((peer) => peer.nodeId === 'n3x');
    expect(n3Ghost?.suspect).toBe(true);
    expect(pump.nodes.get('n3')!.events.some(({ event }) => event.kind === 'peer-suspect' && event.nodeId === 'n3x')).toBe(true);
    expect(pump.sent.some((sent) => sent.from === 'n3' && sent.to === 'n4' && sent.frame.type === FrameType.election)).toBe(true);
  });

  it('a dead node with the highest key is skipped, and the highest live key wins', () => {
    const pump = new Pump({ random: () => 0.5 });
    for (const id of ['n1', 'n2', 'n3', 'n4']) pump.add(id);
    const ghosts = [pump.ghost('boss', 999), pump.ghost('n2x')];
    pump.introduceAll(ghosts);
    pump.runUntil(4500);
    expectAgreement(pump, 'n4', 'dead top node');
    expect(pump.get('n4').status().election.last?.algorithm).toBe('ring');
  });
});

describe('bully fallback', () => {
  it.each(['n3', 'n5', 'n1'])('when %s acknowledges ring hops but never forwards, bully elects the highest key', (staller) => {
    const pump = new Pump({ random: () => 0.5 });
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    for (const id of ids) pump.add(id);
    pump.introduceAll();
    pump.drop = ({ from, frame }) => from === staller && frame.type === FrameType.election;
    pump.runUntil(2500 + 1000);
    // The ring cannot finish: nobody is master yet, the ring timeout (1500 ms) has not passed.
    expect(pump.masters()).toEqual([]);
    pump.runUntil(9000);
    const term = expectAgreement(pump, 'n5', `staller ${staller}`);
    expect(term).toBeGreaterThanOrEqual(2);
    for (const entry of pump.nodes.values()) {
      const status = entry.node.status();
      expect(status.election.last?.algorithm, entry.id).toBe('bully');
      expect(status.election.last?.winner, entry.id).toBe('n5');
    }
    expect(pump.get('n5').status().counters.electionsByAlgorithm.bully).toBeGreaterThanOrEqual(1);
    // The staller did acknowledge the hops it received, and its ELECTION frames were really dropped.
    expect(pump.sentOfType(FrameType.electionAck, staller).length).toBeGreaterThan(0);
    expect(pump.sentOfType(FrameType.election, staller).every((sent) => sent.dropped)).toBe(true);
    if (staller === 'n5') {
      // The top node's own hops all time out: it finds no live successor and wins bully unopposed.
      expect(pump.nodes.get('n5')!.events.some(({ event }) => event.kind === 'election-start' && event.algorithm === 'bully' && event.reason === 'no live successor')).toBe(true);
    } else {
      expect(pump.sentOfType(FrameType.bully).length).toBeGreaterThan(0);
    }
    // Berkeley rounds run under the bully master, and its first round reaches every member (a
    // member left unpolled would time out and force another election).
    const wonMs = pump.get('n5').status().election.last!.endedMs;
    pump.runUntil(wonMs + 500);
    for (const id of ['n1', 'n2', 'n3', 'n4']) {
      expect(pump.nodes.get(id)!.corrections.filter((correction) => correction.term === term).length, `${id} corrected in term ${term}`).toBeGreaterThan(0);
    }
    pump.runUntil(wonMs + 10_000);
    expect(pump.get('n5').status().counters.roundsCompleted).toBeGreaterThanOrEqual(9);
    // No further election: still the same term.
    expect(expectAgreement(pump, 'n5', `staller ${staller}, later`)).toBe(term);
  });
});

describe('re-election', () => {
  it('members start an election masterTimeoutMs after the master goes silent, in a higher term', () => {
    const pump = new Pump({ seed: 3 });
    for (const id of ['n1', 'n2', 'n3', 'n4']) pump.add(id);
    pump.introduceAll();
    pump.runUntil(6000);
    const oldTerm = expectAgreement(pump, 'n4', 'before crash');
    expect(pump.get('n4').status().counters.roundsCompleted).toBeGreaterThan(0);
    const crashMs = pump.nowMs;
    pump.crash('n4');
    const masterTimeoutMs = 3000;
    const lastHeard = new Map(['n1', 'n2', 'n3'].map((id) => [id, pump.lastMasterFrameMs.get(`n4->${id}`)!]));
    for (const heard of lastHeard.values()) expect(heard).toBeLessThanOrEqual(crashMs);
    const firstTimeoutMs = Math.min(...lastHeard.values()) + masterTimeoutMs;
    // Just before the timeout nothing has changed.
    pump.runUntil(firstTimeoutMs - 0.001);
    for (const id of lastHeard.keys()) {
      const status = pump.get(id).status();
      expect([status.role, status.masterId, status.term], id).toEqual(['slave', 'n4', oldTerm]);
    }
    pump.runUntil(firstTimeoutMs + 3000);
    const newTerm = expectAgreement(pump, 'n3', 'after crash');
    expect(newTerm).toBeGreaterThan(oldTerm);
    // Each silence-triggered election started exactly masterTimeoutMs after that member last heard the master.
    let silenceStarts = 0;
    for (const [id, heard] of lastHeard) {
      for (const { atMs, event } of pump.nodes.get(id)!.events) {
        if (event.kind === 'election-start' && event.reason === 'master silent') {
          silenceStarts += 1;
          expect(atMs, id).toBeCloseTo(heard + masterTimeoutMs, 6);
          expect(event.term).toBe(oldTerm + 1);
        }
      }
    }
    expect(silenceStarts).toBeGreaterThan(0);
  });

  it('a restarted higher node rejoins as a member of the current term without disrupting it', () => {
    const pump = new Pump({ seed: 4 });
    for (const id of ['n1', 'n2', 'n3']) pump.add(id);
    pump.introduceAll();
    pump.runUntil(6000);
    const term = expectAgreement(pump, 'n3', 'initial');
    pump.crash('n3');
    pump.runUntil(12_000);
    const term2 = expectAgreement(pump, 'n2', 'after crash');
    expect(term2).toBeGreaterThan(term);
    // n3 comes back with a fresh state (term 0) and learns the current master from its peers.
    pump.add('n3');
    pump.introduceAll();
    pump.runUntil(20_000);
    expect(expectAgreement(pump, 'n2', 'after restart')).toBe(term2);
    expect(pump.nodes.get('n3')!.corrections.filter((correction) => correction.masterId === 'n2').length).toBeGreaterThan(0);
  });
});

describe('single node: terms, corrections and clusters', () => {
  const member = { address: '198.18.2.1', port: 7412 };
  const masterA = { address: '198.18.2.2', port: 7412 };
  const masterB = { address: '198.18.2.3', port: 7412 };
  // Each frame a new sequence number, as a sender's would be (the same one twice is a replay).
  let seq = 0;
  const header = (from: NodeId, term: number, extra: { cluster?: string; prio?: number; txNs?: bigint } = {}) => ({
    v: PROTOCOL_VERSION,
    cluster: extra.cluster ?? 'default',
    from,
    prio: extra.prio ?? 100,
    term,
    boot: 1,
    seq: (seq += 1),
    to: 'member',
    toBoot: 1,
    txNs: extra.txNs ?? nsAt(0),
  });

  /** A member following `master` in `term` (learned from a COORDINATOR), with its outputs drained. */
  function follower(master: NodeId, term: number, endpoint: Endpoint): ProtocolNode {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5 }), 0);
    node.receive({ ...header(master, term), type: FrameType.coordinator, algorithm: 0 }, endpoint, nsAt(10), 10);
    const status = node.status();
    expect([status.role, status.masterId, status.term]).toEqual(['slave', master, term]);
    node.drain();
    return node;
  }

  /** Runs a frame through the codec, as the shell would. */
  function wire(frame: Frame): Frame {
    const decoded = decodeFrame(encodeFrame(frame));
    if (!decoded.ok) throw new Error(decoded.detail);
    return decoded.frame;
  }

  it('answers a POLL from the master of its term with the four-timestamp reply', () => {
    const node = follower('alpha', 5, masterA);
    const txNs = nsAt(100) - 123n;
    node.receive(wire({ ...header('alpha', 5, { txNs }), type: FrameType.poll, round: 3, probe: 1 }), masterA, nsAt(100), 100);
    const { sends } = node.drain();
    expect(sends).toHaveLength(1);
    expect(sends[0]!.to).toEqual(masterA);
    expect(sends[0]!.frame).toMatchObject({ type: FrameType.reply, round: 3, probe: 1, pollTxNs: txNs, rxNs: nsAt(100), term: 5, from: 'member' });
  });

  it('ignores a POLL from the master of an older term', () => {
    const node = follower('beta', 6, masterB);
    // alpha, even with a higher key, was master in term 5: it is stale.
    node.receive(wire({ ...header('alpha', 5, { prio: 900 }), type: FrameType.poll, round: 9, probe: 0 }), masterA, nsAt(200), 200);
    const { sends, corrections } = node.drain();
    expect(sends.filter((send) => send.frame.type === FrameType.reply)).toEqual([]);
    expect(corrections).toEqual([]);
    // It tells the stale master who leads now.
    const hellos = sends.filter((send) => send.frame.type === FrameType.hello);
    expect(hellos).toHaveLength(1);
    expect(hellos[0]!.to).toEqual(masterA);
    expect(hellos[0]!.frame).toMatchObject({ term: 6, masterId: 'beta' });
    const status = node.status();
    expect([status.role, status.masterId, status.term]).toEqual(['slave', 'beta', 6]);
    expect(status.counters.framesStale).toBe(1);
  });

  it('ignores a CORRECT from the master of an older term, and applies one from the current master', () => {
    const node = follower('beta', 6, masterB);
    node.receive(wire({ ...header('alpha', 5), type: FrameType.correct, round: 50, correctionNs: 1e9 }), masterA, nsAt(300), 300);
    expect(node.drain().corrections).toEqual([]);
    expect(node.status().lastCorrection).toBeNull();
    expect(node.status().counters.correctionsApplied).toBe(0);
    // Positive control: the master of the current term is obeyed.
    node.receive(wire({ ...header('beta', 6), type: FrameType.correct, round: 1, correctionNs: -2500 }), masterB, nsAt(400), 400);
    expect(node.drain().corrections).toEqual([{ correctionNs: -2500, term: 6, round: 1, masterId: 'beta' }]);
  });

  it('ignores a CORRECT in its term from a node that is not its master', () => {
    const node = follower('beta', 6, masterB);
    node.receive(wire({ ...header('alpha', 6), type: FrameType.correct, round: 1, correctionNs: 77 }), masterA, nsAt(300), 300);
    expect(node.drain().corrections).toEqual([]);
    expect(node.status().masterId).toBe('beta');
  });

  it('applies a correction with the same (term, round) at most once', () => {
    const node = follower('beta', 6, masterB);
    const bytes = encodeFrame({ ...header('beta', 6), type: FrameType.correct, round: 7, correctionNs: 1234 });
    const deliver = (atMs: number) => {
      const decoded = decodeFrame(bytes);
      if (!decoded.ok) throw new Error(decoded.detail);
      node.receive(decoded.frame, masterB, nsAt(atMs), atMs);
    };
    deliver(500);
    deliver(501); // the same datagram, duplicated by the network
    expect(node.drain().corrections).toEqual([{ correctionNs: 1234, term: 6, round: 7, masterId: 'beta' }]);
    // An older round arriving late is not applied either.
    node.receive(wire({ ...header('beta', 6), type: FrameType.correct, round: 6, correctionNs: 999 }), masterB, nsAt(502), 502);
    expect(node.drain().corrections).toEqual([]);
    // The next round is.
    node.receive(wire({ ...header('beta', 6), type: FrameType.correct, round: 8, correctionNs: 5 }), masterB, nsAt(503), 503);
    expect(node.drain().corrections.map((c) => c.round)).toEqual([8]);
    expect(node.status().counters.correctionsApplied).toBe(2);
  });

  it('a new term restarts round numbering: round 1 of term 7 applies after round 8 of term 6', () => {
    const node = follower('beta', 6, masterB);
    node.receive(wire({ ...header('beta', 6), type: FrameType.correct, round: 8, correctionNs: 5 }), masterB, nsAt(100), 100);
    // alpha has the higher key here: a live lower-key master is not deserted (next test).
    node.receive(wire({ ...header('alpha', 7, { prio: 200 }), type: FrameType.coordinator, algorithm: 0 }), masterA, nsAt(110), 110);
    node.receive(wire({ ...header('alpha', 7, { prio: 200 }), type: FrameType.correct, round: 1, correctionNs: 6 }), masterA, nsAt(120), 120);
    expect(node.drain().corrections.map((c) => [c.term, c.round])).toEqual([
      [6, 8],
      [7, 1],
    ]);
  });

  it('while its master lives, a member does not desert it for a lower-key master of a later term, and tells that master about its own', () => {
    const node = follower('beta', 6, masterB);
    node.receive(wire({ ...header('beta', 6), type: FrameType.correct, round: 8, correctionNs: 5 }), masterB, nsAt(100), 100);
    node.drain();
    node.receive(wire({ ...header('alpha', 7), type: FrameType.poll, round: 1, probe: 0 }), masterA, nsAt(110), 110);
    expect([node.status().masterId, node.status().term]).toEqual(['beta', 6]);
    const out = node.drain().sends;
    expect(out.map((send) => [send.to, send.frame.type, 'masterId' in send.frame ? send.frame.masterId : undefined])).toEqual([[masterA, FrameType.hello, 'beta']]);
    // Once the master has been silent for the master timeout, the later term is followed.
    node.receive(wire({ ...header('alpha', 7), type: FrameType.poll, round: 2, probe: 0 }), masterA, nsAt(3200), 3200);
    expect([node.status().masterId, node.status().term]).toEqual(['alpha', 7]);
  });

  it('ignores frames from another cluster and counts them', () => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5 }), 0);
    const foreign = { cluster: 'other-lab' };
    node.receive(wire({ ...header('alpha', 9, foreign), type: FrameType.coordinator, algorithm: 0 }), masterA, nsAt(1), 1);
    node.receive(wire({ ...header('alpha', 9, foreign), type: FrameType.poll, round: 1, probe: 0 }), masterA, nsAt(2), 2);
    node.receive(wire({ ...header('alpha', 9, foreign), type: FrameType.correct, round: 1, correctionNs: 5 }), masterA, nsAt(3), 3);
    node.receive(wire({ ...header('alpha', 9, foreign), type: FrameType.hello, wantReply: true, role: 2, masterId: 'alpha', masterPrio: 100 }), masterA, nsAt(4), 4);
    const status = node.status();
    expect(status.counters.framesOtherCluster).toBe(4);
    expect(status.counters.framesAccepted).toBe(0);
    expect(status.peers).toEqual([]);
    expect([status.role, status.masterId, status.term]).toEqual(['electing', null, 0]);
    const drained = node.drain();
    expect(drained.sends).toEqual([]);
    expect(drained.corrections).toEqual([]);
  });

  it('counts frames that carry its own node id (a duplicate id) and ignores them', () => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5 }), 0);
    node.receive(wire({ ...header('member', 3), type: FrameType.coordinator, algorithm: 0 }), member, nsAt(1), 1);
    const status = node.status();
    expect(status.counters.framesFromSelfId).toBe(1);
    expect(status.role).toBe('electing');
    expect(node.drain().events.some((event) => event.kind === 'duplicate-id')).toBe(true);
  });

  it('answers a greeting from its own node id once per interval, so the newcomer learns of the clash too', () => {
    const original = new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5 }), 0);
    const newcomer = new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5 }), 0);
    const greeting = (_atMs: number) => wire({ ...header('member', 0), type: FrameType.hello, wantReply: true, role: 0, masterId: null, masterPrio: null });
    original.receive(greeting(10), member, nsAt(10), 10);
    const answers = original.drain().sends.filter((send) => send.frame.type === FrameType.hello);
    expect(answers.map((send) => [send.to, 'wantReply' in send.frame && send.frame.wantReply])).toEqual([[member, false]]);
    // Greetings within the interval are not answered (a forged stream is not amplified).
    original.receive(greeting(20), member, nsAt(20), 20);
    original.receive(greeting(DUPLICATE_ID_ANSWER_INTERVAL_MS), member, nsAt(DUPLICATE_ID_ANSWER_INTERVAL_MS), DUPLICATE_ID_ANSWER_INTERVAL_MS);
    expect(original.drain().sends.filter((send) => send.frame.type === FrameType.hello)).toHaveLength(0);
    original.receive(greeting(10 + DUPLICATE_ID_ANSWER_INTERVAL_MS), member, nsAt(10 + DUPLICATE_ID_ANSWER_INTERVAL_MS), 10 + DUPLICATE_ID_ANSWER_INTERVAL_MS);
    expect(original.drain().sends.filter((send) => send.frame.type === FrameType.hello)).toHaveLength(1);

    // The newcomer gets the answer: it reports the duplicate id and does not answer back.
    const answer = { ...header('member', 0), ...(answers[0]?.frame as OutgoingFrame) } as Frame;
    newcomer.receive(wire(answer), masterA, nsAt(11), 11);
    const drained = newcomer.drain();
    expect(drained.events.some((event) => event.kind === 'duplicate-id')).toBe(true);
    expect(drained.sends).toEqual([]);
    expect(newcomer.status().counters.framesFromSelfId).toBe(1);
  });

  it('a COORDINATOR from an older term is refused and the sender told the current term', () => {
    const node = follower('beta', 6, masterB);
    node.receive(wire({ ...header('alpha', 4, { prio: 900 }), type: FrameType.coordinator, algorithm: 0 }), masterA, nsAt(50), 50);
    const status = node.status();
    expect([status.masterId, status.term]).toEqual(['beta', 6]);
    const { sends } = node.drain();
    expect(sends.map((send) => [send.frame.type, send.to])).toEqual([[FrameType.hello, masterA]]);
  });
});

describe('deadlines', () => {
  // tick() at nextDeadlineMs() must act: if it did nothing, a driver that sleeps until the next
  // deadline would spin at the same instant forever. Float rounding made `now - start >= timeout`
  // false at now = start + timeout for these start times (found in the simulator).
  const fractionalStartsMs = [2500.052, 2500.078, 3946.042, 3946.185, 6732.882891780778, 5241.714183781512];

  it.each(fractionalStartsMs)('the master timeout fires at its deadline (master last heard at %d ms)', (heardMs) => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5 }), 0);
    node.receive(
      { v: PROTOCOL_VERSION, cluster: 'default', from: 'boss', prio: 100, term: 3, boot: 1, seq: 1, to: 'member', toBoot: 1, txNs: nsAt(heardMs), type: FrameType.coordinator, algorithm: 0 },
      { address: '198.18.3.1', port: 7412 },
      nsAt(heardMs),
      heardMs,
    );
    expect(node.status().role).toBe('slave');
    const deadlineMs = node.nextDeadlineMs();
    expect(deadlineMs).toBe(heardMs + 3000);
    node.tick(deadlineMs);
    const status = node.status();
    // The silent master is dropped from the ring at once; alone, the node falls back to bully
    // (a term above the ring's) and, with no higher key alive, wins.
    expect(status.term).toBeGreaterThanOrEqual(4);
    expect(status.role).not.toBe('slave');
    expect(node.nextDeadlineMs()).toBeGreaterThan(deadlineMs);
  });

  it.each(fractionalStartsMs)('an unacknowledged ring hop is resent at its deadline (hop sent at %d ms)', (sentMs) => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'n1', random: () => 0.5 }), 0);
    node.discovered({ nodeId: 'n2', priority: 100, endpoint: { address: '198.18.3.2', port: 7412 } });
    node.drain();
    node.tick(sentMs); // past the discovery window: starts a ring election, the hop leaves now
    expect(node.drain().sends.map((send) => send.frame.type)).toEqual([FrameType.election]);
    const deadlineMs = node.nextDeadlineMs();
    expect(deadlineMs).toBe(sentMs + 150);
    node.tick(deadlineMs);
    expect(node.drain().sends.map((send) => send.frame.type)).toEqual([FrameType.election]);
    expect(node.nextDeadlineMs()).toBeGreaterThan(deadlineMs);
  });

  it('every deadline makes progress through a whole election and rounds', () => {
    // A node alone with one silent peer walks through ring, skip, bully and mastership.
    const node = new ProtocolNode(nodeConfig({ nodeId: 'n1', random: () => 0.37 }), 0.123456789);
    node.discovered({ nodeId: 'n0', priority: 100, endpoint: { address: '198.18.3.2', port: 7412 } });
    let previousMs = -1;
    for (let step = 0; step < 200; step += 1) {
      const deadlineMs = node.nextDeadlineMs();
      expect(deadlineMs, `step ${step}`).toBeGreaterThan(previousMs);
      node.tick(deadlineMs);
      node.drain();
      previousMs = deadlineMs;
    }
    expect(node.status().role).toBe('master');
    expect(node.status().counters.roundsCompleted).toBeGreaterThan(10);
  });
});

describe('graceful handover (LEAVE)', () => {
  it('the master leaving makes the members elect at once: a new master polls within one poll interval', () => {
    const pump = new Pump({ seed: 5 });
    for (const id of ['n1', 'n2', 'n3', 'n4']) pump.add(id);
    pump.introduceAll();
    pump.runUntil(6000);
    const oldTerm = expectAgreement(pump, 'n4', 'before leave');
    const leftMs = pump.nowMs;
    pump.leave('n4');
    expect(pump.sent.filter((sent) => sent.from === 'n4' && sent.frame.type === FrameType.leave).map((sent) => sent.to).sort()).toEqual(['n1', 'n2', 'n3']);
    pump.runUntil(leftMs + 1000);
    const newTerm = expectAgreement(pump, 'n3', 'after leave');
    expect(newTerm).toBeGreaterThan(oldTerm);
    const firstPoll = pump.sent.find((sent) => sent.from === 'n3' && sent.frame.type === FrameType.poll && sent.atMs > leftMs);
    expect(firstPoll, 'n3 polls').toBeDefined();
    expect(firstPoll!.atMs - leftMs).toBeLessThan(1000);
    // The leaver is forgotten, not merely suspected.
    for (const id of ['n1', 'n2', 'n3']) expect(pump.get(id).status().peers.map((peer) => peer.nodeId)).not.toContain('n4');
  });

  it('a member leaving is dropped from the rounds without an election', () => {
    const pump = new Pump({ seed: 6 });
    for (const id of ['n1', 'n2', 'n3']) pump.add(id);
    pump.introduceAll();
    pump.runUntil(6000);
    const term = expectAgreement(pump, 'n3', 'before leave');
    pump.leave('n1');
    pump.runUntil(pump.nowMs + 3000);
    expect(expectAgreement(pump, 'n3', 'after leave')).toBe(term);
    const master = pump.get('n3').status();
    expect(master.peers.map((peer) => peer.nodeId)).toEqual(['n2']);
    expect(master.lastRound?.members).toBe(1);
    expect(master.lastRound?.answered).toBe(1);
  });

  it('after leave() a node sends and accepts nothing', () => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'a', random: () => 0.5 }), 0);
    node.discovered({ nodeId: 'b', priority: 100, endpoint: { address: '198.18.0.2', port: 7412 } });
    node.drain();
    node.leave();
    expect(node.drain().sends.map((send) => send.frame.type)).toEqual([FrameType.leave]);
    node.tick(10_000);
    expect(node.nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY);
    expect(node.drain().sends).toEqual([]);
  });
});

describe('--never-master', () => {
  it('a never-master node with the highest key is synchronized but never master', () => {
    const pump = new Pump({ seed: 7 });
    pump.add('n1');
    pump.add('n2');
    const top = pump.add('zz-top', 1000);
    top.node = new ProtocolNode(nodeConfig({ nodeId: 'zz-top', priority: 1000, neverMaster: true, random: () => 0.5 }), pump.nowMs);
    pump.introduceAll();
    pump.runUntil(8000);
    expect(pump.masters()).toEqual(['n2']);
    const status = pump.get('zz-top').status();
    expect(status.neverMaster).toBe(true);
    expect([status.role, status.masterId]).toEqual(['slave', 'n2']);
    expect(top.corrections.length).toBeGreaterThan(0);
    expect(pump.sent.some((sent) => sent.from === 'zz-top' && sent.frame.type === FrameType.election && 'candidateId' in sent.frame && sent.frame.candidateId === 'zz-top')).toBe(false);
  });

  it('when its master goes, a never-master node waits without standing or answering bully challenges', () => {
    const pump = new Pump({ seed: 8 });
    pump.add('n1');
    const top = pump.add('zz-top', 1000);
    top.node = new ProtocolNode(nodeConfig({ nodeId: 'zz-top', priority: 1000, neverMaster: true, random: () => 0.5 }), pump.nowMs);
    pump.introduceAll();
    pump.runUntil(6000);
    expect(pump.masters()).toEqual(['n1']);
    pump.crash('n1');
    pump.runUntil(30_000);
    expect(pump.masters()).toEqual([]);
    const status = pump.get('zz-top').status();
    expect([status.role, status.masterId]).toEqual(['electing', null]);
    expect(pump.sent.some((sent) => sent.from === 'zz-top' && (sent.frame.type === FrameType.bully || sent.frame.type === FrameType.bullyOk || sent.frame.type === FrameType.coordinator))).toBe(false);
    // Nothing left to do: no timer spins.
    expect(pump.get('zz-top').nextDeadlineMs()).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('two masters meet (a healed partition)', () => {
  const left = ['n1', 'n2', 'n3'];
  const right = ['n4', 'n5', 'n6'];
  const side = (id: NodeId | undefined) => (id !== undefined && left.includes(id) ? 'left' : 'right');

  for (const [name, priorities] of [
    ['the right side has the higher key', { n6: 100, n3: 100 }],
    ['the left side has the higher key', { n3: 500, n6: 100 }],
  ] as const) {
    it(`each side elects its own master; after healing the higher key stays and the other joins within two poll intervals (${name})`, () => {
      const pump = new Pump({ seed: 11 });
      for (const id of [...left, ...right]) pump.add(id, (priorities as Record<string, number>)[id] ?? 100);
      pump.introduceAll();
      let partitioned = true;
      pump.drop = ({ from, to }) => partitioned && side(from) !== side(to);
      pump.runUntil(15_000);
      const masters = pump.masters().sort();
      expect(masters).toEqual(['n3', 'n6']);
      for (const id of left) expect(pump.get(id).status().masterId).toBe('n3');
      for (const id of right) expect(pump.get(id).status().masterId).toBe('n6');

      const termsBefore = { n3: pump.get('n3').status().term, n6: pump.get('n6').status().term };
      const healMs = pump.nowMs;
      partitioned = false;
      pump.runUntil(healMs + 2 * 1000);
      const winner = compareKeys({ nodeId: 'n3', priority: priorities.n3 }, { nodeId: 'n6', priority: priorities.n6 }) > 0 ? 'n3' : 'n6';
      expect(pump.masters()).toEqual([winner]);
      const terms = new Set<number>();
      for (const id of [...left, ...right]) {
        const status = pump.get(id).status();
        expect(status.masterId, id).toBe(winner);
        terms.add(status.term);
      }
      expect(terms.size).toBe(1);
      // The winner takes over (one new term of its own) only if the loser's term was above its
      // own; otherwise everyone simply follows the winner's term. Never more than once: frames in
      // flight from before the takeover do not trigger more (they once caused a storm).
      const winnerStatus = pump.get(winner).status();
      const loserTermBefore = winner === 'n3' ? termsBefore.n6 : termsBefore.n3;
      const winnerTermBefore = winner === 'n3' ? termsBefore.n3 : termsBefore.n6;
      if (loserTermBefore > winnerTermBefore) {
        expect(winnerStatus.counters.takeovers).toBe(1);
        expect(winnerStatus.election.last?.algorithm).toBe('takeover');
        expect(winnerStatus.counters.electionsByAlgorithm.takeover).toBe(1);
        expect(winnerStatus.term).toBe(claimTerm(winner, loserTermBefore + 1));
      } else {
        expect(winnerStatus.counters.takeovers).toBe(0);
        expect(winnerStatus.term).toBe(winnerTermBefore);
      }
      expect([...terms][0]).toBe(winnerStatus.term);
      // The winner's members never followed the loser in between.
      const loser = winner === 'n3' ? 'n6' : 'n3';
      const winnerSide = winner === 'n3' ? left : right;
      for (const id of winnerSide) {
        const followedLoser = pump.nodes.get(id)!.events.some(({ atMs, event }) => atMs >= healMs && event.kind === 'role' && event.masterId === loser);
        expect(followedLoser, id).toBe(false);
      }
    });
  }
});

describe('--election bully', () => {
  it('elections start with the bully algorithm and elect the highest key', () => {
    const pump = new Pump({ seed: 12, config: { electionAlgorithm: 'bully' } });
    for (const id of ['n1', 'n2', 'n3', 'n4']) pump.add(id);
    pump.introduceAll();
    pump.runUntil(6000);
    expect(pump.masters()).toEqual(['n4']);
    for (const id of ['n1', 'n2', 'n3']) expect(pump.get(id).status().election.last?.algorithm).toBe('bully');
    expect(pump.sent.some((sent) => sent.frame.type === FrameType.election)).toBe(false);
  });
});

describe('election backoff', () => {
  it('repeated failed elections back off exponentially with jitter, up to a cap', () => {
    // A higher node that answers every bully challenge but never announces itself (a broken or
    // one-way-reachable peer): each attempt fails, and the retries must spread out.
    let jitter = 0.5;
    const node = new ProtocolNode(nodeConfig({ nodeId: 'n1', electionAlgorithm: 'bully', random: () => jitter }), 0);
    const higher = { address: '198.18.4.9', port: 7412 };
    node.discovered({ nodeId: 'n9', priority: 100, endpoint: higher });
    node.drain();
    const retries: number[] = [];
    let nowMs = 0;
    for (let attempt = 0; attempt < 8; attempt += 1) {
      nowMs = node.nextDeadlineMs();
      node.tick(nowMs); // starts the (next) bully election
      const challenge = node.drain().sends.find((send) => send.frame.type === FrameType.bully);
      expect(challenge, `attempt ${attempt}`).toBeDefined();
      const term = node.status().term;
      node.receive({ v: PROTOCOL_VERSION, cluster: 'default', from: 'n9', prio: 100, term, boot: 1, seq: attempt + 1, to: '', toBoot: 0, txNs: nsAt(nowMs), type: FrameType.bullyOk }, higher, nsAt(nowMs), nowMs);
      nowMs = node.nextDeadlineMs(); // waiting for n9's COORDINATOR, which never comes
      node.tick(nowMs);
      const failed = node.drain().events.find((event) => event.kind === 'election-failed');
      expect(failed, `attempt ${attempt}`).toBeDefined();
      if (failed?.kind === 'election-failed') retries.push(Math.round(failed.retryInMs));
      expect(node.status().role).toBe('electing');
      expect(node.nextDeadlineMs() - nowMs).toBeCloseTo(failed?.kind === 'election-failed' ? failed.retryInMs : -1, 6);
      if (attempt === 5) jitter = 0.9; // jitter scales the wait between 0.5x and 1.5x
    }
    // random() = 0.5 gives factor 1: 150 ms * 2^k, capped at ELECTION_BACKOFF_MS_MAX (8 s).
    expect(retries.slice(0, 6)).toEqual([300, 600, 1200, 2400, 4800, 8000]);
    expect(retries.slice(6)).toEqual([11200, 11200]);
  });
});
