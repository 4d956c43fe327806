// The agent: the thin shell around ProtocolNode, and the wiring of its parts. It owns the socket,
// the timers, the clock and the discovery, feeds the core its inputs and carries out what it
// drains. The parts: frames in (frame-intake.ts), the node's events to the log (event-log.ts), the
// drift file rule (drift-file.ts), control clients on barriers (barrier-waits.ts), the status
// report (status.ts buildStatus) and the dashboard (dashboard.ts).
import type { Logger } from 'pino';
import { ProtocolNode, type Correction, type NodeConfig, type NodeEvent, type PersistedNodeState } from '../core/node.ts';
import type { SavedFrequencies, StateWriter } from './state.ts';
import type { Frame } from '../core/frames.ts';
import { HOST_ANCHOR_REFINE_INTERVAL_MS, LEAVE_FLUSH_TIMEOUT_MS, PROTOCOL_VERSION, REJECT_LOG_INTERVAL_MS } from '../core/limits.ts';
import { carryOut, Discipline, type DisciplineAction } from '../core/sync/discipline.ts';
import { onceEvery } from '../core/rate-limiter.ts';
import type { Endpoint, NodeId, Role } from '../core/types.ts';
import type { ClockDriver, ClockMode } from '../clock/driver.ts';
import type { HostClock } from '../clock/host.ts';
import { encodeFrame } from '../wire/codec.ts';
import type { FrameAuth } from '../wire/auth.ts';
import { UdpTransport, type Datagram } from '../net/udp.ts';
import { MdnsDiscovery } from '../net/mdns.ts';
import { isOwnEndpoint } from '../net/interfaces.ts';
import { buildStatus, type NtpReport, type StatusReport } from './status.ts';
import { timeReport, type TimeReport } from './time-report.ts';
import type { Upstreams } from '../net/ntp-client.ts';
import type { UpstreamSample } from '../ntp/client.ts';
import { upstreamEstimate } from '../ntp/estimate.ts';
import { clockMoveNs, estimateNow } from '../core/upstream/feed.ts';

/** status.ntp of an agent whose daemon started no NTP service. */
const NTP_NOT_RUNNING: NtpReport = {
  port: 0, serving: false, addresses: [], why: 'not started', rxTimestamps: null,
  counters: { requests: 0, replies: 0, repliesUnsynchronized: 0, rateLimited: 0, rateLimitLeaked: 0, dropped: 0, droppedByReason: {}, rxStampedByKernel: 0, rxStampedByUser: 0 },
};
import { ClusterMonitor, type DashboardReport } from './dashboard.ts';
import { BarrierWaits, type BarrierRequest, type BarrierResult } from './barrier-waits.ts';
import { DriftFile } from './drift-file.ts';
import { NodeEventLog } from './event-log.ts';
import { FrameIntake } from './frame-intake.ts';
import { PACKAGE_VERSION } from './version.ts';

export type { BarrierRequest, BarrierResult } from './barrier-waits.ts';

/** One reading of the agent's clock with what is known about it (Agent.timeReading). */
export interface TimeReading {
  /** This agent's clock (kernel or virtual), Unix ns. */
  nowNs: bigint;
  synchronized: boolean;
  /** Bound on |this clock - the master's| at that moment, ns; null while not synchronized. */
  errorBoundNs: number | null;
  /** Round trip of the measurement the last correction rests on, ns (0 on the master). */
  measurementDelayNs: number;
  role: Role;
  masterId: NodeId | null;
  masterAddress: string | null;
  /** This clock's Unix ns at the last correction (the master: its last round); null if never. */
  lastCorrectionNs: bigint | null;
  clockMode: ClockMode;
  /**
   * While the cluster follows an upstream through this agent (its own as master, its master's as
   * member): the upstream's stratum and leap indicator; null otherwise (timeSource().upstream).
   */
  upstream: { stratum: number; leap: number } | null;
  /** The IPv4 address of this agent's upstream system peer (the master's NTP refid while following); null if none. */
  upstreamPeerAddress: string | null;
}

export interface AgentOptions {
  node: NodeConfig;
  bindAddress: string;
  port: number;
  /** Receive timestamps from the kernel when available (default true). */
  kernelTimestamps?: boolean;
  interfaceName: string | null;
  /** IPv4 address of --interface, for mDNS; null = library default. */
  interfaceAddress: string | null;
  staticPeers: Endpoint[];
  mdns: boolean;
  hostClock: HostClock;
  clock: ClockDriver;
  /** The loop that turns the master's corrections into steps, slews and frequency. */
  discipline: Discipline;
  /** The drift file as loaded (every kind of clock's entry is kept; only ours is updated). */
  savedFrequencies?: SavedFrequencies;
  /** The --virtual-drift of a virtual clock (null for the kernel clock), for status. */
  virtualDriftPpm: number | null;
  logger: Logger;
  /** State from --state-dir, and where to keep it; null without a state directory. */
  persisted: PersistedNodeState | null;
  stateWriter: StateWriter | null;
  /** Authenticates every frame sent and received (--key-file); null: an open cluster. */
  auth?: FrameAuth | null;
  /** Where the keys came from, for status. */
  keyFile?: string | null;
  /** The NTP server's report for status (the daemon starts the server after the agent). */
  ntpReport?: () => NtpReport;
  /** Told of every correction handed to the discipline and what it decided (metrics). */
  onCorrection?: (correctionNs: number, action: DisciplineAction['kind']) => void;
}

export class Agent {
  private readonly options: AgentOptions;
  private readonly log: Logger;
  private readonly node: ProtocolNode;
  private readonly transport: UdpTransport;
  private discovery: MdnsDiscovery | null = null;
  private timer: NodeJS.Timeout | null = null;
  private refineTimer: NodeJS.Timeout | null = null;
  private viewTimer: NodeJS.Timeout | null = null;
  private readonly monitor: ClusterMonitor;
  private readonly barrierWaits: BarrierWaits;
  private readonly intake: FrameIntake;
  private readonly events: NodeEventLog;
  private readonly driftFile: DriftFile;
  private readonly startedMonoMs: number;
  private listen: Endpoint = { address: '', port: 0 };
  private stopped = false;
  private framesSent = 0;
  private readonly sendErrorLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  private readonly refusedLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  /** The NTP client of --upstream (attachUpstreams). */
  private upstreams: Upstreams | null = null;
  private upstreamTimer: NodeJS.Timeout | null = null;
  private upstreamPeerAddress: string | null = null;
  private upstreamPollIntervalMs = 0;
  /** Upstream estimates the node refused (beyond the panic threshold), for status and metrics. */
  private upstreamRefusals = 0;

  constructor(options: AgentOptions) {
    this.options = options;
    this.log = options.logger;
    this.driftFile = new DriftFile(options.clock.mode, options.savedFrequencies);
    this.intake = new FrameIntake(options.auth ?? null, this.log);
    this.events = new NodeEventLog(this.log, { nodeId: options.node.nodeId, peersMax: options.node.peersMax });
    this.startedMonoMs = options.hostClock.monoMs();
    this.node = new ProtocolNode(options.node, this.startedMonoMs, options.persisted);
    this.monitor = new ClusterMonitor(options.node.nodeId);
    this.reportClock();
    this.barrierWaits = new BarrierWaits({
      monoMs: () => this.monoMs(),
      stopped: () => this.stopped,
      join: (request, nowMs) => this.node.barrierJoin(request, nowMs),
      withdraw: (requestId, nowMs) => void this.node.barrierWithdraw(requestId, nowMs),
      pump: () => this.pump(),
      clockInfo: () => {
        const state = this.options.clock.state();
        return { mode: state.mode, hostOffsetNs: state.hostOffsetNs, hostAnchorErrorNs: Math.ceil(this.options.hostClock.anchorErrorNs), synchronized: this.options.discipline.isSynchronized, errorBoundNs: this.node.errorBoundNs(this.monoMs()) };
      },
      log: this.log,
    });
    this.transport = new UdpTransport({
      bindAddress: options.bindAddress,
      port: options.port,
      hostClock: options.hostClock,
      kernelTimestamps: options.kernelTimestamps ?? true,
      onDatagrams: (datagrams) => this.onDatagrams(datagrams),
      onError: (error) => {
        if (this.sendErrorLog.allow(this.monoMs())) this.log.warn({ err: error.message, suppressed: this.sendErrorLog.takeSuppressed() }, 'udp socket error');
      },
    });
  }

  /**
   * Tells the core whether the clock is synchronized and, while its time is provisional, how far
   * the discipline has moved it as of now (a REPLY carries it), before each input.
   */
  private reportClock(): void {
    const discipline = this.options.discipline;
    const provisionalNs = discipline.isProvisional ? discipline.provisionalNsAt(this.monoMs(), this.options.clock.state().slewRemainingNs) : null;
    this.node.setClockSynchronized(discipline.isSynchronized, provisionalNs);
  }

  private monoMs(): number {
    return this.options.hostClock.monoMs();
  }

  /** Binds the socket, starts discovery and the protocol. Resolves with the bound endpoint. */
  async start(): Promise<Endpoint> {
    this.listen = await this.transport.start();
    if (this.transport.rxTimestampsWhyNot !== null) this.log.warn({ why: this.transport.rxTimestampsWhyNot }, 'receive timestamps from user space (less precise): no kernel timestamps');
    // Keep the host clock's hrtime anchor honest (see HostClock.refine): ~1 ms of spinning per check.
    this.refineTimer = setInterval(() => this.options.hostClock.refine(), HOST_ANCHOR_REFINE_INTERVAL_MS);
    this.refineTimer.unref();
    // While someone reads this agent's dashboard, a member pulls the master's view every round.
    this.viewTimer = setInterval(() => {
      if (!this.monitor.interested(this.monoMs())) return;
      this.node.requestView(this.monoMs());
      this.pump();
    }, this.options.node.pollIntervalMs);
    this.viewTimer.unref();
    const config = this.options.node;
    this.log.info(
      { nodeId: config.nodeId, cluster: config.cluster, priority: config.priority, listen: this.listen, clock: this.options.clock.mode, pollIntervalMs: config.pollIntervalMs, rxTimestamps: this.transport.rxTimestamps },
      'agent started',
    );
    // The same --peer list on every box names this agent too: greeting ourselves would look like
    // another agent using our node id.
    for (const peer of this.options.staticPeers) if (!isOwnEndpoint(peer, this.listen)) this.node.addStaticEndpoint(peer, this.monoMs());
    if (this.options.mdns) {
      this.discovery = new MdnsDiscovery({
        nodeId: config.nodeId,
        priority: config.priority,
        cluster: config.cluster,
        port: this.listen.port,
        protocolVersion: PROTOCOL_VERSION,
        ...(this.options.interfaceAddress ? { interfaceAddress: this.options.interfaceAddress } : {}),
        logger: this.log,
        onUp: (peer) => {
          this.node.discovered({ nodeId: peer.nodeId, priority: peer.priority, endpoint: { address: peer.address, port: peer.port } });
          this.pump();
        },
        onDown: (nodeId) => this.log.info({ peer: nodeId }, 'mDNS goodbye'),
      });
      this.discovery.start();
    }
    this.pump();
    return this.listen;
  }

  /** Adds a static peer after start (the demo learns its siblings' ports late). */
  addPeer(endpoint: Endpoint): void {
    this.node.addStaticEndpoint(endpoint, this.monoMs());
    this.pump();
  }

  /**
   * Graceful stop (SIGTERM): tell the peers we are leaving (a master's members then elect at
   * once), send the mDNS goodbye, close the socket.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.node.leave();
    this.pump();
    this.stopped = true;
    this.clearTimers();
    this.barrierWaits.abandonAll();
    this.options.stateWriter?.save(this.node.persistentState(), this.frequencyToSave(true));
    this.options.clock.close();
    await this.transport.flush(LEAVE_FLUSH_TIMEOUT_MS);
    await this.discovery?.stop();
    await this.transport.close();
    this.log.info({ nodeId: this.options.node.nodeId }, 'agent stopped');
  }

  /**
   * What must happen however the process ends, even after an internal error (nothing here may
   * depend on the event loop): the state saved, a slew in progress ended at the kernel's base
   * frequency. The graceful stop() does the same among its other steps.
   */
  saveAndReleaseClock(): void {
    try {
      this.options.stateWriter?.save(this.node.persistentState(), this.frequencyToSave(true));
    } finally {
      this.options.clock.close();
    }
  }

  /** Stop without a word (for tests and the demo): like kill -9, peers notice only by silence. */
  async stopAbruptly(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    this.barrierWaits.abandonAll();
    this.options.clock.close();
    await this.discovery?.stop();
    await this.transport.close();
  }

  /**
   * The NTP client of --upstream, started once the agent runs: every sample it takes (and, every
   * `pollIntervalMs`, the selection as it stands, so a selection that lost its majority is told
   * too) becomes the node's upstream estimate. Every action on the clock is passed back to it
   * (clockAdjusted) so its kept samples follow the clock.
   */
  attachUpstreams(upstreams: Upstreams, pollIntervalMs: number): void {
    this.upstreams = upstreams;
    this.upstreamPollIntervalMs = pollIntervalMs;
    this.upstreamTimer = setInterval(() => this.feedUpstream(), pollIntervalMs);
    this.upstreamTimer.unref();
    this.feedUpstream();
  }

  /** The client took a sample of server `id` (UpstreamsOptions.onSample). */
  upstreamSample(_id: string, _sample: UpstreamSample): void {
    this.feedUpstream();
  }

  private feedUpstream(): void {
    const upstreams = this.upstreams;
    if (this.stopped || upstreams === null) return;
    // Named by the samples the filters chose: a new sample that the filter passes over (a worse
    // one) is no new estimate, and a kept one is not taken again as a fresh rate measurement.
    const outcome = upstreamEstimate(upstreams.selection(), upstreams.chosenSamples());
    let estimate = outcome.estimate;
    if (estimate !== null) {
      // As of now, not as of the end of the slew in progress (core/upstream/feed.ts).
      estimate = estimateNow(estimate, this.options.clock.state().slewRemainingNs);
      const peer = estimate.systemPeer;
      this.upstreamPeerAddress = upstreams.status().find((server) => server.id === peer)?.address ?? null;
    }
    this.reportClock();
    this.node.upstreamUpdate(this.monoMs(), estimate, outcome.why);
    this.pump();
  }

  private clearTimers(): void {
    if (this.upstreamTimer) clearInterval(this.upstreamTimer);
    this.upstreamTimer = null;
    if (this.refineTimer) clearInterval(this.refineTimer);
    if (this.viewTimer) clearInterval(this.viewTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onDatagrams(datagrams: Datagram[]): void {
    if (this.stopped) return;
    for (const datagram of datagrams) {
      // Convert the arrival stamp to this agent's clock before anything else can move it.
      const rxNs = this.options.clock.atHostNs(datagram.rxHostNs);
      const frame = this.intake.open(datagram);
      if (frame === null) continue;
      this.reportClock();
      this.node.receive(frame, datagram.from, rxNs, datagram.rxMonoMs);
    }
    this.pump();
  }

  /** Carry out everything the core asked for, then re-arm the timer for its next deadline. */
  private pump(): void {
    if (this.stopped) return;
    const out = this.node.drain();
    for (const correction of out.corrections) this.applyCorrection(correction);
    if (out.corrections.length > 0) this.reportClock();
    // Persist first: no frame may announce a term that a crash right now would lose.
    this.options.stateWriter?.save(this.node.persistentState(), this.frequencyToSave());
    for (const send of out.sends) {
      // The transport stamps and encodes each frame right before its own send (see udp.ts).
      const auth = this.options.auth ?? null;
      this.transport.send(send.to, () => {
        const bytes = encodeFrame({ ...send.frame, txNs: this.options.clock.nowNs() } as Frame);
        return auth === null ? bytes : auth.seal(bytes);
      });
      this.framesSent += 1;
    }
    for (const event of out.events) {
      if (event.kind === 'upstream-refused') this.upstreamRefusals += 1;
      this.events.record(event, this.monoMs());
      this.recordForDashboard(event);
    }
    for (const outcome of out.barrierOutcomes) this.barrierWaits.onOutcome(outcome);
    if (this.timer) clearTimeout(this.timer);
    const deadlineMs = this.node.nextDeadlineMs();
    if (Number.isFinite(deadlineMs)) {
      const delayMs = Math.max(0, deadlineMs - this.monoMs());
      this.timer = setTimeout(() => {
        this.timer = null;
        this.reportClock();
        this.node.tick(this.monoMs());
        this.pump();
      }, Math.ceil(delayMs));
    }
  }

  /** Runs one correction through the discipline and carries out its decision on the clock. */
  private applyCorrection(correction: Correction): void {
    const clock = this.options.clock;
    const slewRemainingNs = clock.state().slewRemainingNs;
    const action: DisciplineAction = this.options.discipline.correct(correction.correctionNs, this.monoMs(), slewRemainingNs, correction);
    const context = { correctionNs: Math.round(correction.correctionNs), masterId: correction.masterId, term: correction.term, round: correction.round };
    this.options.onCorrection?.(correction.correctionNs, action.kind);
    switch (action.kind) {
      case 'refuse':
        if (this.refusedLog.allow(this.monoMs())) {
          this.log.error(
            { ...context, correctionNsMax: action.correctionNsMax, suppressed: this.refusedLog.takeSuppressed() },
            'correction refused: larger than --max-correction (panic threshold); the clock is left alone',
          );
        }
        return;
      case 'hold':
        this.log.debug({ ...context, limitNs: Math.round(action.limitNs) }, 'correction held as a spike (far beyond the recent noise; the next one decides)');
        return;
      case 'step':
        carryOut(action, clock);
        this.log.info({ ...context, ...(correction.source ? { source: correction.source } : {}), why: action.why }, 'clock stepped');
        break;
      case 'slew':
        carryOut(action, clock);
        this.log.debug({ ...context, ...(correction.source ? { source: correction.source } : {}), phaseNs: Math.round(action.phaseNs), frequencyPpm: action.frequencyPpm }, 'clock slewed');
        break;
    }
    // Every move of the clock, whatever its source, to the upstream client (core/upstream/feed.ts).
    const moveNs = clockMoveNs(action, slewRemainingNs);
    if (moveNs !== null) this.upstreams?.clockAdjusted(moveNs);
    const tracking = this.options.discipline.state();
    if (tracking.synchronized) {
      // Tell the kernel how good the clock is (for other programs reading adjtimex/ntp_gettime).
      // maxerror is the error bound (error-bound.ts): a bound on |this clock - the master's| that
      // holds, which is what the kernel's "maximum error" means (the kernel then grows it by
      // 500 ppm a second on its own until the next correction). esterror, the expected error, is
      // half the measurement's round trip, capped by the bound: the part one measurement cannot
      // see (path asymmetry), as NTP counts it; what the bound adds on top (the master's own
      // bound, frequency tolerance) is a worst case, not an expectation.
      this.reportClock();
      const boundNs = this.node.errorBoundNs(this.monoMs());
      if (boundNs !== null) {
        clock.markSynchronized(Math.min(boundNs, this.node.measurementDelayNs / 2), boundNs);
      } else {
        // No bound (a master of an older version sends none): what the discipline has seen.
        const estErrorNs = tracking.rmsOffsetNs ?? Math.abs(correction.correctionNs);
        clock.markSynchronized(estErrorNs, Math.abs(correction.correctionNs) + 3 * estErrorNs);
      }
    }
  }

  /**
   * The agent's clock and what is known about it, read now (GET /time, the NTP server): the time
   * on this agent's clock (kernel or virtual), the bound, who the master is.
   */
  timeReading(): TimeReading {
    const nowMs = this.monoMs();
    const source = this.node.timeSource();
    const nowNs = this.options.clock.nowNs();
    const synchronized = this.options.discipline.isSynchronized;
    return {
      nowNs,
      synchronized,
      errorBoundNs: this.node.errorBoundNs(nowMs),
      measurementDelayNs: this.node.measurementDelayNs,
      role: source.role,
      masterId: source.masterId,
      masterAddress: source.masterAddress,
      // This clock's reading at the last correction: now minus the monotonic time since.
      lastCorrectionNs: source.lastCorrectedMs === null ? null : nowNs - BigInt(Math.round((nowMs - source.lastCorrectedMs) * 1e6)),
      clockMode: this.options.clock.mode,
      upstream: source.upstream,
      upstreamPeerAddress: source.upstream === null ? null : this.upstreamPeerAddress,
    };
  }

  /**
   * GET /time: a reading and this clock's offset from the host's. Apart from timeReading because
   * the kernel driver's state() is an adjtimex call, which the NTP server's per-request reading
   * does without.
   */
  timeReport(): TimeReport {
    const reading = this.timeReading();
    return timeReport(reading, this.options.clock.state().hostOffsetNs);
  }

  /** Just this agent's clock now, Unix ns (the NTP server's stamps). */
  nowNs(): bigint {
    return this.options.clock.nowNs();
  }

  /** The bound on |this clock - the master's| now (null: not synchronized), for status. */
  errorBoundNs(): number | null {
    return this.node.errorBoundNs(this.monoMs());
  }

  /** The frequencies the state directory should hold now (drift-file.ts). */
  private frequencyToSave(force = false): SavedFrequencies {
    return this.driftFile.toSave(this.options.discipline, this.monoMs(), force);
  }

  private recordForDashboard(event: NodeEvent): void {
    const clockMs = Number(this.options.clock.nowNs()) / 1e6;
    if (event.kind === 'view' || event.kind === 'round') {
      const view = event.kind === 'view' ? event.view : this.node.clusterView();
      // The view is as of its round's end: place it on the chart at that moment.
      if (view !== null) this.monitor.recordView(view, clockMs - (this.monoMs() - view.atMs));
      return;
    }
    this.monitor.recordEvent(event, clockMs);
  }

  /** A barrier participant for a control client (POST /barrier); see BarrierWaits.start. */
  barrier(request: BarrierRequest): { result: Promise<BarrierResult>; cancel: () => void } {
    return this.barrierWaits.start(request);
  }

  /** GET /api/cluster: the dashboard's data; `sinceMs` (agent clock) returns only newer history. */
  dashboard(sinceMs: number | null): DashboardReport {
    const nowMs = this.monoMs();
    // A first reader on a member: pull the master's view now rather than at the next tick (`status`
    // waits for it).
    const pulling = this.monitor.interested(nowMs);
    this.monitor.markRead(nowMs);
    if (!pulling && !this.stopped) {
      this.node.requestView(nowMs);
      this.pump();
    }
    const core = this.node.status();
    const self = {
      nodeId: core.nodeId,
      cluster: core.cluster,
      role: core.role,
      masterId: core.masterId,
      term: core.term,
      version: PACKAGE_VERSION,
      pollIntervalMs: this.options.node.pollIntervalMs,
      synchronized: this.options.discipline.isSynchronized,
      uptimeMs: Math.round(nowMs - this.startedMonoMs),
      reference: core.reference,
      upstreamMode: core.upstream?.mode ?? null,
    };
    return this.monitor.report(self, nowMs, Number(this.options.clock.nowNs()) / 1e6, sinceMs);
  }

  status(): StatusReport {
    const nowMs = this.monoMs();
    const { hostClock, discipline, auth } = this.options;
    return buildStatus({
      nowMs,
      startedMonoMs: this.startedMonoMs,
      pid: process.pid,
      version: PACKAGE_VERSION,
      listen: this.listen,
      interfaceName: this.options.interfaceName,
      pollIntervalMs: this.options.node.pollIntervalMs,
      node: this.node.status(),
      barriers: this.node.barrierReport(nowMs),
      clock: this.options.clock.state(),
      errorBoundNs: this.node.errorBoundNs(nowMs),
      ntp: this.options.ntpReport?.() ?? NTP_NOT_RUNNING,
      upstreams: this.upstreams === null ? null : { servers: this.upstreams.status(), selection: this.upstreams.selection(), pollIntervalMs: this.upstreamPollIntervalMs, refusals: this.upstreamRefusals },
      virtualDriftPpm: this.options.virtualDriftPpm,
      hostClock: { anchorErrorNs: hostClock.anchorErrorNs, reanchors: hostClock.reanchors, refinements: hostClock.refinements },
      discipline: discipline.state(),
      policy: discipline.policy,
      slewRatePpmMax: discipline.slewRatePpm(),
      transport: {
        rxTimestamps: this.transport.rxTimestamps,
        rxTimestampsWhyNot: this.transport.rxTimestampsWhyNot,
        rxStampedByKernel: this.transport.rxStampedByKernel,
        rxStampedByUser: this.transport.rxStampedByUser,
        sendErrors: this.transport.sendErrors,
      },
      auth: auth ? { sendKeyId: auth.sendKeyId, keyIds: auth.keyIds } : null,
      keyFile: this.options.keyFile ?? null,
      frames: { received: this.intake.received, sent: this.framesSent, rejectedByReason: this.intake.rejectedByReason },
    });
  }
}
