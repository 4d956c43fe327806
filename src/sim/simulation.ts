// Deterministic simulation: many protocol nodes in one process, driven from one seed. Each node
// runs the same ProtocolNode as the daemon, with a VirtualClock over a simulated machine clock
// (initial offset, drift, drift wander); frames go through the real codec and a network with
// latency, jitter, loss, duplication, reordering, asymmetric links, corruption and partitions.
// Nodes crash and restart. An invariant checker looks at every node after each event. Events run
// on the shared event loop (harness.ts).
import type { NodeConfig } from '../core/node-config.ts';
import type { PersistedNodeState } from '../core/node-status.ts';
import { ProtocolNode } from '../core/node.ts';
import type { BarrierOutcome } from '../core/barrier/client.ts';
import { nodeConfig } from '../core/defaults.ts';
import { FrameType, type Frame } from '../core/frames.ts';
import type { Endpoint, NodeId } from '../core/types.ts';
import { VirtualClock } from '../clock/virtual.ts';
import { CORRECTION_NS_MAX_DEFAULT, UPSTREAM_POLL_INTERVAL_MS_DEFAULT, POLL_INTERVAL_MS_DEFAULT, PROVISIONAL_WINDOW_MS_DEFAULT, SLEW_PPM_MAX_DEFAULT, STEP_THRESHOLD_NS_DEFAULT, VIRTUAL_CLOCK_PPM_MAX } from '../core/limits.ts';
import { carryOut, Discipline } from '../core/sync/discipline.ts';
import { decodeFrame, encodeFrame } from '../wire/codec.ts';
import { InvariantChecker, type CheckMode, type NodeView } from './invariants.ts';
import { Oscillator } from './oscillator.ts';
import { EventLoop } from './harness.ts';
import { SeededRandom } from './random.ts';
import { TraceHash } from './trace.ts';
import { SimUpstreamClient, type SimUpstreamReply, upstreamServer, type SimUpstreamSpec } from './upstream.ts';
import { clockMoveNs } from '../core/upstream/feed.ts';
import type { SelectionResult } from '../ntp/selection.ts';

export interface SimNodeSpec {
  nodeId: NodeId;
  priority?: number;
  /** Machine clock minus true time at simulated time 0. */
  initialOffsetNs?: number;
  /** Machine clock rate error. */
  driftPpm?: number;
  /** Simulated ms at which the node boots. */
  startMs?: number;
  /**
   * A broken or hostile member (a member with the key): it ignores every correction and claims a
   * synchronized clock, so its offset votes in the average (tests: it must be left out).
   */
  ignoresCorrections?: boolean;
  /** A hostile master: this much is added to every CORRECT it sends (tests: the panic threshold). */
  tamperCorrectionsNs?: number;
  /** Upstream servers it polls (ids of SimulationOptions.upstreams), as --upstream (src/sim/upstream.ts). */
  upstreams?: string[];
}

export interface SimNetworkSpec {
  /** One-way base latency. */
  latencyMs: number;
  /** Mean of the exponential jitter added to each delivery. */
  jitterMeanMs: number;
  /** Probability that a datagram is lost. */
  lossRate: number;
  /** Probability that a datagram is delivered twice (the copy has its own delay). */
  duplicateRate: number;
  /** Fraction of datagrams held back by an extra delay, uniform in [0, reorderDelayMsMax). */
  reorderRate: number;
  reorderDelayMsMax: number;
  /**
   * Asymmetric links: each directed pair's latency is multiplied by a factor drawn once, uniform in
   * [1, 1 + asymmetry] (0: symmetric). setLinkFactor() overrides one link.
   */
  asymmetry: number;
  /** Probability that a datagram has bytes flipped on the way. */
  corruptRate: number;
  /** A corrupted datagram has 1 to this many bytes XORed with a random nonzero value. */
  corruptBytesMax: number;
}

export interface SimClockSpec {
  /** Each node's drift takes a random step within +-this every wanderStepMs (0: no wander). */
  wanderPpmPerStep: number;
  wanderStepMs: number;
  driftPpmMax: number;
}

export interface SimulationOptions {
  seed: number;
  nodes: SimNodeSpec[];
  /** Upstream NTP servers the nodes may poll (SimNodeSpec.upstreams), and how often they poll. */
  upstreams?: SimUpstreamSpec[];
  upstreamPollIntervalMs?: number;
  network?: Partial<SimNetworkSpec>;
  clock?: Partial<SimClockSpec>;
  config?: Partial<NodeConfig>;
  /** Nodes know each other from the start (as after mDNS discovery), and again after a restart. */
  discoverAll?: boolean;
  /** The clocks' provisional window (default PROVISIONAL_WINDOW_MS_DEFAULT, as the daemon's). */
  provisionalWindowMs?: number;
  /** Invariant checking after every event: throw on the first violation (default), collect, or off. */
  check?: CheckMode | 'off';
  /** How to rerun this case, for violation messages. */
  reproduce?: string;
  /** Keep the last this many trace lines in memory (0: none; the trace hash is always kept). */
  traceLines?: number;
  /** Keep a copy of every datagram put on the network (for replay tests): `wiretap`. */
  wiretap?: boolean;
  /**
   * A changed persistent state reaches the disk this long after the input that changed it (the
   * daemon saves after sending, asynchronously); a crash before then loses it. 0: at once.
   */
  stateWriteMs?: number;
}

/** Options of a restart. */
export interface RestartOptions {
  /**
   * 'keep' (default): the node's clock survives the restart, as the machine's system clock does.
   * 'reset': the node gets a fresh virtual clock over its machine clock (the daemon's
   * `--clock virtual` process state is lost).
   */
  clock?: 'keep' | 'reset';
  /**
   * 'fresh' (default): no state directory, the node starts at term 0. 'persisted': it starts from
   * what it had saved (the daemon's --state-dir) when it crashed; see stateWriteMs.
   */
  state?: 'fresh' | 'persisted';
  /** Start from exactly this state instead (implies a restart with persisted state). */
  persisted?: PersistedNodeState;
}

export interface SimCounters {
  framesSent: number;
  /** Sent to an address no simulated node has. */
  framesUnroutable: number;
  framesLost: number;
  /** Dropped because sender and receiver were in different partition groups. */
  framesPartitioned: number;
  framesDuplicated: number;
  framesReordered: number;
  /** Datagrams corrupted on the way (each then counted as rejected or accepted if delivered). */
  framesCorrupted: number;
  /** Delivered to a node that was down. */
  framesToDownNode: number;
  framesDelivered: number;
  /** Corrupted datagrams rejected by decodeFrame. */
  corruptRejected: number;
  /** Corrupted datagrams that still decoded (and were processed). */
  corruptAccepted: number;
  /** Corrupted datagrams dropped before decoding (receiver down, or cut by a partition). */
  corruptDropped: number;
  /** Uncorrupted datagrams rejected by the codec (should stay 0). */
  framesRejected: number;
  crashes: number;
  restarts: number;
  /** Election starts, summed over all nodes and incarnations. */
  electionsStarted: number;
  /** Times a node became master. */
  mastersElected: number;
  correctionsApplied: number;
  events: number;
}

interface SimNode {
  spec: SimNodeSpec;
  index: number;
  endpoint: Endpoint;
  node: ProtocolNode | null;
  incarnation: number;
  oscillator: Oscillator;
  clock: VirtualClock;
  /** The node's clock discipline; kept with the clock (a kernel clock keeps its frequency and synchronization). */
  discipline: Discipline;
  /** Invalidates timer events scheduled before the latest input. */
  timerGeneration: number;
  /** Pending boot requested by restart() (null: a plain boot). */
  pendingRestart: RestartOptions | null;
  /** Persistent state on disk (the shell saves after every input that changed it). */
  disk: PersistedNodeState | null;
  /** Saves not yet on disk, oldest first. */
  writes: { state: PersistedNodeState; landsAtMs: number }[];
  /** The newest state handed to the writer, as JSON (to see changes). */
  savedText: string;
  /** Its upstream client (this incarnation's), or null without upstreams. */
  upstream: SimUpstreamClient | null;
  /** The upstream path is cut for this node (kept across restarts). */
  upstreamCut: boolean;
}

type SimEvent =
  | { kind: 'boot'; nodeId: NodeId }
  | { kind: 'timer'; nodeId: NodeId; generation: number }
  | { kind: 'deliver'; to: NodeId; fromId: NodeId; from: Endpoint; bytes: Uint8Array; corrupted: boolean }
  | { kind: 'action'; label: string; run: () => void };

const FRAME_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, code]) => [code, name]));

/** One line for the trace: type, sender, term and the fields that matter for elections. */
function describeFrame(frame: Frame): string {
  const record = frame as unknown as Record<string, unknown>;
  const extra = ['masterId', 'candidateId', 'round', 'probe', 'correctionNs']
    .filter((key) => record[key] !== undefined)
    .map((key) => `${key}=${String(record[key])}`)
    .join(' ');
  return `${FRAME_NAMES.get(frame.type) ?? frame.type} from ${frame.from} term ${frame.term}${extra ? ` ${extra}` : ''}`;
}

/** Simulated true time starts at a realistic epoch so 64-bit timestamps are exercised. */
export const EPOCH_NS = 1_790_000_000_000_000_000n;

const NETWORK_DEFAULTS: SimNetworkSpec = {
  latencyMs: 0.1,
  jitterMeanMs: 0.05,
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderDelayMsMax: 20,
  asymmetry: 0,
  corruptRate: 0,
  corruptBytesMax: 3,
};

const CLOCK_DEFAULTS: SimClockSpec = { wanderPpmPerStep: 0, wanderStepMs: 1000, driftPpmMax: 500 };

export class Simulation {
  readonly seed: number;
  readonly random: SeededRandom;
  /** Current network behaviour; change it at any time (setNetwork) for loss bursts and the like. */
  readonly network: SimNetworkSpec;
  readonly counters: SimCounters = {
    framesSent: 0,
    framesUnroutable: 0,
    framesLost: 0,
    framesPartitioned: 0,
    framesDuplicated: 0,
    framesReordered: 0,
    framesCorrupted: 0,
    framesToDownNode: 0,
    framesDelivered: 0,
    corruptRejected: 0,
    corruptAccepted: 0,
    corruptDropped: 0,
    framesRejected: 0,
    crashes: 0,
    restarts: 0,
    electionsStarted: 0,
    mastersElected: 0,
    correctionsApplied: 0,
    events: 0,
  };
  /** Frames handed to a node, by frame type name (duplicates and corrupted-but-valid included). */
  readonly deliveredByType = new Map<string, number>();
  readonly checker: InvariantChecker | null;
  /** Events (boots, timers, deliveries, scheduled actions) in time order (harness.ts). */
  private readonly loop = new EventLoop<SimEvent>();
  private readonly nodes = new Map<NodeId, SimNode>();
  /** Every datagram sent (with options.wiretap), oldest first. */
  readonly wiretap: { from: NodeId; to: NodeId; atMs: number; bytes: Uint8Array }[] | null;
  private readonly barrierLog: { nodeId: NodeId; atMs: number; outcome: BarrierOutcome }[] = [];
  private readonly order: SimNode[] = [];
  private readonly byEndpoint = new Map<string, NodeId>();
  private readonly options: SimulationOptions;
  private readonly clockSpec: SimClockSpec;
  private readonly linkFactors = new Map<string, number>();
  /** Partition group of each node; null when fully connected. */
  private groupOf: Map<NodeId, string> | null = null;
  private readonly trace = new TraceHash();
  private readonly traceLines: string[] = [];
  private readonly keepLines: number;
  private readonly stateWriteMs: number;
  /** Simulated time now (ms since the start). */
  get nowMs(): number {
    return this.loop.nowMs;
  }


  constructor(options: SimulationOptions) {
    this.options = options;
    this.seed = options.seed;
    this.wiretap = options.wiretap ? [] : null;
    this.random = new SeededRandom(options.seed);
    this.network = { ...NETWORK_DEFAULTS, ...options.network };
    this.clockSpec = { ...CLOCK_DEFAULTS, ...options.clock };
    this.keepLines = options.traceLines ?? 0;
    this.stateWriteMs = options.stateWriteMs ?? 0;
    const check = options.check ?? 'throw';
    this.checker =
      check === 'off' ? null : new InvariantChecker({ seed: options.seed, mode: check, reproduce: options.reproduce ?? '', nowMs: () => this.nowMs });
    const ids = new Set<NodeId>();
    options.nodes.forEach((spec, index) => {
      if (ids.has(spec.nodeId)) throw new Error(`duplicate node id ${spec.nodeId}`);
      ids.add(spec.nodeId);
      const endpoint = { address: `198.18.${index >> 8}.${(index & 0xff) + 1}`, port: 7412 };
      const oscillator = new Oscillator(
        { initialOffsetNs: spec.initialOffsetNs ?? 0, driftPpm: spec.driftPpm ?? 0, ...this.clockSpec },
        // Each oscillator has its own stream, so wander does not shift any other random choice.
        (options.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0,
      );
      const sim: SimNode = {
        spec,
        index,
        endpoint,
        node: null,
        incarnation: 0,
        oscillator,
        ...this.newClock(oscillator),
        timerGeneration: 0,
        pendingRestart: null,
        disk: null,
        writes: [],
        savedText: '',
        upstream: null,
        upstreamCut: false,
      };
      this.nodes.set(spec.nodeId, sim);
      this.order.push(sim);
      this.byEndpoint.set(`${endpoint.address}:${endpoint.port}`, spec.nodeId);
      this.loop.at(spec.startMs ?? 0, { kind: 'boot', nodeId: spec.nodeId });
    });
    if (this.network.asymmetry > 0) this.drawLinkFactors();
    for (const spec of options.upstreams ?? []) this.upstreamServers.set(spec.id, upstreamServer(spec));
    this.upstreamPollIntervalMs = options.upstreamPollIntervalMs ?? UPSTREAM_POLL_INTERVAL_MS_DEFAULT;
  }

  // ---------------------------------------------------------------- upstreams

  private readonly upstreamServers = new Map<string, ReturnType<typeof upstreamServer>>();
  private readonly upstreamPollIntervalMs: number;

  /** Changes an upstream server (its error, jitter, loss; `up: false` stops it). */
  setUpstream(id: string, partial: Partial<Omit<SimUpstreamSpec, 'id'>>): void {
    const server = this.upstreamServers.get(id);
    if (!server) throw new Error(`no upstream ${id}`);
    Object.assign(server, partial);
    this.record(`upstream ${id} ${JSON.stringify(partial)}`);
  }

  /** Cuts (or restores) one node's path to its upstream servers. */
  cutUpstream(nodeId: NodeId, cut: boolean): void {
    const sim = this.simNode(nodeId);
    sim.upstreamCut = cut;
    if (sim.upstream) sim.upstream.cut = cut;
    this.record(`upstream path of ${nodeId} ${cut ? 'cut' : 'restored'}`);
  }

  /** The node's last upstream selection (null before one, or without upstreams). */
  upstreamSelection(nodeId: NodeId): SelectionResult | null {
    return this.simNode(nodeId).upstream?.lastSelection ?? null;
  }

  /** One poll of the node's upstream client, its replies on their way, then the next poll scheduled (for this incarnation). */
  private pollUpstreams(sim: SimNode, client: SimUpstreamClient): void {
    if (sim.node === null || sim.upstream !== client) return;
    const slewRemainingNs = sim.clock.slewRemainingAtNs(this.machineNs(sim.oscillator));
    const { replies, nextMs } = client.poll(this.upstreamServers, this.nowMs, this.trueNs(), this.readClock(sim), slewRemainingNs, this.random, this.upstreamPollIntervalMs);
    for (const reply of replies) this.after(reply.roundTripMs, `upstream reply ${reply.serverId} to ${sim.spec.nodeId}`, () => this.upstreamReply(sim, client, reply));
    this.after(nextMs, `upstream poll ${sim.spec.nodeId}`, () => this.pollUpstreams(sim, client));
    // The selection as it stands, every poll (the daemon's timer): a server gone quiet is told too.
    this.feedUpstream(sim, client);
  }

  /** A reply reaches the node's client: selection, and the core is told, once per reply (as the daemon does). */
  private upstreamReply(sim: SimNode, client: SimUpstreamClient, reply: SimUpstreamReply): void {
    if (sim.node === null || sim.upstream !== client) return;
    client.receive(reply, this.nowMs);
    this.feedUpstream(sim, client);
  }

  private feedUpstream(sim: SimNode, client: SimUpstreamClient): void {
    if (sim.node === null) return;
    const slewRemainingNs = sim.clock.slewRemainingAtNs(this.machineNs(sim.oscillator));
    const { estimate, why } = client.estimate(this.upstreamServers, this.nowMs, slewRemainingNs);
    this.reportClock(sim);
    sim.node.upstreamUpdate(this.nowMs, estimate, why);
    this.afterInput(sim);
  }

  // ---------------------------------------------------------------- clocks

  /** A fresh virtual clock over the machine clock, reading machine time (offset 0) until corrected. */
  private newClock(oscillator: Oscillator): { clock: VirtualClock; discipline: Discipline } {
    return {
      clock: new VirtualClock({ initialOffsetNs: 0, driftPpm: 0, startHostNs: this.machineNs(oscillator) }),
      discipline: new Discipline({
        stepThresholdNs: STEP_THRESHOLD_NS_DEFAULT,
        slewPpmMax: SLEW_PPM_MAX_DEFAULT,
        correctionNsMax: CORRECTION_NS_MAX_DEFAULT,
        driverPpmMax: VIRTUAL_CLOCK_PPM_MAX,
        pollIntervalMs: this.options.config?.pollIntervalMs ?? POLL_INTERVAL_MS_DEFAULT,
        provisionalWindowMs: this.options.provisionalWindowMs ?? PROVISIONAL_WINDOW_MS_DEFAULT,
      }),
    };
  }

  trueNs(): bigint {
    return EPOCH_NS + BigInt(Math.round(this.nowMs * 1e6));
  }

  /** Tells the node's core its clock's state as of now, as the daemon does before each input. */
  private reportClock(sim: SimNode): void {
    if (!sim.node) return;
    if (sim.spec.ignoresCorrections) {
      sim.node.setClockSynchronized(true);
      return;
    }
    const slewRemainingNs = sim.clock.slewRemainingAtNs(this.machineNs(sim.oscillator));
    sim.node.setClockSynchronized(sim.discipline.isSynchronized, sim.discipline.provisionalNsAt(this.nowMs, slewRemainingNs));
  }

  /** The machine clock of a node now (one rounding, so it never runs backwards). */
  private machineNs(oscillator: Oscillator): bigint {
    return EPOCH_NS + oscillator.wholeOffsetNs + BigInt(Math.round(this.nowMs * 1e6 + oscillator.restNs(this.nowMs)));
  }

  /** The node's (virtual) clock now: what its agent reads and stamps frames with. */
  private readClock(sim: SimNode): bigint {
    return sim.clock.readAtNs(this.machineNs(sim.oscillator));
  }

  // ---------------------------------------------------------------- network shape

  private drawLinkFactors(): void {
    for (const from of this.order) {
      for (const to of this.order) {
        if (from !== to) this.linkFactors.set(`${from.index}>${to.index}`, 1 + this.network.asymmetry * this.random.next());
      }
    }
  }

  /** Latency factor of the directed link from -> to (1 unless asymmetric). */
  linkFactor(from: NodeId, to: NodeId): number {
    const a = this.simNode(from);
    const b = this.simNode(to);
    return this.linkFactors.get(`${a.index}>${b.index}`) ?? 1;
  }

  setLinkFactor(from: NodeId, to: NodeId, factor: number): void {
    if (!(factor > 0)) throw new Error(`link factor ${factor} must be positive`);
    this.linkFactors.set(`${this.simNode(from).index}>${this.simNode(to).index}`, factor);
  }

  setNetwork(partial: Partial<SimNetworkSpec>): void {
    Object.assign(this.network, partial);
  }

  /**
   * Splits the network: frames between different groups are dropped (at sending and, for frames
   * already in flight, at delivery). Nodes in no group form one more group together.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const groupOf = new Map<NodeId, string>();
    groups.forEach((group, index) => {
      for (const nodeId of group) {
        this.simNode(nodeId);
        if (groupOf.has(nodeId)) throw new Error(`node ${nodeId} in two partition groups`);
        groupOf.set(nodeId, `g${index}`);
      }
    });
    for (const sim of this.order) if (!groupOf.has(sim.spec.nodeId)) groupOf.set(sim.spec.nodeId, 'rest');
    this.groupOf = groupOf;
    this.record(`partition ${this.components(true).map((group) => group.join(',')).join(' | ')}`);
  }

  /** Splits the network by a function of the node id (same value: same side). */
  partitionBy(groupOf: (nodeId: NodeId) => string | number): void {
    const groups = new Map<string, NodeId[]>();
    for (const sim of this.order) {
      const key = String(groupOf(sim.spec.nodeId));
      const group = groups.get(key) ?? [];
      group.push(sim.spec.nodeId);
      groups.set(key, group);
    }
    this.partition([...groups.values()]);
  }

  heal(): void {
    this.groupOf = null;
    this.record('heal');
  }

  get partitioned(): boolean {
    return this.groupOf !== null;
  }

  canReach(from: NodeId, to: NodeId): boolean {
    return this.groupOf === null || this.groupOf.get(from) === this.groupOf.get(to);
  }

  /** Groups of nodes that can reach each other (live nodes only, unless `all`). */
  components(all = false): NodeId[][] {
    const groups = new Map<string, NodeId[]>();
    for (const sim of this.order) {
      if (!all && sim.node === null) continue;
      const key = this.groupOf?.get(sim.spec.nodeId) ?? 'all';
      const group = groups.get(key) ?? [];
      group.push(sim.spec.nodeId);
      groups.set(key, group);
    }
    return [...groups.values()];
  }

  // ---------------------------------------------------------------- schedule

  /** Runs `run` at simulated time `atMs` (in order with the other events at that time). */
  at(atMs: number, label: string, run: () => void): void {
    this.loop.at(Math.max(atMs, this.nowMs), { kind: 'action', label, run });
  }

  after(delayMs: number, label: string, run: () => void): void {
    this.at(this.nowMs + delayMs, label, run);
  }

  /** Stop a node abruptly (kill -9): it sends nothing more; its memory and unwritten saves are lost. */
  crash(nodeId: NodeId): void {
    const sim = this.simNode(nodeId);
    if (sim.node === null) return;
    sim.node = null;
    sim.timerGeneration += 1;
    this.landWrites(sim);
    const lost = sim.writes.length;
    sim.writes = [];
    sim.savedText = '';
    this.counters.crashes += 1;
    this.checker?.crashed(nodeId);
    this.record(`crash ${nodeId}${lost > 0 ? ` (${lost} state write(s) lost)` : ''}`);
  }

  /**
   * Start a crashed node again, now (after the events already due now): a fresh ProtocolNode, at
   * term 0 or from its persisted state.
   */
  restart(nodeId: NodeId, options: RestartOptions = {}): void {
    const sim = this.simNode(nodeId);
    sim.pendingRestart = options;
    this.loop.at(this.nowMs, { kind: 'boot', nodeId });
  }

  /** What a node has on disk now (null before its first save landed). */
  persistedState(nodeId: NodeId): PersistedNodeState | null {
    const sim = this.simNode(nodeId);
    this.landWrites(sim);
    return sim.disk === null ? null : { ...sim.disk };
  }

  private landWrites(sim: SimNode): void {
    while (sim.writes.length > 0 && (sim.writes[0] as SimNode['writes'][number]).landsAtMs <= this.nowMs) {
      sim.disk = (sim.writes.shift() as SimNode['writes'][number]).state;
    }
  }

  // ---------------------------------------------------------------- running

  private simNode(nodeId: NodeId): SimNode {
    const sim = this.nodes.get(nodeId);
    if (!sim) throw new Error(`no node ${nodeId}`);
    return sim;
  }

  private boot(sim: SimNode): void {
    const restart = sim.pendingRestart;
    sim.pendingRestart = null;
    const clockKept = restart === null || (restart.clock ?? 'keep') === 'keep';
    if (!clockKept) Object.assign(sim, this.newClock(sim.oscillator));
    sim.incarnation += 1;
    if (restart !== null) this.counters.restarts += 1;
    this.landWrites(sim);
    const persisted = restart?.persisted ?? (restart?.state === 'persisted' ? sim.disk : null);
    const node = new ProtocolNode(
      // A larger boot id at every (re)start, as the daemon's (replay protection).
      nodeConfig({
        ...this.options.config,
        upstream: sim.spec.upstreams?.length ? { upstreamPollIntervalMs: this.upstreamPollIntervalMs, correctionNsMax: CORRECTION_NS_MAX_DEFAULT } : null,
        nodeId: sim.spec.nodeId, priority: sim.spec.priority ?? 100, random: () => this.random.next(), clockNowNs: () => this.readClock(sim), bootId: Math.floor(this.nowMs * 1000) + 1 }),
      this.nowMs,
      persisted === null ? null : { ...persisted },
    );
    sim.node = node;
    // A new process: a new client, polling (with its burst) from the start.
    sim.upstream = sim.spec.upstreams?.length ? new SimUpstreamClient(sim.spec.upstreams) : null;
    if (sim.upstream !== null) {
      const client = sim.upstream;
      client.cut = sim.upstreamCut;
      this.after(1, `upstream poll ${sim.spec.nodeId}`, () => this.pollUpstreams(sim, client));
    }
    this.reportClock(sim);
    this.checker?.started(sim.spec.nodeId, { persistedState: persisted !== null, clockKept });
    this.record(`boot ${sim.spec.nodeId} #${sim.incarnation}${clockKept ? '' : ' fresh clock'}${persisted === null ? '' : ` persisted ${JSON.stringify(persisted)}`}`);
    if (this.options.discoverAll) {
      for (const other of this.order) {
        if (other !== sim) node.discovered({ nodeId: other.spec.nodeId, priority: other.spec.priority ?? 100, endpoint: other.endpoint });
      }
    }
    this.afterInput(sim);
  }

  private afterInput(sim: SimNode): void {
    const node = sim.node;
    if (!node) return;
    const nodeId = sim.spec.nodeId;
    const out = node.drain();
    // The shell saves the persistent state whenever it changed.
    const state = node.persistentState();
    const stateText = JSON.stringify(state);
    if (stateText !== sim.savedText) {
      sim.savedText = stateText;
      sim.writes.push({ state, landsAtMs: this.nowMs + this.stateWriteMs });
      if (this.stateWriteMs <= 0) this.landWrites(sim);
    }
    const checker = this.checker;
    let view: NodeView | null = null;
    if (checker !== null) {
      const status = node.status();
      view = { role: status.role, term: status.term, masterId: status.masterId };
      checker.observeState(nodeId, view);
    }
    for (const event of out.events) {
      if (event.kind === 'election-start') this.counters.electionsStarted += 1;
      else if (event.kind === 'role' && event.to === 'master') this.counters.mastersElected += 1;
      if (event.kind === 'role' || event.kind === 'election-start') {
        this.trace.add(`${nodeId} ${event.kind} ${event.term}`);
        if (this.keepLines > 0) this.record(`${nodeId} ${event.kind === 'role' ? `role ${event.from}->${event.to} master ${event.masterId ?? '-'}` : `election-start ${event.algorithm} (${event.reason})`} term ${event.term}`);
      }
    }
    for (const correction of sim.spec.ignoresCorrections ? [] : out.corrections) {
      const machineNs = this.machineNs(sim.oscillator);
      const wasSynchronized = sim.discipline.isSynchronized;
      const beforeNs = sim.clock.readAtNs(machineNs);
      const slewRemainingNs = sim.clock.slewRemainingAtNs(machineNs);
      const action = sim.discipline.correct(correction.correctionNs, this.nowMs, slewRemainingNs, correction);
      const clock = sim.clock;
      carryOut(action, {
        step: (deltaNs) => clock.step(deltaNs, machineNs),
        slew: (phaseNs, ratePpm) => clock.slew(phaseNs, ratePpm, machineNs),
        setFrequency: (frequencyPpm) => clock.setFrequency(frequencyPpm, machineNs),
      });
      const outcome = action.kind;
      // The client's kept samples follow every adjustment of the clock (clockAdjusted).
      // Every move of the clock to its upstream client, as the daemon does (core/upstream/feed.ts).
      const movedNs = clockMoveNs(action, slewRemainingNs);
      if (sim.upstream !== null && movedNs !== null) sim.upstream.adjustedNs += movedNs;
      const afterNs = sim.clock.readAtNs(machineNs);
      this.counters.correctionsApplied += 1;
      this.trace.add(`${nodeId} correct ${correction.term}/${correction.round} ${correction.correctionNs}`);
      if (this.keepLines > 0) this.record(`${nodeId} ${outcome} ${(correction.correctionNs / 1e6).toFixed(3)} ms from ${correction.masterId} term ${correction.term} round ${correction.round}`);
      const provisional = sim.discipline.isProvisional;
      const stepThresholdNs = sim.discipline.policy.stepThresholdNs;
      if (checker !== null && view !== null) checker.observeCorrection(nodeId, correction, view, { beforeNs, afterNs, wasSynchronized, provisional, stepThresholdNs });
      this.reportClock(sim);
    }
    for (const outcome of out.barrierOutcomes) {
      this.barrierLog.push({ nodeId, atMs: this.nowMs, outcome });
      this.trace.add(`${nodeId} barrier ${outcome.kind} ${outcome.requestId}`);
    }
    if (sim.spec.ignoresCorrections) node.setClockSynchronized(true);
    checker?.observeReading(nodeId, this.readClock(sim));
    for (const send of out.sends) this.transmit(sim, send.to, { ...send.frame, txNs: this.readClock(sim) } as Frame);
    sim.timerGeneration += 1;
    const deadlineMs = node.nextDeadlineMs();
    if (Number.isFinite(deadlineMs)) {
      this.loop.at(Math.max(deadlineMs, this.nowMs), { kind: 'timer', nodeId, generation: sim.timerGeneration });
    }
  }

  private transmit(from: SimNode, to: Endpoint, frame: Frame): void {
    const tamperNs = from.spec.tamperCorrectionsNs;
    if (tamperNs !== undefined && frame.type === FrameType.correct) frame = { ...frame, correctionNs: frame.correctionNs + tamperNs };
    this.counters.framesSent += 1;
    const targetId = this.byEndpoint.get(`${to.address}:${to.port}`);
    if (targetId === undefined) {
      this.counters.framesUnroutable += 1;
      return;
    }
    const fromId = from.spec.nodeId;
    if (!this.canReach(fromId, targetId)) {
      this.counters.framesPartitioned += 1;
      if (this.keepLines > 0) this.record(`cut ${targetId} <- ${describeFrame(frame)}`);
      return;
    }
    const network = this.network;
    if (network.lossRate > 0 && this.random.next() < network.lossRate) {
      this.counters.framesLost += 1;
      if (this.keepLines > 0) this.record(`lost ${targetId} <- ${describeFrame(frame)}`);
      return;
    }
    const bytes = encodeFrame(frame);
    this.wiretap?.push({ from: fromId, to: targetId, atMs: this.nowMs, bytes });
    let copies = 1;
    if (network.duplicateRate > 0 && this.random.next() < network.duplicateRate) {
      copies = 2;
      this.counters.framesDuplicated += 1;
    }
    const factor = this.linkFactors.size > 0 ? this.linkFactor(fromId, targetId) : 1;
    for (let copy = 0; copy < copies; copy += 1) {
      let delayMs = network.latencyMs * factor + this.random.exponential(network.jitterMeanMs);
      if (network.reorderRate > 0 && this.random.next() < network.reorderRate) {
        delayMs += this.random.between(0, network.reorderDelayMsMax);
        this.counters.framesReordered += 1;
      }
      let datagram: Uint8Array = bytes;
      let corrupted = false;
      if (network.corruptRate > 0 && this.random.next() < network.corruptRate) {
        datagram = Uint8Array.from(bytes);
        const flips = 1 + this.random.integer(network.corruptBytesMax);
        for (let flip = 0; flip < flips; flip += 1) {
          const position = this.random.integer(datagram.length);
          datagram[position] = (datagram[position] as number) ^ (1 + this.random.integer(255));
        }
        corrupted = true;
        this.counters.framesCorrupted += 1;
      }
      this.loop.at(this.nowMs + delayMs, { kind: 'deliver', to: targetId, fromId, from: from.endpoint, bytes: datagram, corrupted });
    }
  }

  /** One event, at its time (the event loop moved there). */
  private handle(item: SimEvent): void {
    this.counters.events += 1;
    switch (item.kind) {
      case 'action':
        this.trace.add(`${this.nowMs} action ${item.label}`);
        this.record(`action ${item.label}`);
        item.run();
        return;
      case 'boot': {
        const sim = this.simNode(item.nodeId);
        if (!sim.node) this.boot(sim);
        else sim.pendingRestart = null;
        return;
      }
      case 'timer': {
        const sim = this.simNode(item.nodeId);
        if (!sim.node || item.generation !== sim.timerGeneration) return;
        this.trace.add(`${this.nowMs} tick ${item.nodeId}`);
        this.reportClock(sim);
        sim.node.tick(this.nowMs);
        this.afterInput(sim);
        return;
      }
      case 'deliver': {
        const sim = this.simNode(item.to);
        if (!this.canReach(item.fromId, item.to)) {
          this.counters.framesPartitioned += 1;
          if (item.corrupted) this.counters.corruptDropped += 1;
          return;
        }
        if (!sim.node) {
          this.counters.framesToDownNode += 1;
          if (item.corrupted) this.counters.corruptDropped += 1;
          return;
        }
        this.trace.addBytes(`${this.nowMs} deliver ${item.to}`, item.bytes);
        const decoded = decodeFrame(item.bytes);
        if (item.corrupted) {
          if (decoded.ok) this.counters.corruptAccepted += 1;
          else this.counters.corruptRejected += 1;
        } else if (!decoded.ok) {
          this.counters.framesRejected += 1;
        }
        if (!decoded.ok) return;
        this.counters.framesDelivered += 1;
        const typeName = FRAME_NAMES.get(decoded.frame.type) ?? String(decoded.frame.type);
        this.deliveredByType.set(typeName, (this.deliveredByType.get(typeName) ?? 0) + 1);
        if (this.keepLines > 0) this.record(`${item.to} <- ${describeFrame(decoded.frame)}${item.corrupted ? ' (corrupted)' : ''}`);
        this.reportClock(sim);
        sim.node.receive(decoded.frame, item.from, this.readClock(sim), this.nowMs);
        this.afterInput(sim);
        return;
      }
    }
  }

  runUntil(endMs: number): void {
    this.loop.run({ endMs, onEvent: (item) => this.handle(item) });
  }

  runFor(durationMs: number): void {
    this.runUntil(this.nowMs + durationMs);
  }

  // ---------------------------------------------------------------- observation

  /** The UDP endpoint a node's frames come from. */
  endpointOf(nodeId: NodeId): Endpoint {
    return { ...this.simNode(nodeId).endpoint };
  }

  /** Barrier outcomes of every node, in order (what the daemon would answer its control clients). */
  barrierOutcomes(): readonly { nodeId: NodeId; atMs: number; outcome: BarrierOutcome }[] {
    return this.barrierLog;
  }

  /** Someone sets a node's clock by hand: it jumps by deltaNs (the agent is not told). */
  jumpClock(nodeId: NodeId, deltaNs: number): void {
    const sim = this.simNode(nodeId);
    sim.clock.step(deltaNs, this.machineNs(sim.oscillator));
  }

  /** Gives a node a shell input now (as the daemon would, e.g. a dashboard read) and carries out what it drains. */
  inject(nodeId: NodeId, run: (node: ProtocolNode, nowMs: number) => void): void {
    const sim = this.simNode(nodeId);
    if (!sim.node) return;
    run(sim.node, this.nowMs);
    this.afterInput(sim);
  }

  node(nodeId: NodeId): ProtocolNode | null {
    return this.nodes.get(nodeId)?.node ?? null;
  }

  nodeIds(): NodeId[] {
    return this.order.map((sim) => sim.spec.nodeId);
  }

  liveNodeIds(): NodeId[] {
    return this.order.filter((sim) => sim.node !== null).map((sim) => sim.spec.nodeId);
  }

  masters(): NodeId[] {
    return this.liveNodeIds().filter((id) => this.node(id)?.status().role === 'master');
  }

  /** Offset of each live node's clock from true time, in ns. */
  offsetsNs(): Map<NodeId, number> {
    const offsets = new Map<NodeId, number>();
    const trueNs = this.trueNs();
    for (const sim of this.order) if (sim.node) offsets.set(sim.spec.nodeId, Number(this.readClock(sim) - trueNs));
    return offsets;
  }

  /** Largest minus smallest clock among live nodes. */
  spreadNs(): number {
    const values = [...this.offsetsNs().values()];
    return values.length === 0 ? 0 : Math.max(...values) - Math.min(...values);
  }

  /** The machine clock's current drift of a node (ppm), wander included. */
  driftPpm(nodeId: NodeId): number {
    return this.simNode(nodeId).oscillator.driftPpm(this.nowMs);
  }

  /** How many times the node's clock has been corrected, stepped and slewed (this clock only). */
  clockReport(nodeId: NodeId): { synchronized: boolean; corrections: number; steps: number; slews: number; refused: number; frequencyPpm: number } {
    const state = this.simNode(nodeId).discipline.state();
    return { synchronized: state.synchronized, corrections: state.updates + state.refused, steps: state.steps, slews: state.slews, refused: state.refused, frequencyPpm: state.frequencyPpm };
  }

  /**
   * Liveness: each connected component of live nodes has exactly one master, and every other
   * member is a slave naming it in its term. Returns null when that holds, else why not.
   */
  livenessProblem(): string | null {
    for (const component of this.components()) {
      const statuses = component.map((id) => ({ id, status: (this.node(id) as ProtocolNode).status() }));
      const masters = statuses.filter((entry) => entry.status.role === 'master');
      if (masters.length !== 1) return `component ${component.join(',')} has ${masters.length} masters (${masters.map((m) => `${m.id}@${m.status.term}`).join(',')})`;
      const master = masters[0] as (typeof masters)[number];
      for (const { id, status } of statuses) {
        if (id === master.id) continue;
        if (status.role !== 'slave' || status.masterId !== master.id || status.term !== master.status.term) {
          return `${id} is ${status.role} following ${status.masterId ?? 'nobody'} in term ${status.term}, not ${master.id} in term ${master.status.term}`;
        }
      }
    }
    return null;
  }

  /** One line about a node's state, for diagnosis: role, term, master, last election and round, clock. */
  /**
   * Following an upstream (issue 18): a member whose clock class beats its master's must take over.
   * Returns null when no live member outranks the master of its component, else who does.
   */
  outrankedMaster(): string | null {
    for (const component of this.components()) {
      const statuses = component.map((id) => ({ id, status: (this.node(id) as ProtocolNode).status() }));
      const master = statuses.find((entry) => entry.status.role === 'master');
      if (master === undefined) continue;
      const better = statuses.filter((entry) => entry.status.clockClass > master.status.clockClass && !entry.status.neverMaster);
      if (better.length > 0) return `master ${master.id} (class ${master.status.clockClass}) is outranked by ${better.map((entry) => `${entry.id} (class ${entry.status.clockClass})`).join(', ')}`;
    }
    return null;
  }

  describeNode(nodeId: NodeId): string {
    const sim = this.simNode(nodeId);
    if (sim.node === null) return `${nodeId}: down`;
    const status = sim.node.status();
    const last = status.election.last;
    const round = status.lastRound;
    const clock = sim.discipline.state();
    return [
      `${nodeId}: ${status.role} term ${status.term} master ${status.masterId ?? '-'}`,
      last ? `last election ${last.algorithm} term ${last.term} won by ${last.winner}` : 'no election finished',
      round
        ? `last round ${round.round} term ${round.term}: ${round.answered}/${round.members} answered, median ${(round.medianNs / 1e6).toFixed(3)} ms, average ${(round.averageNs / 1e6).toFixed(3)} ms, excluded [${round.excluded.join(',')}]`
        : 'no round',
      `clock ${clock.synchronized ? 'synchronized' : 'unsynchronized'} (${clock.steps} steps, ${clock.slews} slews), incarnation ${sim.incarnation}`,
    ].join('; ');
  }

  /** A digest of every event so far: equal for equal runs. */
  traceHash(): string {
    return this.trace.digest();
  }

  /** The last `traceLines` trace lines (when enabled). */
  recentTrace(): string[] {
    return [...this.traceLines];
  }

  /** Adds a line of the caller's to the trace (the schedule's own decisions, say). */
  note(line: string): void {
    this.trace.add(`${this.nowMs} note ${line}`);
    this.record(line);
  }

  private record(line: string): void {
    if (this.keepLines <= 0) return;
    this.traceLines.push(`${this.nowMs.toFixed(3).padStart(11)} ${line}`);
    if (this.traceLines.length > this.keepLines) this.traceLines.shift();
  }

  // ------------------------------------------------------------- compatibility (first simulator)

  get framesSent(): number {
    return this.counters.framesSent;
  }

  get framesLost(): number {
    return this.counters.framesLost;
  }

  /** Every datagram the codec rejected, corrupted or not. */
  get framesRejected(): number {
    return this.counters.framesRejected + this.counters.corruptRejected;
  }
}
