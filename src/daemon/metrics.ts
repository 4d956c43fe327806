// Prometheus metrics (GET /metrics on the control server), one Registry per agent: the demo runs
// several agents in one process, so nothing goes into prom-client's global registry.
//
// Everything except the corrections histogram is read from the status report at scrape time
// (collect() callbacks): no state is duplicated, and a peer that is gone simply has no series at
// the next scrape. One status report is taken per scrape and shared by every collect callback.
// Units are in the names (_seconds, _ppm, _total); ns from the status report become seconds.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DisciplineAction } from '../core/sync/discipline.ts';
import type { ElectionAlgorithm, Role } from '../core/types.ts';
import type { StatusReport, UpstreamServerReport } from './status.ts';

const ROLES: readonly Role[] = ['master', 'slave', 'electing'];
const ELECTION_ALGORITHMS: readonly ElectionAlgorithm[] = ['ring', 'bully', 'takeover'];
/** The discipline's decision on a correction, as the histogram's `action` label. */
export const CORRECTION_ACTIONS = ['step', 'slew', 'hold', 'refuse'] as const satisfies readonly DisciplineAction['kind'][];
export type CorrectionAction = (typeof CORRECTION_ACTIONS)[number];
/** Absolute correction, seconds: 1 us to 1 s in 1-2.5-5 steps. */
export const CORRECTION_BUCKETS_SECONDS: readonly number[] = [
  1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1,
];

const NS_PER_S = 1e9;
const MS_PER_S = 1e3;

export interface AgentMetricsOptions {
  /** The agent's status report (read once per scrape). */
  status(): StatusReport;
  /** The peer limit: per-peer series are never more than this many per family. */
  peersMax: number;
}

export interface MetricsPayload {
  contentType: string;
  body: string;
}

/** nanoseconds (or null: not known yet) to seconds (NaN: not known yet). */
function seconds(ns: number | null): number {
  return ns === null ? Number.NaN : ns / NS_PER_S;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly options: AgentMetricsOptions;
  /** The status report of the scrape in progress; null between scrapes. */
  private current: StatusReport | null = null;
  private readonly corrections: Histogram<'action'>;

  constructor(options: AgentMetricsOptions) {
    this.options = options;
    const registers = [this.registry];
    const snapshot = (): StatusReport => this.current ?? this.options.status();
    // prom-client counters only go up; a counter read from the status report is re-set each scrape.
    const setCounter = <L extends string>(counter: Counter<L>, value: number, labels?: Partial<Record<L, string>>): void => {
      if (labels) counter.inc(labels, Math.max(0, value));
      else counter.inc(Math.max(0, value));
    };
    const gauge = (name: string, help: string, read: (status: StatusReport) => number): Gauge => {
      return new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(snapshot()));
        },
      });
    };
    const counter = (name: string, help: string, read: (status: StatusReport) => number): Counter => {
      return new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          setCounter(this, read(snapshot()));
        },
      });
    };
    /** A counter with one label, one series per key of what `read` returns. */
    const labelledCounter = (name: string, help: string, label: string, read: (status: StatusReport) => Record<string, number>): Counter<string> => {
      return new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          const values = read(snapshot());
          this.reset();
          for (const [key, value] of Object.entries(values)) setCounter(this, value, { [label]: key });
        },
      });
    };

    // ------------------------------------------------------------------ identity, role, election
    new Gauge({
      name: 'berkeley_info',
      help: 'Always 1; the labels say which agent this is: node id, cluster, software version, clock mode (virtual or system) and where receive timestamps come from (kernel or user).',
      labelNames: ['node_id', 'cluster', 'version', 'clock_mode', 'rx_timestamps'] as const,
      registers,
      collect() {
        const status = snapshot();
        this.reset();
        this.set({ node_id: status.nodeId, cluster: status.cluster, version: status.version, clock_mode: status.clock.mode, rx_timestamps: status.timestamps.rx }, 1);
      },
    });
    new Gauge({
      name: 'berkeley_role',
      help: 'The agent\'s role: 1 for the role it has now (master, slave or electing), 0 for the others.',
      labelNames: ['role'] as const,
      registers,
      collect() {
        const role = snapshot().role;
        for (const each of ROLES) this.set({ role: each }, each === role ? 1 : 0);
      },
    });
    gauge('berkeley_term', 'Election term: grows with every election; the master\'s frames carry it.', (status) => status.term);
    gauge('berkeley_priority', 'This agent\'s election priority (--priority); the higher key (priority, node id) wins.', (status) => status.priority);
    labelledCounter(
      'berkeley_elections_total',
      'Elections this agent took part in, by algorithm: ring (Chang-Roberts), bully (the fallback) and takeover (a master met a lower-key master and took over).',
      'algorithm',
      (status) => Object.fromEntries(ELECTION_ALGORITHMS.map((algorithm) => [algorithm, status.election.byAlgorithm[algorithm] ?? 0])),
    );
    counter('berkeley_elections_won_total', 'Elections this agent won (it became master).', (status) => status.election.won);
    gauge('berkeley_election_in_progress', '1 while an election is in progress, else 0.', (status) => (status.election.inProgress ? 1 : 0));

    // ------------------------------------------------------------------ clock and tracking
    gauge(
      'berkeley_clock_host_offset_seconds',
      'This agent\'s clock minus the host\'s system clock, in seconds, at the scrape (always 0 with the system clock: then the agent disciplines the host clock itself).',
      (status) => status.clock.hostOffsetNs / NS_PER_S,
    );
    gauge('berkeley_clock_frequency_ppm', 'Frequency adjustment the discipline applies, in ppm (positive = sped up); with the system clock, the kernel\'s frequency.', (status) => status.clock.frequencyPpm);
    gauge('berkeley_clock_provisional', '1 while the clock\'s time is provisional (its first minute: clocks booting later may still move it, backwards too), else 0.', (status) => (status.clock.provisional ? 1 : 0));
    gauge('berkeley_clock_synchronized', '1 once initial synchronization is done (from then on the clock never steps backwards), else 0.', (status) => (status.clock.synchronized ? 1 : 0));
    gauge(
      'berkeley_clock_error_bound_seconds',
      'Bound on |this clock - the master\'s clock| at the scrape, in seconds (0 on the master); NaN while not synchronized (no bound is promised).',
      (status) => seconds(status.clock.errorBoundNs ?? null),
    );
    gauge('berkeley_clock_slew_remaining_seconds', 'Part of the last correction still being slewed, in seconds (signed).', (status) => status.clock.slewRemainingNs / NS_PER_S);
    counter('berkeley_clock_steps_total', 'Corrections applied by stepping the clock.', (status) => status.clock.steps);
    counter('berkeley_clock_slews_total', 'Corrections applied by slewing the clock.', (status) => status.clock.slews);
    gauge(
      'berkeley_tracking_last_offset_seconds',
      'This clock minus the cluster\'s time at the last accepted correction, in seconds; NaN before the first.',
      (status) => seconds(status.tracking.lastOffsetNs),
    );
    gauge(
      'berkeley_tracking_rms_offset_seconds',
      'Exponentially weighted RMS of the offsets of the last ~16 synchronized corrections, in seconds; NaN before the first.',
      (status) => seconds(status.tracking.rmsOffsetNs),
    );
    counter('berkeley_tracking_spikes_total', 'Corrections held once as spikes (far beyond the recent noise and not confirmed by the next one).', (status) => status.tracking.spikes);
    counter('berkeley_tracking_refused_total', 'Corrections refused because they exceeded the panic threshold (--max-correction); the clock was left alone.', (status) => status.tracking.refused);
    gauge('berkeley_tracking_holdover', '1 when no correction arrived for over two poll intervals (running on the learned frequency alone), else 0.', (status) => (status.tracking.holdover ? 1 : 0));
    this.corrections = new Histogram({
      name: 'berkeley_correction_seconds',
      help: 'Absolute size of each correction the master ordered for this clock, in seconds, by what the discipline did with it: step, slew, hold (a spike) or refuse (panic threshold).',
      labelNames: ['action'] as const,
      buckets: [...CORRECTION_BUCKETS_SECONDS],
      registers,
    });
    // Every action appears from the start (count 0), so rate() works from the first correction.
    for (const action of CORRECTION_ACTIONS) this.corrections.zero({ action });

    // ------------------------------------------------------------------ peers and rounds
    gauge('berkeley_peers', 'Peers this agent knows (discovered or static, alive or suspect).', (status) => status.peers.length);
    gauge('berkeley_peers_suspect', 'Known peers that stopped answering.', (status) => status.peers.filter((peer) => peer.suspect).length);
    const peerGauge = (name: string, help: string, read: (peer: StatusReport['peers'][number]) => number | null): Gauge<'node_id'> => {
      const peersMax = this.options.peersMax;
      return new Gauge({
        name,
        help,
        labelNames: ['node_id'] as const,
        registers,
        collect() {
          // Rebuilt from the peer list at every scrape: a peer that is gone loses its series.
          this.reset();
          for (const peer of snapshot().peers.slice(0, peersMax)) {
            const value = read(peer);
            if (value !== null) this.set({ node_id: peer.nodeId }, value);
          }
        },
      });
    };
    peerGauge(
      'berkeley_peer_offset_seconds',
      'Master only: the peer\'s clock minus this clock at the last round, in seconds (no series for a peer not yet measured).',
      (peer) => (peer.offsetNs === null ? null : peer.offsetNs / NS_PER_S),
    );
    peerGauge('berkeley_peer_delay_seconds', 'Master only: round-trip delay of the peer\'s best probe in the last round, in seconds.', (peer) => (peer.delayNs === null ? null : peer.delayNs / NS_PER_S));
    peerGauge('berkeley_peer_last_heard_seconds', 'Seconds since the last valid frame from the peer (no series for a peer never heard).', (peer) =>
      peer.lastHeardAgoMs === null ? null : peer.lastHeardAgoMs / MS_PER_S,
    );
    peerGauge('berkeley_peer_suspect', '1 when the peer stopped answering, else 0.', (peer) => (peer.suspect ? 1 : 0));
    peerGauge('berkeley_peer_excluded', 'Master only: 1 when the peer was left out of the last average (an outlier, or not yet synchronized), else 0.', (peer) =>
      peer.offsetNs === null ? null : peer.excluded ? 1 : 0,
    );
    counter('berkeley_rounds_completed_total', 'Berkeley rounds this agent completed as master.', (status) => status.counters.roundsCompleted);
    gauge('berkeley_last_round_members', 'Master only: members polled in the last round (0 before the first).', (status) => status.lastRound?.members ?? 0);
    gauge('berkeley_last_round_answered', 'Master only: members that answered in the last round (0 before the first).', (status) => status.lastRound?.answered ?? 0);
    counter('berkeley_probes_sent_total', 'POLLs sent as master (probes; a round stops probing a member early on a sample near its recent minimum delay).', (status) => status.counters.probesSent);
    counter('berkeley_samples_discarded_total', 'Round samples dropped by the delay filter (delay far above the recent minimum).', (status) => status.counters.samplesDiscarded);
    counter('berkeley_corrections_total', 'Corrections received from the master (or computed as master) and handed to the discipline, whatever it did with them.', (status) => status.counters.correctionsApplied);
    counter('berkeley_corrections_unsendable_total', 'Master only: corrections not sent (its own: not applied) because no frame can carry them (not finite, or beyond the range of a timestamp).', (status) => status.counters.correctionsUnsendable ?? 0);
    counter('berkeley_peers_refused_total', 'Peers ignored because the peer limit was reached.', (status) => status.counters.peersRefused);

    // ------------------------------------------------------------------ limits
    labelledCounter(
      'berkeley_limit_hits_total',
      'Times a limit refused something: peers (--max-peers), outbox (frames queued between two sends), barriers (open barriers, waiters, participants per cluster or per agent).',
      'limit',
      (status) => {
        const rejected = status.barriers.counters.rejected;
        return {
          peers: status.counters.peersRefused,
          outbox: status.counters.framesDroppedOutboxFull,
          barriers: (rejected['barrier-limit'] ?? 0) + (rejected['waiter-limit'] ?? 0) + (rejected['participant-limit'] ?? 0) + (rejected['client-limit'] ?? 0),
        };
      },
    );

    // ------------------------------------------------------------------ barriers
    gauge('berkeley_barriers_waiting', 'Barrier participants blocked at this agent (its control clients).', (status) => status.barriers.waiting.length);
    gauge('berkeley_barriers_open', 'Master only: open barriers it serves.', (status) => status.barriers.open?.length ?? 0);
    gauge('berkeley_barrier_participants', 'Master only: participants present in its open barriers.', (status) => (status.barriers.open ?? []).reduce((sum, open) => sum + open.present + (open.initialized ? 1 : 0), 0));
    counter('berkeley_barrier_released_total', 'Master only: participants released (since it became master).', (status) => status.barriers.counters.released);
    counter('berkeley_barrier_withdrawn_total', 'Master only: participants that left a barrier (timed out, client gone).', (status) => status.barriers.counters.withdrawn);
    counter('berkeley_barrier_expired_total', 'Master only: participants dropped because their agent stopped refreshing them.', (status) => status.barriers.counters.expired);
    labelledCounter('berkeley_barrier_rejected_total', 'Master only: barrier joins refused, by reason (limits, a second initializer).', 'reason', (status) => status.barriers.counters.rejected);

    // ------------------------------------------------------------------ NTP server
    gauge('berkeley_ntp_serving', '1 while the NTP server (--ntp-port) answers on at least one address, else 0 (disabled, or the port could not be bound: see status ntp.why).', (status) => (status.ntp.serving ? 1 : 0));
    counter('berkeley_ntp_requests_total', 'NTP datagrams received by the NTP server.', (status) => status.ntp.counters.requests);
    counter('berkeley_ntp_replies_total', 'NTP replies sent (synchronized or not).', (status) => status.ntp.counters.replies);
    counter('berkeley_ntp_replies_unsynchronized_total', 'NTP replies sent with leap indicator 3 (alarm): this clock was not synchronized, clients do not follow them.', (status) => status.ntp.counters.repliesUnsynchronized);
    labelledCounter(
      'berkeley_ntp_dropped_total',
      'NTP requests not answered, by reason: short, misaligned, version, mode (not a client request), rateLimited (the per-client rate limit), sendError.',
      'reason',
      (status) => status.ntp.counters.droppedByReason,
    );

    // ------------------------------------------------------------------ upstream (--upstream)
    gauge('berkeley_clock_class', 'This agent\'s clock class, the election key\'s leading field: 1 while its upstream NTP server is healthy, else 0.', (status) => status.clockClass ?? 0);
    gauge('berkeley_upstream_healthy', '1 while this agent\'s upstream (--upstream) is healthy, else 0 (also without --upstream).', (status) => (status.upstream?.healthy ? 1 : 0));
    gauge(
      'berkeley_upstream_following',
      '1 while this agent\'s cluster follows an upstream NTP server (through this agent as master, or through its master), else 0.',
      (status) => (status.clock.reference === 'upstream' ? 1 : 0),
    );
    gauge('berkeley_upstream_stratum', 'Stratum of the upstream server selection chose (the system peer); NaN while none is selected or without --upstream.', (status) =>
      status.upstream?.selection.ok ? status.upstream.selection.stratum : Number.NaN,
    );
    const serverGauge = (name: string, help: string, read: (server: UpstreamServerReport) => number | null): Gauge<'server'> => {
      return new Gauge({
        name,
        help,
        labelNames: ['server'] as const,
        registers,
        collect() {
          // At most UPSTREAMS_MAX series, rebuilt every scrape.
          this.reset();
          for (const server of snapshot().upstream?.servers ?? []) {
            const value = read(server);
            if (value !== null) this.set({ server: `${server.host}:${server.port}` }, value);
          }
        },
      });
    };
    serverGauge('berkeley_upstream_reachable', '1 when the upstream server answered at least one of the last 8 requests, else 0.', (server) => (server.reachable ? 1 : 0));
    serverGauge(
      'berkeley_upstream_offset_seconds',
      'The upstream server\'s clock minus this agent\'s clock, in seconds (the NTP client\'s least-delay sample; no series before one).',
      (server) => (server.offsetNs === null ? null : server.offsetNs / NS_PER_S),
    );
    counter('berkeley_upstream_acquisitions_total', 'Times this agent\'s upstream became healthy.', (status) => status.upstream?.acquired ?? 0);
    counter('berkeley_upstream_losses_total', 'Times this agent\'s healthy upstream was lost (no usable estimate for several poll intervals).', (status) => status.upstream?.lost ?? 0);
    counter('berkeley_upstream_refusals_total', 'Upstream estimates refused as master: beyond --max-correction from the cluster\'s established time.', (status) => status.upstream?.refusals ?? 0);

    // ------------------------------------------------------------------ frames and timestamps
    counter('berkeley_frames_received_total', 'UDP datagrams received (valid or not).', (status) => status.counters.framesReceived);
    counter('berkeley_frames_sent_total', 'Frames handed to the socket.', (status) => status.counters.framesSent);
    labelledCounter(
      'berkeley_frames_rejected_total',
      'Datagrams dropped as invalid, by reason: oversize, malformed, not-a-map, bad-version, unknown-type, bad-field; with --key-file also unauthenticated, unknown-key, bad-mac.',
      'reason',
      (status) => status.counters.framesRejectedByReason,
    );
    labelledCounter(
      'berkeley_frames_ignored_total',
      'Valid frames ignored, by reason: other_cluster (another --cluster), stale (from an older term), self_id (another agent uses our node id), replay (a (boot, sequence) seen already: replays and network duplicates), misdirected (for another node or a previous run).',
      'reason',
      ({ counters }) => ({
        other_cluster: counters.framesOtherCluster,
        stale: counters.framesStale,
        replay: counters.framesReplayed,
        misdirected: counters.framesMisdirected,
        self_id: counters.framesFromSelfId,
      }),
    );
    counter('berkeley_send_errors_total', 'Frames the socket failed to send.', (status) => status.counters.sendErrors);
    labelledCounter(
      'berkeley_rx_timestamps_total',
      'Received datagrams by where their arrival time came from: kernel (SO_TIMESTAMPNS) or user (stamped in user space: less precise).',
      'source',
      ({ timestamps }) => ({ kernel: timestamps.rxStampedByKernel, user: timestamps.rxStampedByUser }),
    );
    gauge('berkeley_uptime_seconds', 'Seconds since this agent started.', (status) => status.uptimeMs / MS_PER_S);
  }

  /** Called once for every correction handed to the discipline, with what it decided. */
  observeCorrection(correctionNs: number, action: CorrectionAction): void {
    if (!Number.isFinite(correctionNs)) return;
    this.corrections.observe({ action }, Math.abs(correctionNs) / NS_PER_S);
  }

  /** One scrape in Prometheus text format (0.0.4): one status report shared by every family. */
  async render(): Promise<MetricsPayload> {
    this.current = this.options.status();
    try {
      const body = await this.registry.metrics();
      return { contentType: this.registry.contentType, body };
    } finally {
      this.current = null;
    }
  }
}
