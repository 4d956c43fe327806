// The agent: the thin shell around ProtocolNode. It owns the socket, the timers, the clock, the
// discovery and the control server, feeds the core its inputs and carries out what it drains.
import type { Logger } from 'pino';
import { networkInterfaces } from 'node:os';
import { ProtocolNode, type NodeConfig, type NodeEvent, type PersistedNodeState } from '../core/node.ts';
import type { SavedFrequencies, StateWriter } from './state.ts';
import type { Frame } from '../core/frames.ts';
import { FREQUENCY_SAVE_INTERVAL_MS, FREQUENCY_SAVE_PPM, PROTOCOL_VERSION, REJECT_LOG_INTERVAL_MS } from '../core/limits.ts';
import { carryOut, Discipline, type DisciplineAction } from '../core/sync/discipline.ts';
import type { Correction } from '../core/node.ts';

/** How long a graceful stop waits for its LEAVE frames to leave the socket. */
const LEAVE_FLUSH_TIMEOUT_MS = 200;
import type { Endpoint } from '../core/types.ts';
import type { ClockDriver } from '../clock/driver.ts';
import { ANCHOR_REFINE_INTERVAL_MS, type HostClock } from '../clock/host.ts';
import { decodeFrame, encodeFrame, REJECT_REASONS, type RejectReason } from '../wire/codec.ts';
import { AUTH_REJECT_REASONS, type AuthRejectReason, type FrameAuth } from '../wire/auth.ts';
import { UdpTransport, type Datagram } from '../net/udp.ts';
import { MdnsDiscovery } from '../net/mdns.ts';
import { RateLimiter } from './logger.ts';
import { verdictOf, type StatusReport } from './status.ts';
import { ClusterMonitor, type DashboardReport } from './dashboard.ts';
import type { BarrierOutcome } from '../core/barrier/client.ts';
import { BARRIER_LOCAL_WAITERS_MAX, BARRIER_PARTICIPANTS_MAX, BARRIER_REGISTER_TIMEOUT_MS, BARRIER_WAITERS_MAX, BARRIERS_OPEN_MAX } from '../core/limits.ts';

/** What a barrier participant's control client is told (POST /barrier). */
export type BarrierResult =
  | { result: 'released'; name: string; exitCode: number; waitedMs: number }
  /** --no-wait: the master has the initializer; it stays registered until the barrier releases. */
  | { result: 'registered'; name: string; present: number; count: number | null }
  | { result: 'timeout'; name: string; waitedMs: number }
  /** A usage or limit error, from this agent or the master. */
  | { result: 'rejected'; name: string; reason: string; detail: string }
  /** No master acknowledged it in time, or the agent is stopping. */
  | { result: 'unreachable'; name: string; detail: string };

export interface BarrierRequest {
  name: string;
  /** null: a waiter; N: the initializer with N waiters. */
  count: number | null;
  errorCode: number;
  /** false: return once registered (--no-wait; initializers only). */
  wait: boolean;
  timeoutMs: number | null;
}

interface BarrierWait {
  requestId: number;
  name: string;
  wait: boolean;
  startedMs: number;
  acked: boolean;
  resolve: (result: BarrierResult) => void;
  timers: NodeJS.Timeout[];
}
import { PACKAGE_VERSION } from './version.ts';

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
  /** Control clients blocked on a barrier, by request id. */
  private readonly barrierWaits = new Map<number, BarrierWait>();
  private readonly startedMonoMs: number;
  private listen: Endpoint = { address: '', port: 0 };
  private stopped = false;
  private framesReceived = 0;
  private framesSent = 0;
  private readonly rejectedByReason = Object.fromEntries([...REJECT_REASONS, ...AUTH_REJECT_REASONS].map((reason) => [reason, 0])) as Record<RejectReason | AuthRejectReason, number>;
  private readonly rejectLog = new RateLimiter(REJECT_LOG_INTERVAL_MS);
  private readonly duplicateIdLog = new RateLimiter(REJECT_LOG_INTERVAL_MS);
  private readonly sendErrorLog = new RateLimiter(REJECT_LOG_INTERVAL_MS);
  private readonly refusedLog = new RateLimiter(REJECT_LOG_INTERVAL_MS);
  private readonly peerLimitLog = new RateLimiter(REJECT_LOG_INTERVAL_MS);
  private readonly peerExpiredLog = new RateLimiter(REJECT_LOG_INTERVAL_MS);
  /** The frequencies last written to the state directory, and when ours was. */
  private savedFrequencies: SavedFrequencies;
  private savedFrequencyAtMs = Number.NEGATIVE_INFINITY;

  constructor(options: AgentOptions) {
    this.options = options;
    this.savedFrequencies = { ...options.savedFrequencies };
    this.log = options.logger;
    this.startedMonoMs = options.hostClock.monoMs();
    this.node = new ProtocolNode(options.node, this.startedMonoMs, options.persisted);
    this.monitor = new ClusterMonitor(options.node.nodeId);
    this.reportClock();
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
    this.refineTimer = setInterval(() => this.options.hostClock.refine(), ANCHOR_REFINE_INTERVAL_MS);
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
    this.abandonBarriers();
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
    this.abandonBarriers();
    this.options.clock.close();
    await this.discovery?.stop();
    await this.transport.close();
  }

  /** A stopping agent cannot see its participants through: their clients exit 76. */
  private abandonBarriers(): void {
    for (const wait of [...this.barrierWaits.values()]) this.finishBarrier(wait, { result: 'unreachable', name: wait.name, detail: 'the agent is stopping' });
  }

  private clearTimers(): void {
    if (this.refineTimer) clearInterval(this.refineTimer);
    if (this.viewTimer) clearInterval(this.viewTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onDatagrams(datagrams: Datagram[]): void {
    if (this.stopped) return;
    for (const datagram of datagrams) {
      this.framesReceived += 1;
      // Convert the arrival stamp to this agent's clock before anything else can move it.
      const rxNs = this.options.clock.atHostNs(datagram.rxHostNs);
      const auth = this.options.auth ?? null;
      const opened = auth === null ? null : auth.open(datagram.bytes);
      if (opened !== null && !opened.ok) {
        this.rejectedByReason[opened.reason] += 1;
        if (this.rejectLog.allow(datagram.rxMonoMs)) {
          this.log.warn({ from: datagram.from, reason: opened.reason, detail: opened.detail, suppressed: this.rejectLog.takeSuppressed() }, 'frame rejected: not authenticated with our keys');
        }
        continue;
      }
      const decoded = decodeFrame(opened === null ? datagram.bytes : opened.frame);
      if (!decoded.ok) {
        this.rejectedByReason[decoded.reason] += 1;
        if (this.rejectLog.allow(datagram.rxMonoMs)) {
          this.log.debug({ from: datagram.from, reason: decoded.reason, detail: decoded.detail, suppressed: this.rejectLog.takeSuppressed() }, 'frame rejected');
        }
        continue;
      }
      this.reportClock();
      this.node.receive(decoded.frame, datagram.from, rxNs, datagram.rxMonoMs);
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
      this.logEvent(event);
      this.recordForDashboard(event);
    }
    for (const outcome of out.barrierOutcomes) this.onBarrierOutcome(outcome);
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
    const action: DisciplineAction = this.options.discipline.correct(correction.correctionNs, this.monoMs(), clock.state().slewRemainingNs);
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
        this.log.info({ ...context, why: action.why }, 'clock stepped');
        break;
      case 'slew':
        carryOut(action, clock);
        this.log.debug({ ...context, phaseNs: Math.round(action.phaseNs), frequencyPpm: action.frequencyPpm }, 'clock slewed');
        break;
    }
    const tracking = this.options.discipline.state();
    if (tracking.synchronized) {
      // Tell the kernel how good the clock is (for other programs reading adjtimex/ntp_gettime).
      const estErrorNs = tracking.rmsOffsetNs ?? Math.abs(correction.correctionNs);
      clock.markSynchronized(estErrorNs, Math.abs(correction.correctionNs) + 3 * estErrorNs);
    }
  }

  /** The drift file rule: keep a moved frequency at most once a minute (and always at stop). */
  private frequencyToSave(force = false): SavedFrequencies {
    const discipline = this.options.discipline;
    if (!discipline.isSynchronized) return this.savedFrequencies;
    const mode = this.options.clock.mode;
    const frequencyPpm = Math.round(discipline.frequencyPpm * 1000) / 1000;
    const saved = this.savedFrequencies[mode];
    const moved = saved === undefined || Math.abs(saved - frequencyPpm) > FREQUENCY_SAVE_PPM;
    const nowMs = this.monoMs();
    if (force || (moved && nowMs - this.savedFrequencyAtMs >= FREQUENCY_SAVE_INTERVAL_MS)) {
      this.savedFrequencies = { ...this.savedFrequencies, [mode]: frequencyPpm };
      this.savedFrequencyAtMs = nowMs;
    }
    return this.savedFrequencies;
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

  /**
   * A barrier participant for a control client (POST /barrier). Resolves when it is released, times
   * out (withdrawn from the barrier), is refused, or cannot be registered; `cancel` withdraws it
   * (the client went away).
   */
  barrier(request: BarrierRequest): { result: Promise<BarrierResult>; cancel: () => void } {
    const settled = (result: BarrierResult) => ({ result: Promise.resolve(result), cancel: () => {} });
    if (this.stopped) return settled({ result: 'unreachable', name: request.name, detail: 'the agent is stopping' });
    if (this.barrierWaits.size >= BARRIER_LOCAL_WAITERS_MAX) {
      return settled({ result: 'rejected', name: request.name, reason: 'client-limit', detail: `at most ${BARRIER_LOCAL_WAITERS_MAX} participants wait at one agent` });
    }
    const nowMs = this.monoMs();
    const joined = this.node.barrierJoin({ name: request.name, count: request.count, errorCode: request.errorCode }, nowMs);
    if (!joined.ok) {
      this.pump();
      return settled({ result: 'rejected', name: request.name, reason: joined.reason, detail: joined.detail });
    }
    let resolve!: (result: BarrierResult) => void;
    const result = new Promise<BarrierResult>((done) => (resolve = done));
    const wait: BarrierWait = { requestId: joined.requestId, name: request.name, wait: request.wait, startedMs: nowMs, acked: false, resolve, timers: [] };
    this.barrierWaits.set(joined.requestId, wait);
    if (request.timeoutMs !== null) {
      wait.timers.push(setTimeout(() => this.withdrawBarrier(wait, { result: 'timeout', name: wait.name, waitedMs: Math.round(this.monoMs() - wait.startedMs) }), request.timeoutMs));
    }
    wait.timers.push(
      setTimeout(() => {
        if (!wait.acked) this.withdrawBarrier(wait, { result: 'unreachable', name: wait.name, detail: `no master acknowledged the participant within ${BARRIER_REGISTER_TIMEOUT_MS / 1000} s` });
      }, BARRIER_REGISTER_TIMEOUT_MS),
    );
    this.log.debug({ barrier: request.name, requestId: joined.requestId, count: request.count, errorCode: request.errorCode }, 'barrier participant joined');
    this.pump();
    return { result, cancel: () => this.withdrawBarrier(wait, { result: 'unreachable', name: wait.name, detail: 'the control client went away' }) };
  }

  private withdrawBarrier(wait: BarrierWait, result: BarrierResult): void {
    if (!this.barrierWaits.has(wait.requestId)) return;
    this.finishBarrier(wait, result);
    if (this.stopped) return;
    this.node.barrierWithdraw(wait.requestId, this.monoMs());
    this.pump();
  }

  private finishBarrier(wait: BarrierWait, result: BarrierResult): void {
    if (this.barrierWaits.get(wait.requestId) !== wait) return;
    this.barrierWaits.delete(wait.requestId);
    for (const timer of wait.timers) clearTimeout(timer);
    wait.resolve(result);
  }

  private onBarrierOutcome(outcome: BarrierOutcome): void {
    const wait = this.barrierWaits.get(outcome.requestId);
    if (wait === undefined) return; // a --no-wait initializer, or a client that gave up
    switch (outcome.kind) {
      case 'acked':
        wait.acked = true;
        // --no-wait: the participant stays registered (the core keeps it); only the answer is early.
        if (!wait.wait) this.finishBarrier(wait, { result: 'registered', name: wait.name, present: outcome.present, count: outcome.count });
        return;
      case 'released':
        this.log.debug({ barrier: wait.name, requestId: wait.requestId, exitCode: outcome.exitCode }, 'barrier released');
        return this.finishBarrier(wait, { result: 'released', name: wait.name, exitCode: outcome.exitCode, waitedMs: Math.round(this.monoMs() - wait.startedMs) });
      case 'rejected':
        return this.finishBarrier(wait, { result: 'rejected', name: wait.name, reason: outcome.reason, detail: describeBarrierReason(outcome.reason) });
    }
  }

  private barrierStatus(nowMs: number): StatusReport['barriers'] {
    const report = this.node.barrierReport(nowMs);
    const table = report.table;
    return {
      waiting: report.participants.map((participant) => ({
        name: participant.name,
        count: participant.count,
        errorCode: participant.errorCode,
        acknowledged: participant.generation !== null,
        present: participant.present,
        waitingMs: Math.round(nowMs - participant.sinceMs),
      })),
      open:
        table === null
          ? null
          : table.open.map((open) => ({
              name: open.name,
              generation: open.generation,
              present: open.present,
              count: open.count,
              initialized: open.initialized,
              errorCode: open.errorCode,
              ageMs: Math.round(open.ageMs),
              inherited: open.inherited,
            })),
      counters: {
        released: table?.counters.participantsReleased ?? 0,
        withdrawn: table?.counters.withdrawn ?? 0,
        expired: table?.counters.expired ?? 0,
        rejected: { ...(table?.counters.rejected ?? {}) },
        releaseRetransmits: table?.counters.releaseRetransmits ?? 0,
        joinsSent: report.client.joinsSent,
        releasesReceived: report.client.releasesReceived,
      },
    };
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
    };
    return this.monitor.report(self, nowMs, Number(this.options.clock.nowNs()) / 1e6, sinceMs);
  }

  private logEvent(event: NodeEvent): void {
    switch (event.kind) {
      case 'peer-new':
        return this.log.info({ peer: event.nodeId, endpoint: event.endpoint, via: event.via }, 'peer appeared');
      case 'peer-suspect':
        return this.log.warn({ peer: event.nodeId, why: event.why }, 'peer not answering');
      case 'peer-alive':
        return this.log.info({ peer: event.nodeId }, 'peer answering again');
      case 'peer-left':
        return this.log.info({ peer: event.nodeId, wasMaster: event.wasMaster }, event.wasMaster ? 'master left; electing now' : 'peer left');
      case 'peer-limit':
        // A flood of new ids (an open cluster) must not flood the log: once per interval, with a count.
        if (this.peerLimitLog.allow(this.monoMs())) {
          this.log.warn({ peer: event.nodeId, peersMax: this.options.node.peersMax, suppressed: this.peerLimitLog.takeSuppressed() }, 'peer limit reached, peer ignored');
        }
        return;
      case 'peer-expired':
        // Forged HELLOs can make many of these: once per interval, with a count.
        if (this.peerExpiredLog.allow(this.monoMs())) {
          this.log.info({ peer: event.nodeId, why: event.why, suppressed: this.peerExpiredLog.takeSuppressed() }, 'peer forgotten: it never answered');
        }
        return;
      case 'election-start':
        return this.log.info({ term: event.term, algorithm: event.algorithm, reason: event.reason }, 'election started');
      case 'election-failed':
        return this.log.warn({ term: event.term, why: event.why, retryInMs: Math.round(event.retryInMs) }, 'election failed');
      case 'election-end':
        return this.log.info(
          { term: event.record.term, algorithm: event.record.algorithm, masterId: event.record.winner, durationMs: Math.round(event.record.durationMs) },
          'election finished',
        );
      case 'role':
        return this.log.info({ from: event.from, to: event.to, term: event.term, masterId: event.masterId }, 'role changed');
      case 'view':
        return this.log.trace({ masterId: event.view.masterId, round: event.view.round, members: event.view.members.length }, 'cluster view received');
      case 'round':
        return this.log.debug(
          { round: event.record.round, answered: event.record.answered, members: event.record.members, averageNs: Math.round(event.record.averageNs), excluded: event.record.excluded },
          'round completed',
        );
      case 'duplicate-id':
        if (this.duplicateIdLog.allow(this.monoMs())) {
          this.log.error({ endpoint: event.endpoint, nodeId: this.options.node.nodeId }, 'another agent uses our node id; give each agent a unique --node-id');
        }
        return;
      case 'outbox-full':
        return this.log.error({}, 'outgoing frame queue full; frames dropped');
    }
  }

  status(): StatusReport {
    const report = this.statusReport();
    return { ...report, ...verdictOf(report) };
  }

  private statusReport(): Omit<StatusReport, 'verdict' | 'verdictReason'> {
    const nowMs = this.monoMs();
    const core = this.node.status();
    const clockState = this.options.clock.state();
    const discipline = this.options.discipline.state();
    const policy = this.options.discipline.policy;
    const framesRejected = Object.values(this.rejectedByReason).reduce((sum, count) => sum + count, 0);
    const last = core.election.last;
    return {
      nodeId: core.nodeId,
      cluster: core.cluster,
      priority: core.priority,
      neverMaster: core.neverMaster,
      role: core.role,
      masterId: core.masterId,
      term: core.term,
      version: PACKAGE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      pid: process.pid,
      uptimeMs: Math.round(nowMs - this.startedMonoMs),
      listen: { ...this.listen },
      interface: this.options.interfaceName,
      pollIntervalMs: this.options.node.pollIntervalMs,
      clock: {
        mode: clockState.mode,
        hostOffsetNs: clockState.hostOffsetNs,
        frequencyPpm: clockState.frequencyPpm,
        synchronized: discipline.synchronized,
        slewRemainingNs: clockState.slewRemainingNs,
        slewRatePpm: clockState.slewRatePpm,
        steps: discipline.steps,
        slews: discipline.slews,
        virtualDriftPpm: this.options.virtualDriftPpm,
        kernel: clockState.kernel,
        host: { anchorErrorNs: Math.round(this.options.hostClock.anchorErrorNs), reanchors: this.options.hostClock.reanchors, refinements: this.options.hostClock.refinements },
      },
      tracking: {
        referenceId: core.lastCorrection?.masterId ?? null,
        lastOffsetNs: discipline.lastOffsetNs === null ? null : Math.round(discipline.lastOffsetNs),
        rmsOffsetNs: discipline.rmsOffsetNs === null ? null : Math.round(discipline.rmsOffsetNs),
        frequencyPpm: Math.round(discipline.frequencyPpm * 1000) / 1000,
        updates: discipline.updates,
        refused: discipline.refused,
        spikes: discipline.spikes,
        lastRefused: discipline.lastRefused ? { correctionNs: Math.round(discipline.lastRefused.correctionNs), agoMs: Math.round(nowMs - discipline.lastRefused.atMs) } : null,
        lastUpdateAgoMs: discipline.lastUpdateMs === null ? null : Math.round(nowMs - discipline.lastUpdateMs),
        holdover: discipline.lastUpdateMs !== null && nowMs - discipline.lastUpdateMs > 2 * this.options.node.pollIntervalMs,
        stepThresholdNs: policy.stepThresholdNs,
        slewRatePpmMax: this.options.discipline.slewRatePpm(),
        correctionNsMax: Number.isFinite(policy.correctionNsMax) ? policy.correctionNsMax : null,
      },
      election: {
        inProgress: core.election.inProgress
          ? { term: core.election.inProgress.term, algorithm: core.election.inProgress.algorithm, forMs: Math.round(nowMs - core.election.inProgress.sinceMs) }
          : null,
        last: last ? { term: last.term, algorithm: last.algorithm, winner: last.winner, durationMs: Math.round(last.durationMs * 1000) / 1000, agoMs: Math.round(nowMs - last.endedMs) } : null,
        started: core.counters.electionsStarted,
        won: core.counters.electionsWon,
        byAlgorithm: core.counters.electionsByAlgorithm,
      },
      timestamps: {
        rx: this.transport.rxTimestamps,
        whyNotKernel: this.transport.rxTimestampsWhyNot,
        rxStampedByKernel: this.transport.rxStampedByKernel,
        rxStampedByUser: this.transport.rxStampedByUser,
      },
      lastRound: core.lastRound
        ? {
            round: core.lastRound.round,
            term: core.lastRound.term,
            agoMs: Math.round(nowMs - core.lastRound.atMs),
            members: core.lastRound.members,
            answered: core.lastRound.answered,
            averageNs: Math.round(core.lastRound.averageNs),
            medianNs: Math.round(core.lastRound.medianNs),
            boundNs: Math.round(core.lastRound.boundNs),
            excluded: core.lastRound.excluded,
            reference: core.lastRound.reference,
          }
        : null,
      lastCorrection: core.lastCorrection
        ? {
            correctionNs: Math.round(core.lastCorrection.correctionNs),
            term: core.lastCorrection.term,
            round: core.lastCorrection.round,
            masterId: core.lastCorrection.masterId,
            agoMs: Math.round(nowMs - core.lastCorrection.atMs),
          }
        : null,
      peers: core.peers
        .map((peer) => ({
          nodeId: peer.nodeId,
          address: peer.endpoint.address,
          port: peer.endpoint.port,
          priority: peer.priority,
          lastHeardAgoMs: peer.lastHeardMs === null ? null : Math.round(nowMs - peer.lastHeardMs),
          suspect: peer.suspect,
          offsetNs: peer.lastSample ? Math.round(peer.lastSample.offsetNs) : null,
          delayNs: peer.lastSample ? Math.round(peer.lastSample.delayNs) : null,
          excluded: peer.excluded,
          sampleDiscarded: peer.lastSample?.discarded ?? false,
        }))
        .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0)),
      auth: {
        enabled: this.options.auth != null,
        keyFile: this.options.keyFile ?? null,
        sendKeyId: this.options.auth?.sendKeyId ?? null,
        keyIds: this.options.auth?.keyIds ?? [],
      },
      barriers: this.barrierStatus(nowMs),
      counters: {
        framesReceived: this.framesReceived,
        framesSent: this.framesSent,
        framesRejected,
        framesRejectedByReason: { ...this.rejectedByReason },
        framesOtherCluster: core.counters.framesOtherCluster,
        framesStale: core.counters.framesStale,
        framesReplayed: core.counters.framesReplayed,
        framesMisdirected: core.counters.framesMisdirected,
        framesDroppedOutboxFull: core.counters.framesDroppedOutboxFull,
        framesFromSelfId: core.counters.framesFromSelfId,
        sendErrors: this.transport.sendErrors,
        roundsCompleted: core.counters.roundsCompleted,
        samplesDiscarded: core.counters.samplesDiscarded,
        probesSent: core.counters.probesSent,
        correctionsApplied: core.counters.correctionsApplied,
        peersRefused: core.counters.peersRefused,
      },
    };
  }
}

function describeBarrierReason(reason: string): string {
  switch (reason) {
    case 'barrier-limit':
      return `the cluster has the most open barriers it allows (${BARRIERS_OPEN_MAX})`;
    case 'waiter-limit':
      return `the barrier has the most waiters it allows (${BARRIER_WAITERS_MAX})`;
    case 'participant-limit':
      return `the master has the most barrier participants it allows (${BARRIER_PARTICIPANTS_MAX})`;
    case 'second-initializer':
      return 'the barrier already has an initializer (--count); only one participant may give it';
    default:
      return `refused by the master (${reason})`;
  }
}

/** Whether a --peer endpoint is this agent's own socket (its port on one of this host's addresses). */
export function isOwnEndpoint(peer: Endpoint, listen: Endpoint): boolean {
  if (peer.port !== listen.port) return false;
  if (peer.address === listen.address) return true;
  if (listen.address !== '0.0.0.0' && listen.address !== '::') return false;
  const local = Object.values(networkInterfaces()).flatMap((addresses) => (addresses ?? []).map((address) => address.address));
  return local.includes(peer.address);
}
