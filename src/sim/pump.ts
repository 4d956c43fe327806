// A perfect network for scenario tests of the node: ProtocolNode instances with perfect clocks,
// a fixed one-way latency, frames through the real codec, rules to drop frames, ghosts (peers that
// are announced but never answer) and a log of every frame sent. Runs on the shared event loop
// (harness.ts); the seeded simulator (simulation.ts) adds clocks, faults and invariants.
import { nodeConfig } from '../core/defaults.ts';
import { FrameType, type Frame, type FrameTypeCode, type OutgoingFrame } from '../core/frames.ts';
import type { Correction, NodeEvent } from '../core/events.ts';
import type { NodeConfig } from '../core/node-config.ts';
import { ProtocolNode } from '../core/node.ts';
import type { Endpoint, NodeId } from '../core/types.ts';
import { decodeFrame, encodeFrame } from '../wire/codec.ts';
import { EventLoop } from './harness.ts';
import { SeededRandom } from './random.ts';

const EPOCH_NS = 1_790_000_000_000_000_000n;
export const nsAt = (ms: number): bigint => EPOCH_NS + BigInt(Math.round(ms * 1e6));

export interface PumpNode {
  id: NodeId;
  priority: number;
  endpoint: Endpoint;
  node: ProtocolNode;
  corrections: Correction[];
  events: { atMs: number; event: NodeEvent }[];
}

export interface SentFrame {
  atMs: number;
  from: NodeId;
  to: NodeId | undefined;
  frame: OutgoingFrame;
  dropped: boolean;
}

interface Delivery {
  to: NodeId;
  from: Endpoint;
  bytes: Uint8Array;
}

export type DropRule = (sent: { from: NodeId; to: NodeId | undefined; frame: OutgoingFrame }) => boolean;

/** Nodes on a perfect network with fixed latency; time advances to the next delivery or deadline. */
export class Pump {
  private readonly loop = new EventLoop<Delivery>();
  /** Simulated time now (ms). */
  get nowMs(): number {
    return this.loop.nowMs;
  }

  readonly nodes = new Map<NodeId, PumpNode>();
  /** Every node id with an address, including ghosts that never run. */
  private readonly addresses = new Map<NodeId, Endpoint>();
  private readonly byAddress = new Map<string, NodeId>();
  readonly sent: SentFrame[] = [];
  /** Time of the last POLL or CORRECT each node received from each sender. */
  readonly lastMasterFrameMs = new Map<string, number>();
  drop: DropRule = () => false;

  constructor(
    private readonly options: { latencyMs?: number; config?: Partial<NodeConfig>; seed?: number; random?: () => number } = {},
  ) {}

  private endpointFor(id: NodeId): Endpoint {
    let endpoint = this.addresses.get(id);
    if (!endpoint) {
      endpoint = { address: `198.18.1.${this.addresses.size + 1}`, port: 7412 };
      this.addresses.set(id, endpoint);
      this.byAddress.set(`${endpoint.address}:${endpoint.port}`, id);
    }
    return endpoint;
  }

  add(id: NodeId, priority = 100): PumpNode {
    const seeded = new SeededRandom((this.options.seed ?? 1) * 1000 + this.addresses.size);
    const random = this.options.random ?? (() => seeded.next());
    const node = new ProtocolNode(nodeConfig({ ...this.options.config, nodeId: id, priority, random }), this.nowMs);
    const entry: PumpNode = { id, priority, endpoint: this.endpointFor(id), node, corrections: [], events: [] };
    this.nodes.set(id, entry);
    this.flush(entry);
    return entry;
  }

  /** A node others know about (as if from mDNS) that never answers: frames to it vanish. */
  ghost(id: NodeId, priority = 100): { id: NodeId; priority: number; endpoint: Endpoint } {
    return { id, priority, endpoint: this.endpointFor(id) };
  }

  /** Everybody discovers everybody (live nodes and the given ghosts). */
  introduceAll(ghosts: { id: NodeId; priority: number; endpoint: Endpoint }[] = []): void {
    const everyone = [...[...this.nodes.values()].map(({ id, priority, endpoint }) => ({ id, priority, endpoint })), ...ghosts];
    for (const entry of this.nodes.values()) {
      for (const other of everyone) {
        if (other.id !== entry.id) entry.node.discovered({ nodeId: other.id, priority: other.priority, endpoint: other.endpoint });
      }
      this.flush(entry);
    }
  }

  crash(id: NodeId): void {
    this.nodes.delete(id);
  }

  /** Graceful stop (SIGTERM): the node sends its LEAVE frames, then is gone. */
  leave(id: NodeId): void {
    const entry = this.nodes.get(id);
    if (!entry) throw new Error(`no live node ${id}`);
    entry.node.leave();
    this.flush(entry);
    this.nodes.delete(id);
  }

  get(id: NodeId): ProtocolNode {
    const entry = this.nodes.get(id);
    if (!entry) throw new Error(`no live node ${id}`);
    return entry.node;
  }

  private flush(entry: PumpNode): void {
    const out = entry.node.drain();
    entry.corrections.push(...out.corrections);
    for (const event of out.events) entry.events.push({ atMs: this.nowMs, event });
    for (const send of out.sends) {
      const to = this.byAddress.get(`${send.to.address}:${send.to.port}`);
      const dropped = this.drop({ from: entry.id, to, frame: send.frame });
      this.sent.push({ atMs: this.nowMs, from: entry.id, to, frame: send.frame, dropped });
      if (dropped || to === undefined) continue;
      // The shell stamps txNs at send time; clocks are perfect here.
      const bytes = encodeFrame({ ...send.frame, txNs: nsAt(this.nowMs) } as Frame);
      this.loop.at(this.nowMs + (this.options.latencyMs ?? 1), { to, from: entry.endpoint, bytes });
    }
  }

  /** Hand one frame to a node, as its shell would after decoding. */
  deliver(to: NodeId, frame: Frame, from: Endpoint): void {
    const entry = this.nodes.get(to);
    if (!entry) return;
    if (frame.type === FrameType.poll || frame.type === FrameType.correct) this.lastMasterFrameMs.set(`${frame.from}->${to}`, this.nowMs);
    entry.node.receive(frame, from, nsAt(this.nowMs), this.nowMs);
    this.flush(entry);
  }

  /** Runs the nodes until endMs: messages first, then the ticks due at each instant. */
  runUntil(endMs: number): void {
    this.loop.run({
      endMs,
      nextDeadlineMs: () => {
        let timerMs = Number.POSITIVE_INFINITY;
        for (const entry of this.nodes.values()) timerMs = Math.min(timerMs, entry.node.nextDeadlineMs());
        return timerMs;
      },
      onEvent: (delivery) => {
        const decoded = decodeFrame(delivery.bytes);
        if (!decoded.ok) throw new Error(`pump produced an invalid frame: ${decoded.reason} ${decoded.detail}`);
        this.deliver(delivery.to, decoded.frame, delivery.from);
      },
      afterEvents: (nowMs) => {
        for (const entry of [...this.nodes.values()]) {
          if (entry.node.nextDeadlineMs() <= nowMs) {
            entry.node.tick(nowMs);
            this.flush(entry);
          }
        }
      },
      repeatsMax: 10_000,
    });
  }

  masters(): NodeId[] {
    return [...this.nodes.values()].filter((entry) => entry.node.status().role === 'master').map((entry) => entry.id);
  }

  sentOfType(type: FrameTypeCode, from?: NodeId): SentFrame[] {
    return this.sent.filter((sent) => sent.frame.type === type && (from === undefined || sent.from === from));
  }
}
