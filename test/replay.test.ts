// Replay protection (on with --key-file): every frame carries its sender's boot id and a sequence
// number, and a receiver takes each (boot, seq) of a sender once, and no boot older than the newest
// it saw. Recorded frames re-injected later, among them a LEAVE of a member that has since
// restarted, must change nothing; without the protection the same replay removes that member.
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../src/wire/codec.ts';
import { FrameType } from '../src/core/frames.ts';
import { nodeConfig } from '../src/core/defaults.ts';
import { ProtocolNode } from '../src/core/node.ts';
import { PROTOCOL_VERSION, REPLAY_WINDOW_FRAMES } from '../src/core/limits.ts';
import type { Frame } from '../src/core/frames.ts';
import { Simulation } from '../src/sim/simulation.ts';

const NODES = ['n1', 'n2', 'n3', 'n4'];

interface Snapshot {
  term: number;
  masterId: string | null;
  role: string;
  peers: string[];
  correctionsApplied: number;
  framesReplayed: number;
}

function snapshot(sim: Simulation, nodeId: string): Snapshot {
  const status = sim.node(nodeId)!.status();
  return {
    term: status.term,
    masterId: status.masterId,
    role: status.role,
    peers: status.peers.map((peer) => peer.nodeId).sort(),
    correctionsApplied: status.counters.correctionsApplied,
    // Refused as replays, or as not for this node in this run (captured before it restarted).
    framesReplayed: status.counters.framesReplayed + status.counters.framesMisdirected,
  };
}

/** Records 12 s of a cluster in which n2 leaves gracefully at 6 s and restarts at 7 s; replays it all at 14 s. */
function recordAndReplay(
  replayProtection: boolean,
  only: (frame: Frame) => boolean = () => true,
): { before: Map<string, Snapshot>; after: Map<string, Snapshot>; replayed: Map<string, number>; accepted: string[]; leaves: number } {
  const sim = new Simulation({ seed: 21, nodes: NODES.map((nodeId, index) => ({ nodeId, startMs: index * 10 })), discoverAll: true, wiretap: true, config: { replayProtection } });
  sim.runUntil(6000);
  expect(sim.masters()).toEqual(['n4']);
  sim.inject('n2', (node) => node.leave());
  sim.crash('n2');
  sim.runUntil(7000);
  sim.restart('n2');
  sim.runUntil(12_000);
  const recorded = [...sim.wiretap!];
  sim.runUntil(14_000);
  const live = sim.liveNodeIds();
  const before = new Map(live.map((id) => [id, snapshot(sim, id)]));
  const replayed = new Map<string, number>();
  const accepted: string[] = [];
  for (const datagram of recorded) {
    if (!live.includes(datagram.to)) continue;
    const decoded = decodeFrame(datagram.bytes);
    if (!decoded.ok) throw new Error(decoded.detail);
    if (!only(decoded.frame)) continue;
    replayed.set(datagram.to, (replayed.get(datagram.to) ?? 0) + 1);
    const c = sim.node(datagram.to)!.status().counters;
    const was = c.framesReplayed + c.framesMisdirected;
    sim.inject(datagram.to, (node, nowMs) => node.receive(decoded.frame, sim.endpointOf(datagram.from), sim.trueNs(), nowMs));
    const d = sim.node(datagram.to)!.status().counters;
    if (d.framesReplayed + d.framesMisdirected === was) {
      const greeting = decoded.frame.type === FrameType.hello && decoded.frame.toBoot === 0;
      accepted.push(`${datagram.from}->${datagram.to} type ${decoded.frame.type}${greeting ? ' (greeting)' : ''}`);
    }
  }
  const after = new Map(live.map((id) => [id, snapshot(sim, id)]));
  const leaves = recorded.filter((datagram) => datagram.bytes.length > 0 && (decodeFrame(datagram.bytes) as { ok: true; frame: Frame }).frame.type === FrameType.leave).length;
  return { before, after, replayed, accepted, leaves };
}

describe('replay protection', () => {
  it('12 s of recorded frames (elections, polls, corrections, a LEAVE from a previous boot) re-injected change nothing', () => {
    const { before, after, replayed, accepted, leaves } = recordAndReplay(true);
    expect(leaves).toBe(3);
    // Everything refused but a few first greetings (HELLO before the sender knew the receiver's
    // run) that their receiver never got: one sent before it booted, or to n2's previous run.
    // Taking them changes nothing (checked below).
    expect(accepted.filter((line) => !line.endsWith('(greeting)')), accepted.join('; ')).toEqual([]);
    expect(accepted.length).toBeLessThan(10);
    for (const [nodeId, was] of before) {
      const now = after.get(nodeId)!;
      expect({ ...now, framesReplayed: 0 }, nodeId).toEqual({ ...was, framesReplayed: 0 });
      const acceptedHere = accepted.filter((line) => line.includes(`->${nodeId} `)).length;
      expect(now.framesReplayed - was.framesReplayed, nodeId).toBe(replayed.get(nodeId)! - acceptedHere);
      expect(now.peers, nodeId).toContain(nodeId === 'n2' ? 'n1' : 'n2');
    }
  });

  it('without it (no --key-file), the same replay makes the members forget n2 (the test can fail)', () => {
    const { before, after } = recordAndReplay(false, (frame) => frame.type === FrameType.leave);
    const changed = [...before].filter(([nodeId, was]) => after.get(nodeId)!.peers.length < was.peers.length);
    expect(changed.length).toBeGreaterThan(0);
  });

  it('a forged mDNS announcement (the highest priority, never answering) only adds a silent peer', () => {
    const sim = new Simulation({ seed: 22, nodes: NODES.map((nodeId, index) => ({ nodeId, startMs: index * 10, initialOffsetNs: index * 2e8 })), discoverAll: true, config: { replayProtection: true } });
    const forged = { nodeId: 'zz-forged', priority: 1_000_000, endpoint: { address: '198.18.200.200', port: 7412 } };
    sim.runUntil(100); // all booted, still in the discovery window
    for (const nodeId of NODES) sim.inject(nodeId, (node) => node.discovered(forged));
    sim.runUntil(20_000);
    expect(sim.masters()).toEqual(['n4']);
    expect(sim.spreadNs()).toBeLessThan(1e6);
    for (const nodeId of NODES) {
      const status = sim.node(nodeId)!.status();
      expect(status.masterId).toBe('n4');
      const peer = status.peers.find((entry) => entry.nodeId === 'zz-forged')!;
      expect(peer.lastHeardMs).toBeNull();
      // The master polled it, got nothing, and now polls it only now and then.
      if (nodeId === 'n4') expect(peer.suspect).toBe(true);
    }
  });

  it('tolerates reordering within the window, refuses duplicates, old sequence numbers and older boots', () => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'a', random: () => 0.5, replayProtection: true }), 0);
    const from = { address: '198.18.9.2', port: 7412 };
    const hello = (boot: number, seq: number): Frame => ({ v: PROTOCOL_VERSION, cluster: 'default', from: 'b', prio: 100, term: 0, boot, seq, to: 'a', toBoot: 1, txNs: 1n, type: FrameType.hello, wantReply: false, role: 0, masterId: null, masterPrio: null });
    const replayed = () => node.status().counters.framesReplayed;
    const accepted = () => node.status().counters.framesAccepted;
    node.receive(hello(5, 10), from, 1n, 0);
    node.receive(hello(5, 12), from, 1n, 0);
    node.receive(hello(5, 11), from, 1n, 0); // reordered, within the window
    expect([accepted(), replayed()]).toEqual([3, 0]);
    for (const seq of [10, 11, 12]) node.receive(hello(5, seq), from, 1n, 0); // duplicates
    expect([accepted(), replayed()]).toEqual([3, 3]);
    node.receive(hello(5, 12 + REPLAY_WINDOW_FRAMES + 1), from, 1n, 0);
    node.receive(hello(5, 12), from, 1n, 0); // now below the window
    node.receive(hello(4, 10_000), from, 1n, 0); // an older boot
    expect([accepted(), replayed()]).toEqual([4, 5]);
    node.receive(hello(6, 1), from, 1n, 0); // a restart: a newer boot starts again at 1
    node.receive(hello(5, 13 + REPLAY_WINDOW_FRAMES + 1), from, 1n, 0); // the previous boot is over
    expect([accepted(), replayed()]).toEqual([5, 6]);
  });
});
