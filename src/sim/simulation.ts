// Deterministic simulation: many protocol nodes in one process, driven from one seed. Each node
// runs the same ProtocolNode as the daemon, with a VirtualClock over simulated true time; frames
// go through the real codec and a network with latency, jitter and loss.
import type { NodeConfig } from '../core/node.ts';
import { ProtocolNode } from '../core/node.ts';
import { nodeConfig } from '../core/defaults.ts';
import type { Frame } from '../core/frames.ts';
import type { Endpoint, NodeId } from '../core/types.ts';
import { VirtualClock } from '../clock/virtual.ts';
import { SLEW_PPM_MAX_DEFAULT, STEP_THRESHOLD_NS_DEFAULT } from '../core/limits.ts';
import { decodeFrame, encodeFrame } from '../wire/codec.ts';
import { EventQueue } from './queue.ts';
import { SeededRandom } from './random.ts';

export interface SimNodeSpec {
  nodeId: NodeId;
  priority?: number;
  initialOffsetNs?: number;
  driftPpm?: number;
  /** Simulated ms at which the node boots. */
  startMs?: number;
}

export interface SimNetworkSpec {
  /** One-way base latency. */
  latencyMs: number;
  /** Mean of the exponential jitter added to each delivery. */
  jitterMeanMs: number;
  /** Probability that a datagram is lost. */
  lossRate: number;
}

export interface SimulationOptions {
  seed: number;
  nodes: SimNodeSpec[];
  network?: Partial<SimNetworkSpec>;
  config?: Partial<NodeConfig>;
  /** Nodes know each other from the start (as after mDNS discovery). */
  discoverAll?: boolean;
}

interface SimNode {
  spec: SimNodeSpec;
  endpoint: Endpoint;
  node: ProtocolNode | null;
  clock: VirtualClock;
  /** Invalidates timer events scheduled before the latest input. */
  timerGeneration: number;
}

type SimEvent =
  | { kind: 'boot'; nodeId: NodeId }
  | { kind: 'timer'; nodeId: NodeId; generation: number }
  | { kind: 'deliver'; to: NodeId; from: Endpoint; bytes: Uint8Array };

/** Simulated true time starts at a realistic epoch so 64-bit timestamps are exercised. */
const EPOCH_NS = 1_790_000_000_000_000_000n;

export class Simulation {
  readonly random: SeededRandom;
  readonly network: SimNetworkSpec;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly byEndpoint = new Map<string, NodeId>();
  private readonly options: SimulationOptions;
  nowMs = 0;
  framesSent = 0;
  framesLost = 0;
  framesRejected = 0;

  constructor(options: SimulationOptions) {
    this.options = options;
    this.random = new SeededRandom(options.seed);
    this.network = { latencyMs: 0.1, jitterMeanMs: 0.05, lossRate: 0, ...options.network };
    options.nodes.forEach((spec, index) => {
      const endpoint = { address: `198.18.0.${index + 1}`, port: 7412 };
      const clock = this.newClock(spec);
      this.nodes.set(spec.nodeId, { spec, endpoint, node: null, clock, timerGeneration: 0 });
      this.byEndpoint.set(`${endpoint.address}:${endpoint.port}`, spec.nodeId);
      this.queue.push(spec.startMs ?? 0, { kind: 'boot', nodeId: spec.nodeId });
    });
  }

  private newClock(spec: SimNodeSpec): VirtualClock {
    return new VirtualClock({
      initialOffsetNs: spec.initialOffsetNs ?? 0,
      driftPpm: spec.driftPpm ?? 0,
      startHostNs: this.trueNs(),
      policy: { stepThresholdNs: STEP_THRESHOLD_NS_DEFAULT, slewPpmMax: SLEW_PPM_MAX_DEFAULT },
    });
  }

  trueNs(): bigint {
    return EPOCH_NS + BigInt(Math.round(this.nowMs * 1e6));
  }

  private boot(sim: SimNode): void {
    const node = new ProtocolNode(
      nodeConfig({ ...this.options.config, nodeId: sim.spec.nodeId, priority: sim.spec.priority ?? 100, random: () => this.random.next() }),
      this.nowMs,
    );
    sim.node = node;
    if (this.options.discoverAll) {
      for (const other of this.nodes.values()) {
        if (other !== sim) node.discovered({ nodeId: other.spec.nodeId, priority: other.spec.priority ?? 100, endpoint: other.endpoint });
      }
    }
    this.afterInput(sim);
  }

  /** Stop a node abruptly (kill -9): it sends nothing more and loses its state. */
  crash(nodeId: NodeId): void {
    const sim = this.nodes.get(nodeId);
    if (!sim) throw new Error(`no node ${nodeId}`);
    sim.node = null;
    sim.timerGeneration += 1;
  }

  restart(nodeId: NodeId): void {
    const sim = this.nodes.get(nodeId);
    if (!sim) throw new Error(`no node ${nodeId}`);
    this.queue.push(this.nowMs, { kind: 'boot', nodeId });
  }

  private afterInput(sim: SimNode): void {
    const node = sim.node;
    if (!node) return;
    const out = node.drain();
    for (const correction of out.corrections) sim.clock.correct(correction.correctionNs, this.trueNs());
    for (const send of out.sends) this.transmit(sim, send.to, { ...send.frame, txNs: sim.clock.readAtNs(this.trueNs()) } as Frame);
    sim.timerGeneration += 1;
    const deadlineMs = node.nextDeadlineMs();
    if (Number.isFinite(deadlineMs)) {
      this.queue.push(Math.max(deadlineMs, this.nowMs), { kind: 'timer', nodeId: sim.spec.nodeId, generation: sim.timerGeneration });
    }
  }

  private transmit(from: SimNode, to: Endpoint, frame: Frame): void {
    this.framesSent += 1;
    const target = this.byEndpoint.get(`${to.address}:${to.port}`);
    if (target === undefined) return;
    if (this.random.next() < this.network.lossRate) {
      this.framesLost += 1;
      return;
    }
    const delayMs = this.network.latencyMs + this.random.exponential(this.network.jitterMeanMs);
    this.queue.push(this.nowMs + delayMs, { kind: 'deliver', to: target, from: from.endpoint, bytes: encodeFrame(frame) });
  }

  private step(): boolean {
    const event = this.queue.pop();
    if (!event) return false;
    this.nowMs = Math.max(this.nowMs, event.atMs);
    const item = event.item;
    if (item.kind === 'boot') {
      const sim = this.nodes.get(item.nodeId);
      if (sim && !sim.node) this.boot(sim);
      return true;
    }
    const sim = this.nodes.get(item.kind === 'timer' ? item.nodeId : item.to);
    const node = sim?.node;
    if (!sim || !node) return true;
    if (item.kind === 'timer') {
      if (item.generation !== sim.timerGeneration) return true;
      node.tick(this.nowMs);
    } else {
      const decoded = decodeFrame(item.bytes);
      if (!decoded.ok) {
        this.framesRejected += 1;
        return true;
      }
      node.receive(decoded.frame, item.from, sim.clock.readAtNs(this.trueNs()), this.nowMs);
    }
    this.afterInput(sim);
    return true;
  }

  runUntil(endMs: number): void {
    while (this.queue.peekMs() <= endMs) this.step();
    this.nowMs = Math.max(this.nowMs, endMs);
  }

  runFor(durationMs: number): void {
    this.runUntil(this.nowMs + durationMs);
  }

  node(nodeId: NodeId): ProtocolNode | null {
    return this.nodes.get(nodeId)?.node ?? null;
  }

  liveNodeIds(): NodeId[] {
    return [...this.nodes.values()].filter((sim) => sim.node !== null).map((sim) => sim.spec.nodeId);
  }

  masters(): NodeId[] {
    return this.liveNodeIds().filter((id) => this.node(id)?.status().role === 'master');
  }

  /** Offset of each live node's clock from true time, in ns. */
  offsetsNs(): Map<NodeId, number> {
    const offsets = new Map<NodeId, number>();
    for (const sim of this.nodes.values()) if (sim.node) offsets.set(sim.spec.nodeId, sim.clock.offsetAtNs(this.trueNs()));
    return offsets;
  }

  /** Largest minus smallest clock among live nodes. */
  spreadNs(): number {
    const values = [...this.offsetsNs().values()];
    return values.length === 0 ? 0 : Math.max(...values) - Math.min(...values);
  }
}
