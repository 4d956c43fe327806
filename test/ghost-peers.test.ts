// Ghost peers on an open cluster: a forged HELLO (spoofed source, an id nobody runs) used to make
// the master greet that address about three times a second forever, and forged ids filled
// --max-peers until a real agent was refused. Pure core, driven by a tiny in-test network of
// ProtocolNodes (zero latency, perfect clocks): ghosts age out, greetings to a silent peer back
// off with a cap and a bounded total rate, and a real member is admitted when the table is full
// of ghosts; a real member that goes silent is never pushed out by ghosts.
import { describe, expect, it } from 'vitest';
import { nodeConfig } from '../src/core/defaults.ts';
import { FrameType, type Frame, type FrameTypeCode } from '../src/core/frames.ts';
import { PROTOCOL_VERSION, SILENT_PEER_FULL_RATE_GREETINGS, SILENT_PEER_GREET_INTERVAL_MS_MAX, SILENT_PEER_GREETINGS_PER_ROUND_MAX, UNANSWERED_PEER_TTL_MS } from '../src/core/limits.ts';
import { ProtocolNode, type NodeConfig, type NodeEvent } from '../src/core/node.ts';
import { endpointKey, type Endpoint } from '../src/core/types.ts';

const EPOCH_NS = 1_790_000_000_000_000_000n;
const nsAt = (ms: number): bigint => EPOCH_NS + BigInt(Math.round(ms * 1e6));
const POLL_MS = 1000;

interface Sent {
  atMs: number;
  to: string;
  type: FrameTypeCode;
}

/** ProtocolNodes on endpoints; frames to an endpoint without a node (a ghost's) go nowhere but are recorded. */
class Net {
  nowMs = 0;
  readonly nodes = new Map<string, { node: ProtocolNode; endpoint: Endpoint; events: NodeEvent[] }>();
  readonly sent: Sent[] = [];
  silenced = new Set<string>();

  add(nodeId: string, port: number, extra: Partial<NodeConfig> = {}): ProtocolNode {
    const endpoint = { address: '198.18.0.1', port };
    const node = new ProtocolNode(nodeConfig({ nodeId, random: () => 0.5, pollIntervalMs: POLL_MS, ...extra }), this.nowMs);
    this.nodes.set(endpointKey(endpoint), { node, endpoint, events: [] });
    return node;
  }

  endpointOf(node: ProtocolNode): Endpoint {
    return [...this.nodes.values()].find((entry) => entry.node === node)!.endpoint;
  }

  eventsOf(node: ProtocolNode): NodeEvent[] {
    return [...this.nodes.values()].find((entry) => entry.node === node)!.events;
  }

  /** Delivers what every node wants sent, until nothing is left. */
  flush(): void {
    for (let pass = 0; pass < 100; pass += 1) {
      let any = false;
      for (const [key, entry] of this.nodes) {
        const drained = entry.node.drain();
        entry.events.push(...drained.events);
        for (const send of drained.sends) {
          any = true;
          const to = endpointKey(send.to);
          this.sent.push({ atMs: this.nowMs, to, type: send.frame.type });
          const target = this.nodes.get(to);
          if (target === undefined || this.silenced.has(to) || this.silenced.has(key)) continue;
          target.node.receive({ ...send.frame, txNs: nsAt(this.nowMs) } as Frame, entry.endpoint, nsAt(this.nowMs), this.nowMs);
        }
      }
      if (!any) return;
    }
  }

  runUntil(endMs: number): void {
    for (;;) {
      this.flush();
      const next = Math.min(...[...this.nodes.values()].map((entry) => entry.node.nextDeadlineMs()));
      if (next > endMs) break;
      this.nowMs = Math.max(this.nowMs, next);
      for (const entry of this.nodes.values()) if (entry.node.nextDeadlineMs() <= this.nowMs) entry.node.tick(this.nowMs);
    }
    this.nowMs = endMs;
    for (const entry of this.nodes.values()) entry.node.tick(endMs);
    this.flush();
  }

  /** A HELLO nobody sent: an id nobody runs, from a (spoofed) address where nothing answers. */
  forgeHello(target: ProtocolNode, ghostId: string, from: Endpoint): void {
    const frame: Frame = {
      v: PROTOCOL_VERSION,
      cluster: 'default',
      from: ghostId,
      prio: 100,
      term: 0,
      boot: 1,
      seq: 1,
      to: '',
      toBoot: 0,
      txNs: nsAt(this.nowMs),
      type: FrameType.hello,
      wantReply: true,
      role: 0,
      masterId: null,
      masterPrio: null,
    };
    target.receive(frame, from, nsAt(this.nowMs), this.nowMs);
    this.flush();
  }
}

const ghostAt = (index: number): Endpoint => ({ address: '198.18.9.9', port: 10_000 + index });

function masterWithMember(peersMax?: number): { net: Net; master: ProtocolNode; member: ProtocolNode } {
  const net = new Net();
  const master = net.add('master', 7412, { priority: 500, ...(peersMax === undefined ? {} : { peersMax }) });
  const member = net.add('member', 7413, peersMax === undefined ? {} : { peersMax });
  master.discovered({ nodeId: 'member', priority: 100, endpoint: net.endpointOf(member) });
  member.discovered({ nodeId: 'master', priority: 500, endpoint: net.endpointOf(master) });
  net.runUntil(10_000);
  expect(master.status().role).toBe('master');
  expect(member.status().masterId).toBe('master');
  return { net, master, member };
}

describe('ghost peers (forged HELLOs on an open cluster)', () => {
  it('one forged HELLO: greetings back off, stay bounded, and the ghost is forgotten', () => {
    const { net, master } = masterWithMember();
    const ghost = ghostAt(1);
    net.forgeHello(master, 'ghost', ghost);
    expect(master.status().peers.map((peer) => peer.nodeId).sort()).toEqual(['ghost', 'member']);
    const startMs = net.nowMs;
    net.runUntil(startMs + UNANSWERED_PEER_TTL_MS + 5000);
    const toGhost = net.sent.filter((sent) => sent.to === endpointKey(ghost));
    // It used to be about three frames a second for as long as the master ran (~900 here).
    expect(toGhost.length).toBeLessThan(150);
    expect(master.status().peers.map((peer) => peer.nodeId)).toEqual(['member']);
    expect(master.status().counters.peersExpired).toBe(1);
    expect(net.eventsOf(master)).toContainEqual({ kind: 'peer-expired', nodeId: 'ghost', why: 'never answered' });
    // The greetings after the full-rate phase are HELLOs spaced by a doubling interval, capped.
    const hellos = toGhost.filter((sent) => sent.type === FrameType.hello).map((sent) => sent.atMs);
    const gaps = hellos.slice(1).map((atMs, index) => atMs - hellos[index]!);
    const lateGaps = gaps.slice(SILENT_PEER_FULL_RATE_GREETINGS + 1);
    expect(lateGaps.length).toBeGreaterThan(3);
    for (let index = 1; index < lateGaps.length; index += 1) expect(lateGaps[index]!).toBeGreaterThanOrEqual(Math.min(lateGaps[index - 1]!, SILENT_PEER_GREET_INTERVAL_MS_MAX - POLL_MS));
    expect(Math.max(...gaps)).toBeLessThanOrEqual(SILENT_PEER_GREET_INTERVAL_MS_MAX + POLL_MS);
    expect(Math.max(...lateGaps)).toBeGreaterThanOrEqual(16 * POLL_MS);
    // Forgotten means silent: nothing more goes to that address.
    const sentBefore = net.sent.length;
    net.runUntil(net.nowMs + 120_000);
    expect(net.sent.slice(sentBefore).filter((sent) => sent.to === endpointKey(ghost))).toEqual([]);
    // The real member was never in danger.
    expect(master.status().peers.find((peer) => peer.nodeId === 'member')!.suspect).toBe(false);
  });

  it('a forger repeating HELLOs from the spoofed address does not put it back into the polls', () => {
    const { net, master } = masterWithMember();
    const ghost = ghostAt(2);
    net.forgeHello(master, 'ghost', ghost);
    net.runUntil(net.nowMs + 10_000);
    expect(master.status().peers.find((peer) => peer.nodeId === 'ghost')!.suspect).toBe(true);
    const pollSeconds = () => new Set(net.sent.filter((sent) => sent.to === endpointKey(ghost) && sent.type === FrameType.poll).map((sent) => Math.floor(sent.atMs / POLL_MS))).size;
    const pollsBefore = pollSeconds();
    for (let second = 0; second < 20; second += 1) {
      net.forgeHello(master, 'ghost', ghost);
      net.runUntil(net.nowMs + 1000);
    }
    expect(master.status().peers.find((peer) => peer.nodeId === 'ghost')!.suspect).toBe(true);
    // Only the every-8th-round poll of a silent peer (two or three rounds in 20 s), not every round.
    expect(pollSeconds() - pollsBefore).toBeLessThanOrEqual(3);
  });

  it(`many ghosts: at most ${SILENT_PEER_GREETINGS_PER_ROUND_MAX} silent peers are greeted per round`, () => {
    const { net, master } = masterWithMember();
    for (let index = 0; index < 500; index += 1) net.forgeHello(master, `ghost-${index}`, ghostAt(index));
    const startMs = net.nowMs;
    net.runUntil(startMs + 120_000);
    // Per round (poll interval) after the ghosts turned silent: HELLOs plus polls to ghost addresses.
    const perSecond = new Map<number, number>();
    for (const sent of net.sent) {
      if (sent.atMs < startMs + 10_000 || !sent.to.startsWith('198.18.9.9')) continue;
      const second = Math.floor(sent.atMs / POLL_MS);
      perSecond.set(second, (perSecond.get(second) ?? 0) + (sent.type === FrameType.hello ? 1 : 0));
    }
    expect(perSecond.size).toBeGreaterThan(0);
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(SILENT_PEER_GREETINGS_PER_ROUND_MAX);
    expect(master.status().counters.greetingsDeferred).toBeGreaterThan(0);
    // Fair: every ghost was greeted (or polled, every 8th round), not just the first 64.
    const greeted = new Set(net.sent.filter((sent) => (sent.type === FrameType.hello || sent.type === FrameType.poll) && sent.atMs >= startMs + 10_000 && sent.to.startsWith('198.18.9.9')).map((sent) => sent.to));
    expect(greeted.size).toBe(500);
  });

  it('a real agent is admitted when the table is full of ghosts; a real member gone silent is never pushed out', () => {
    const { net, master, member } = masterWithMember(8);
    // The member goes silent (crashed or cut off): it answered before, so it stays.
    net.silenced.add(endpointKey(net.endpointOf(member)));
    for (let index = 0; index < 7; index += 1) net.forgeHello(master, `ghost-${index}`, ghostAt(index));
    expect(master.status().peers.length).toBe(8);
    net.forgeHello(master, 'ghost-late', ghostAt(99));
    // Fresh ghosts have not proved silent yet: the table is full, the newcomer is refused.
    expect(master.status().counters.peersRefused).toBe(1);
    net.runUntil(net.nowMs + 10_000);
    expect(master.status().peers.every((peer) => peer.suspect)).toBe(true);

    const newcomer = net.add('newcomer', 7414, { peersMax: 8 });
    newcomer.discovered({ nodeId: 'master', priority: 500, endpoint: net.endpointOf(master) });
    net.runUntil(net.nowMs + 10_000);
    const ids = master.status().peers.map((peer) => peer.nodeId);
    expect(ids).toContain('newcomer');
    expect(ids).toContain('member');
    expect(ids.length).toBe(8);
    expect(net.eventsOf(master)).toContainEqual({ kind: 'peer-expired', nodeId: 'ghost-0', why: 'table full' });
    expect(newcomer.status().masterId).toBe('master');
    expect(master.status().peers.find((peer) => peer.nodeId === 'newcomer')!.suspect).toBe(false);

    // More ghosts push out ghosts, never the newcomer (answered) nor the silent member (answered).
    for (let index = 100; index < 140; index += 1) {
      net.forgeHello(master, `ghost-${index}`, ghostAt(index));
      net.runUntil(net.nowMs + 4000);
    }
    const after = master.status().peers.map((peer) => peer.nodeId);
    expect(after).toContain('newcomer');
    expect(after).toContain('member');
    expect(newcomer.status().masterId).toBe('master');
  });

  it('a member keeps peers it never talked to (other members are real, needed for elections)', () => {
    const net = new Net();
    const master = net.add('master', 7412, { priority: 500 });
    const a = net.add('a', 7413);
    const b = net.add('b', 7414);
    for (const [node, others] of [
      [master, [a, b]],
      [a, [master, b]],
      [b, [master, a]],
    ] as const) {
      for (const other of others) node.discovered({ nodeId: other === master ? 'master' : other === a ? 'a' : 'b', priority: other === master ? 500 : 100, endpoint: net.endpointOf(other) });
    }
    net.runUntil(UNANSWERED_PEER_TTL_MS * 2);
    expect(a.status().peers.map((peer) => peer.nodeId).sort()).toEqual(['b', 'master']);
    expect(b.status().peers.map((peer) => peer.nodeId).sort()).toEqual(['a', 'master']);
    // And when the master dies, the two elect one of themselves.
    net.silenced.add(endpointKey(net.endpointOf(master)));
    net.runUntil(net.nowMs + 20_000);
    expect(a.status().masterId).toBe('b');
    expect(b.status().role).toBe('master');
  });
});
