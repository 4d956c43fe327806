// What the dashboard (GET / on the control server) shows: the cluster as the master last reported
// it, a bounded history of every member's offset for the chart, and recent events. The agent feeds
// it; GET /api/cluster serves its report. Times are in ms on the agent's clock (the cluster's time),
// so the charts of all agents line up.
import type { ClusterView, NodeEvent } from '../core/node.ts';
import type { NodeId, Role } from '../core/types.ts';
import type { UpstreamMode } from '../core/upstream/reference.ts';
import { DASHBOARD_EVENTS_MAX, DASHBOARD_HISTORY_POINTS, DASHBOARD_INTEREST_MS, DASHBOARD_SERIES_MAX } from '../core/limits.ts';

export interface DashboardMember {
  nodeId: NodeId;
  role: 'master' | 'slave';
  /** This agent. */
  self: boolean;
  /** The member's clock minus the master's at the view's round, ns. */
  offsetNs: number | null;
  delayNs: number | null;
  /** ms since the master last heard the member, as of now (the view's age included). */
  lastHeardAgoMs: number | null;
  suspect: boolean;
  excluded: boolean;
  discarded: boolean;
  synced: boolean;
}

export interface DashboardEvent {
  atMs: number;
  kind: string;
  text: string;
}

export interface DashboardReport {
  /** The agent serving the page. */
  self: {
    nodeId: NodeId; cluster: string; role: Role; masterId: NodeId | null; term: number; version: string; pollIntervalMs: number; synchronized: boolean; uptimeMs: number;
    /** What this agent's time follows: an upstream NTP server (through it as master, or its master) or the cluster itself. */
    reference: 'upstream' | 'cluster';
    /** This agent's upstream mode (acquiring, standby, following, holdover, refused); null without --upstream. */
    upstreamMode: UpstreamMode | null;
  };
  /** The last view: the master's own, or the one it last sent this agent; null before the first. */
  view: { masterId: NodeId; term: number; round: number; ageMs: number; averageNs: number; members: DashboardMember[] } | null;
  /** Offsets over time, oldest first; `since` in the request returns only newer points. */
  history: { timesMs: number[]; series: { nodeId: NodeId; offsetsNs: (number | null)[] }[] };
  /** Newest last. */
  events: DashboardEvent[];
  nowMs: number;
}

export class ClusterMonitor {
  private readonly timesMs: number[] = [];
  /** Per member, aligned with timesMs (null where it had no sample). */
  private readonly series = new Map<NodeId, (number | null)[]>();
  private readonly events: DashboardEvent[] = [];
  private lastRecorded = '';
  private view: ClusterView | null = null;
  private lastReadMonoMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly selfId: NodeId,
    private readonly historyPoints = DASHBOARD_HISTORY_POINTS,
    private readonly eventsMax = DASHBOARD_EVENTS_MAX,
  ) {}

  /** Someone reads the dashboard: a member keeps pulling the master's view for a while. */
  markRead(monoMs: number): void {
    this.lastReadMonoMs = monoMs;
  }

  interested(monoMs: number): boolean {
    return monoMs - this.lastReadMonoMs < DASHBOARD_INTEREST_MS;
  }

  /** A view (of a round) as of `clockMs` on the agent's clock; each round is recorded once. */
  recordView(view: ClusterView, clockMs: number): void {
    const key = `${view.masterId}/${view.term}/${view.round}`;
    if (key === this.lastRecorded) return;
    this.lastRecorded = key;
    this.view = view;
    // Offsets are from the master; a round whose members had no sample yet adds no point.
    if (!view.members.some((member) => member.offsetNs !== null && !member.master)) return;
    this.timesMs.push(Math.round(clockMs));
    const seen = new Set<NodeId>();
    for (const member of view.members) {
      seen.add(member.nodeId);
      let values = this.series.get(member.nodeId);
      if (values === undefined) {
        if (this.series.size >= DASHBOARD_SERIES_MAX) continue;
        values = new Array<number | null>(this.timesMs.length - 1).fill(null);
        this.series.set(member.nodeId, values);
      }
      values.push(member.offsetNs);
    }
    for (const [nodeId, values] of this.series) if (!seen.has(nodeId)) values.push(null);
    if (this.timesMs.length > this.historyPoints) {
      this.timesMs.shift();
      for (const [nodeId, values] of this.series) {
        values.shift();
        // A member gone for the whole window leaves the chart.
        if (values.every((value) => value === null)) this.series.delete(nodeId);
      }
    }
  }

  /** Events worth showing an operator (rounds and liveness noise are left to the logs). */
  recordEvent(event: NodeEvent, clockMs: number): void {
    const text = describeEvent(event, this.selfId);
    if (text === null) return;
    this.events.push({ atMs: Math.round(clockMs), kind: event.kind, text });
    if (this.events.length > this.eventsMax) this.events.shift();
  }

  report(self: DashboardReport['self'], nowMonoMs: number, nowClockMs: number, sinceMs: number | null): DashboardReport {
    const view = this.view;
    const from = sinceMs === null ? 0 : firstAfter(this.timesMs, sinceMs);
    return {
      self,
      view:
        view === null
          ? null
          : {
              masterId: view.masterId,
              term: view.term,
              round: view.round,
              ageMs: Math.max(0, Math.round(nowMonoMs - view.atMs)),
              averageNs: Math.round(view.averageNs),
              members: view.members.map((member) => ({
                nodeId: member.nodeId,
                role: member.master ? 'master' : 'slave',
                self: member.nodeId === this.selfId,
                offsetNs: member.offsetNs,
                delayNs: member.delayNs,
                lastHeardAgoMs: member.lastHeardAgoMs === null ? null : Math.round(member.lastHeardAgoMs + Math.max(0, nowMonoMs - view.atMs)),
                suspect: member.suspect,
                excluded: member.excluded,
                discarded: member.discarded,
                synced: member.synced,
              })),
            },
      history: {
        timesMs: this.timesMs.slice(from),
        series: [...this.series].map(([nodeId, values]) => ({ nodeId, offsetsNs: values.slice(from) })),
      },
      events: sinceMs === null ? [...this.events] : this.events.filter((event) => event.atMs > sinceMs),
      nowMs: Math.round(nowClockMs),
    };
  }
}

/** Index of the first time after `sinceMs` (times are ascending but for rare clock steps). */
function firstAfter(timesMs: readonly number[], sinceMs: number): number {
  let index = timesMs.length;
  while (index > 0 && (timesMs[index - 1] as number) > sinceMs) index -= 1;
  return index;
}

export function describeEvent(event: NodeEvent, selfId: NodeId): string | null {
  switch (event.kind) {
    case 'peer-new':
      return `${event.nodeId} joined (${event.via === 'discovery' ? 'discovered by mDNS' : 'first frame'} from ${event.endpoint.address}:${event.endpoint.port})`;
    case 'peer-left':
      return event.wasMaster ? `master ${event.nodeId} left; electing` : `${event.nodeId} left`;
    case 'peer-suspect':
      return `${event.nodeId} not answering (${event.why})`;
    case 'peer-alive':
      return `${event.nodeId} answering again`;
    case 'peer-limit':
      return `${event.nodeId} ignored: peer limit reached`;
    case 'peer-expired':
      return `${event.nodeId} forgotten: it never answered${event.why === 'table full' ? ' (the peer table was full)' : ''}`;
    case 'election-start':
      return `election started, term ${event.term} (${event.algorithm}): ${event.reason}`;
    case 'election-end':
      return `${event.record.winner} elected master, term ${event.record.term} (${event.record.algorithm}, ${Math.round(event.record.durationMs)} ms)`;
    case 'election-failed':
      return `election failed, term ${event.term}: ${event.why}`;
    case 'role':
      if (event.from === event.to) return `${selfId} follows ${event.masterId ?? 'nobody'}, term ${event.term}`;
      return `${selfId} is now ${event.to}${event.to === 'slave' && event.masterId ? ` of ${event.masterId}` : ''}, term ${event.term}`;
    case 'duplicate-id':
      return `another agent uses the node id ${selfId} (${event.endpoint.address}:${event.endpoint.port})`;
    case 'outbox-full':
      return 'outgoing frame queue full; frames dropped';
    case 'upstream':
      return event.healthy ? 'upstream healthy: this agent now ranks above agents without one' : `upstream lost${event.why ? ` (${event.why})` : ''}`;
    case 'upstream-refused':
      return `upstream refused: ${(event.offsetNs / 1e9).toFixed(3)} s away, beyond --max-correction (${(event.limitNs / 1e9).toFixed(3)} s); the cluster keeps its time`;
    case 'correction-unsendable':
      return `correction for ${event.nodeId} not ${event.nodeId === selfId ? 'applied' : 'sent'}: ${String(event.correctionNs)} ns is beyond the range of a timestamp`;
    case 'upstream-takeover':
      return `took over from ${event.from} (its clock class is lower: this agent follows a healthy upstream), term ${event.term}`;
    case 'round':
    case 'view':
      return null;
  }
}
