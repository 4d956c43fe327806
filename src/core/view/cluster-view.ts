// The cluster view (the dashboard): the master keeps what it saw of every member at the end of
// each round and serves it page by page (VIEW_QUERY / VIEW); a member pulls it from its master
// while someone reads its dashboard. Two sub-machines, one per side, each owning its state and
// sending through the node's outbox. Neither has a deadline: pulls are driven by requests.
import { FrameType, VIEW_FLAGS, type Frame, type ViewEntryTuple } from '../frames.ts';
import {
  CORRECTION_NS_MAX,
  VIEW_ENTRY_FIXED_BYTES,
  VIEW_PAGE_BYTES_BUDGET,
  VIEW_PAGE_ENTRIES_MAX,
  VIEW_PAGE_RETRY_MS,
  VIEW_MEMBERS_MAX,
  VIEW_PAGES_PER_PEER_PER_SECOND,
  VIEW_PULL_RESTARTS_MAX,
  VIEW_PULL_TIMEOUT_MS,
} from '../limits.ts';
import type { ClusterView, ViewMember } from '../events.ts';
import type { Outbox } from '../outbox.ts';
import { KeyedRateLimiter } from '../rate-limiter.ts';
import { utf8ByteLength, type NodeId } from '../types.ts';

/** What the master's view records of one member at the end of a round. */
export interface ViewedMember {
  nodeId: NodeId;
  suspect: boolean;
  excluded: boolean;
  /** Its reply in the round said its clock is synchronized. */
  synced: boolean;
  lastSample: { offsetNs: number; delayNs: number; discarded: boolean } | null;
  /** Monotonic ms the master last heard it (null: never). */
  lastHeardMs: number | null;
}

interface ViewSnapshot {
  round: number;
  atMs: number;
  averageNs: number;
  entries: ViewEntryTuple[];
  /** Per entry, when the master last heard it (monotonic ms). */
  lastHeardMs: (number | null)[];
}

/** The master's side: the view of its last round (and the one before), served within a per-peer budget. */
export class ClusterViewServer {
  private snapshot: ViewSnapshot | null = null;
  /** The one before, so that a pull that spans a round boundary still completes. */
  private previousSnapshot: ViewSnapshot | null = null;
  /** Pages answered per peer: VIEW_PAGES_PER_PEER_PER_SECOND at once and per second (bounds what queries can draw). */
  private readonly pageBudget = new KeyedRateLimiter<NodeId>({ burst: VIEW_PAGES_PER_PEER_PER_SECOND, intervalMs: 1000 / VIEW_PAGES_PER_PEER_PER_SECOND }, VIEW_MEMBERS_MAX);

  constructor(private readonly outbox: Outbox) {}

  /** Keeps the round's view: the master itself first, then every member. */
  record(round: number, averageNs: number, nowMs: number, self: { nodeId: NodeId; synced: boolean }, members: Iterable<ViewedMember>): void {
    const entries: ViewEntryTuple[] = [[self.nodeId, VIEW_FLAGS.master | (self.synced ? VIEW_FLAGS.synced : 0), 0, 0, 0]];
    const lastHeardMs: (number | null)[] = [nowMs];
    for (const member of members) {
      const sample = member.lastSample;
      const flags =
        (member.suspect ? VIEW_FLAGS.suspect : 0) |
        (member.excluded ? VIEW_FLAGS.excluded : 0) |
        (sample?.discarded ? VIEW_FLAGS.discarded : 0) |
        (member.synced ? VIEW_FLAGS.synced : 0);
      entries.push([member.nodeId, flags, sample ? inViewRange(sample.offsetNs, -CORRECTION_NS_MAX) : null, sample ? inViewRange(sample.delayNs, 0) : null, null]);
      lastHeardMs.push(member.lastHeardMs);
    }
    this.previousSnapshot = this.snapshot;
    this.snapshot = { round, atMs: nowMs, averageNs: inViewRange(averageNs, -CORRECTION_NS_MAX), entries, lastHeardMs };
  }

  /** Answers one page (the caller checks that this node is master). */
  onViewQuery(frame: Frame & { type: typeof FrameType.viewQuery }, nowMs: number): void {
    // The round asked for if still kept, else the latest (the member sees the new round and starts over).
    const snapshot = frame.round !== 0 && frame.round === this.previousSnapshot?.round ? this.previousSnapshot : this.snapshot;
    if (snapshot === null || frame.start >= snapshot.entries.length) return;
    if (!this.pageBudget.allow(frame.from, nowMs)) return;
    const members: ViewEntryTuple[] = [];
    let bytes = 0;
    for (let index = frame.start; index < snapshot.entries.length && members.length < VIEW_PAGE_ENTRIES_MAX; index += 1) {
      const entry = snapshot.entries[index] as ViewEntryTuple;
      const entryBytes = utf8ByteLength(entry[0]) + VIEW_ENTRY_FIXED_BYTES;
      if (members.length > 0 && bytes + entryBytes > VIEW_PAGE_BYTES_BUDGET) break;
      bytes += entryBytes;
      const heardMs = snapshot.lastHeardMs[index] ?? null;
      members.push([entry[0], entry[1], entry[2], entry[3], heardMs === null ? null : Math.max(0, Math.round(nowMs - heardMs))]);
    }
    this.outbox.sendTo(frame.from, {
      type: FrameType.view,
      queryId: frame.queryId,
      round: snapshot.round,
      roundAgoMs: Math.max(0, Math.round(nowMs - snapshot.atMs)),
      averageNs: snapshot.averageNs,
      total: snapshot.entries.length,
      start: frame.start,
      members,
    });
  }

  /** The master's own view of its last round (null before its first). */
  view(masterId: NodeId, term: number): ClusterView | null {
    const snapshot = this.snapshot;
    if (snapshot === null) return null;
    return {
      masterId,
      term,
      round: snapshot.round,
      atMs: snapshot.atMs,
      averageNs: snapshot.averageNs,
      members: snapshot.entries.map((entry, index) => viewMemberOf(entry, snapshot.lastHeardMs[index] ?? null, snapshot.atMs)),
    };
  }
}

interface Pull {
  queryId: number;
  masterId: NodeId;
  term: number;
  round: number | null;
  roundAgoMs: number;
  averageNs: number;
  total: number;
  members: ViewMember[];
  startedMs: number;
  lastPageMs: number;
  restarts: number;
}

/** A member's side: pulls its master's view page by page, and keeps the last complete one. */
export class ClusterViewPull {
  private pull: Pull | null = null;
  private querySeq = 0;
  private lastView: ClusterView | null = null;

  /** `viewMembersMax`: a larger view is not kept (memory is bounded by --max-peers). */
  constructor(
    private readonly outbox: Outbox,
    private readonly viewMembersMax: number,
  ) {}

  /**
   * Someone reads the dashboard (the caller checks that this node follows `masterId` in `term`).
   * Pages follow one another; a pull whose page was lost resumes at that page on the next
   * request, and one that does not complete starts over.
   */
  request(masterId: NodeId, term: number, nowMs: number): void {
    const pull = this.pull;
    if (pull !== null && pull.masterId === masterId && pull.term === term && nowMs < pull.startedMs + VIEW_PULL_TIMEOUT_MS) {
      if (nowMs < pull.lastPageMs + VIEW_PAGE_RETRY_MS) return;
      pull.lastPageMs = nowMs;
      this.outbox.sendTo(pull.masterId, { type: FrameType.viewQuery, queryId: pull.queryId, start: pull.members.length, round: pull.round ?? 0 });
      return;
    }
    this.start(masterId, term, nowMs, 0);
  }

  private start(masterId: NodeId, term: number, nowMs: number, restarts: number): void {
    this.querySeq += 1;
    this.pull = { queryId: this.querySeq, masterId, term, round: null, roundAgoMs: 0, averageNs: 0, total: 0, members: [], startedMs: nowMs, lastPageMs: nowMs, restarts };
    this.outbox.sendTo(masterId, { type: FrameType.viewQuery, queryId: this.querySeq, start: 0, round: 0 });
  }

  /** One page of the master's view; the next page is asked for until the view is whole. `term`: this node's now. */
  onView(frame: Frame & { type: typeof FrameType.view }, term: number, nowMs: number): void {
    const pull = this.pull;
    if (pull === null || frame.queryId !== pull.queryId || frame.from !== pull.masterId || frame.term !== pull.term) return;
    if (frame.start !== pull.members.length || frame.members.length === 0) return;
    if (frame.total > this.viewMembersMax) return;
    if (pull.round !== null && (frame.round !== pull.round || frame.total !== pull.total)) {
      // The master no longer has that round (two rounds passed between pages): start over.
      this.pull = null;
      if (pull.restarts < VIEW_PULL_RESTARTS_MAX) this.start(pull.masterId, term, nowMs, pull.restarts + 1);
      return;
    }
    if (pull.round === null) {
      pull.round = frame.round;
      pull.total = frame.total;
      pull.averageNs = frame.averageNs;
      pull.roundAgoMs = frame.roundAgoMs;
    }
    // Ages are made relative to the round's end, as on the master.
    const pageToRoundMs = frame.roundAgoMs;
    for (const [nodeId, flags, offsetNs, delayNs, heardAgoMs] of frame.members) {
      pull.members.push({
        ...viewMemberOf([nodeId, flags, offsetNs, delayNs, null], null, 0),
        lastHeardAgoMs: heardAgoMs === null ? null : Math.max(0, heardAgoMs - pageToRoundMs),
      });
    }
    pull.lastPageMs = nowMs;
    if (pull.members.length < pull.total) {
      this.outbox.sendTo(pull.masterId, { type: FrameType.viewQuery, queryId: pull.queryId, start: pull.members.length, round: pull.round });
      return;
    }
    this.pull = null;
    const view: ClusterView = { masterId: pull.masterId, term: pull.term, round: pull.round, atMs: nowMs - pull.roundAgoMs, averageNs: pull.averageNs, members: pull.members };
    this.lastView = view;
    this.outbox.emit({ kind: 'view', view });
  }

  /** The last complete view pulled (null: none yet). */
  get last(): ClusterView | null {
    return this.lastView;
  }
}

function viewMemberOf(entry: ViewEntryTuple, lastHeardMs: number | null, atMs: number): ViewMember {
  const [nodeId, flags, offsetNs, delayNs] = entry;
  return {
    nodeId,
    master: (flags & VIEW_FLAGS.master) !== 0,
    suspect: (flags & VIEW_FLAGS.suspect) !== 0,
    excluded: (flags & VIEW_FLAGS.excluded) !== 0,
    discarded: (flags & VIEW_FLAGS.discarded) !== 0,
    synced: (flags & VIEW_FLAGS.synced) !== 0,
    offsetNs,
    delayNs,
    lastHeardAgoMs: lastHeardMs === null ? null : Math.max(0, atMs - lastHeardMs),
  };
}

/**
 * A value as a VIEW frame may carry it (whole ns, from `minNs` to CORRECTION_NS_MAX, finite):
 * one value outside (a delay made negative by a clock step mid-probe) would get the whole page
 * refused by the puller. Decades (a box at 1970) are within the range.
 */
function inViewRange(valueNs: number, minNs: number): number {
  if (!Number.isFinite(valueNs)) return 0;
  return Math.max(minNs, Math.min(CORRECTION_NS_MAX, Math.round(valueNs)));
}
