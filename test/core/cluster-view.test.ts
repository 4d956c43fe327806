// The cluster view's two sub-machines alone (src/core/view/cluster-view.ts): a master's server and
// a member's pull wired back to back through recording outboxes, without nodes or a network.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame, type FrameBody } from '../../src/core/frames.ts';
import type { NodeEvent } from '../../src/core/events.ts';
import { CORRECTION_NS_MAX, VIEW_PAGE_RETRY_MS, VIEW_PAGES_PER_PEER_PER_SECOND } from '../../src/core/limits.ts';
import type { Outbox } from '../../src/core/outbox.ts';
import { ClusterViewPull, ClusterViewServer, type ViewedMember } from '../../src/core/view/cluster-view.ts';

class RecordingOutbox implements Outbox {
  sent: { to: string; body: FrameBody }[] = [];
  events: NodeEvent[] = [];
  sendTo(nodeId: string, body: FrameBody): void {
    this.sent.push({ to: nodeId, body });
  }
  send(): void {
    throw new Error('the cluster view addresses peers by id');
  }
  emit(event: NodeEvent): void {
    this.events.push(event);
  }
}

const TERM = 7;

function members(count: number, atMs: number): ViewedMember[] {
  return Array.from({ length: count }, (_, index) => ({
    nodeId: `member-${String(index).padStart(4, '0')}`,
    suspect: index % 5 === 1,
    excluded: index % 7 === 2,
    synced: index % 2 === 0,
    lastSample: index % 11 === 3 ? null : { offsetNs: index * 1000.4, delayNs: 50_000 + index, discarded: index % 13 === 4 },
    lastHeardMs: index % 17 === 5 ? null : atMs - index,
  }));
}

/** Delivers what each side sent to the other until both are quiet; returns the pages answered. */
function exchange(serverOut: RecordingOutbox, server: ClusterViewServer, pullOut: RecordingOutbox, pull: ClusterViewPull, nowMs: number, drop = () => false): number {
  let pages = 0;
  for (;;) {
    const queries = pullOut.sent.splice(0);
    for (const { to, body } of queries) {
      expect(to).toBe('master');
      if (!drop()) server.onViewQuery({ ...body, from: 'reader', term: TERM } as Frame & { type: typeof FrameType.viewQuery }, nowMs);
    }
    const views = serverOut.sent.splice(0);
    for (const { to, body } of views) {
      expect(to).toBe('reader');
      pages += 1;
      pull.onView({ ...body, from: 'master', term: TERM } as Frame & { type: typeof FrameType.view }, TERM, nowMs);
    }
    if (queries.length === 0 && views.length === 0) return pages;
  }
}

function setup(count: number) {
  const serverOut = new RecordingOutbox();
  const pullOut = new RecordingOutbox();
  const server = new ClusterViewServer(serverOut);
  const pull = new ClusterViewPull(pullOut, 10_000);
  server.record(42, -1234, 1000, { nodeId: 'master', synced: true }, members(count, 1000));
  return { serverOut, pullOut, server, pull };
}

describe('cluster view paging', () => {
  it('a member pulls the whole view over several pages and sees what the master sees', () => {
    const { serverOut, pullOut, server, pull } = setup(150);
    pull.request('master', TERM, 1500);
    const pages = exchange(serverOut, server, pullOut, pull, 1500);
    expect(pages).toBeGreaterThan(2);
    const pulled = pull.last;
    const own = server.view('master', TERM);
    expect(pulled).not.toBeNull();
    expect(pullOut.events).toEqual([{ kind: 'view', view: pulled }]);
    expect(pulled!.members).toHaveLength(151);
    expect(pulled!.round).toBe(42);
    expect(pulled!.averageNs).toBe(-1234);
    expect(pulled!.atMs).toBe(1000);
    // Offsets are rounded to whole ns on the wire; ages are relative to the round's end on both sides.
    expect(pulled!.members).toEqual(own!.members.map((member) => ({ ...member, offsetNs: member.offsetNs === null ? null : Math.round(member.offsetNs) })));
    expect(own!.members[0]).toMatchObject({ nodeId: 'master', master: true, synced: true, lastHeardAgoMs: 0 });
    expect(own!.members[2]).toMatchObject({ nodeId: 'member-0001', suspect: true, synced: false });
  });

  it('a box decades off (1970) is listed with its offset; values a VIEW cannot carry are brought into its range', () => {
    const serverOut = new RecordingOutbox();
    const pullOut = new RecordingOutbox();
    const server = new ClusterViewServer(serverOut);
    const pull = new ClusterViewPull(pullOut, 10_000);
    const epochOffsetNs = -1_767_225_590_000_000_000;
    server.record(9, 0, 1000, { nodeId: 'master', synced: true }, [
      { nodeId: 'old', suspect: false, excluded: true, synced: false, lastSample: { offsetNs: epochOffsetNs, delayNs: 90_000, discarded: false }, lastHeardMs: 1000 },
      // A delay made negative (a clock step between the poll's arrival and the reply), and garbage.
      { nodeId: 'odd', suspect: false, excluded: false, synced: true, lastSample: { offsetNs: Number.NaN, delayNs: -5, discarded: false }, lastHeardMs: 1000 },
      { nodeId: 'far', suspect: false, excluded: false, synced: true, lastSample: { offsetNs: 1e20, delayNs: 1e20, discarded: false }, lastHeardMs: 1000 },
    ]);
    pull.request('master', TERM, 1500);
    exchange(serverOut, server, pullOut, pull, 1500);
    const byId = new Map(pull.last!.members.map((member) => [member.nodeId, member]));
    expect(byId.get('old')).toMatchObject({ offsetNs: epochOffsetNs, delayNs: 90_000 });
    expect(byId.get('odd')).toMatchObject({ offsetNs: 0, delayNs: 0 });
    expect(byId.get('far')).toMatchObject({ offsetNs: CORRECTION_NS_MAX, delayNs: CORRECTION_NS_MAX });
  });

  it('a lost page is asked for again after VIEW_PAGE_RETRY_MS, not before', () => {
    const { serverOut, pullOut, server, pull } = setup(150);
    pull.request('master', TERM, 0);
    let queries = 0;
    // The second page's query is lost.
    const pages = exchange(serverOut, server, pullOut, pull, 0, () => (queries += 1) === 2);
    expect(pages).toBe(1);
    expect(pull.last).toBeNull();
    pull.request('master', TERM, VIEW_PAGE_RETRY_MS - 1);
    expect(pullOut.sent).toHaveLength(0);
    pull.request('master', TERM, VIEW_PAGE_RETRY_MS);
    expect(pullOut.sent).toHaveLength(1);
    exchange(serverOut, server, pullOut, pull, VIEW_PAGE_RETRY_MS);
    expect(pull.last?.members).toHaveLength(151);
  });

  it('a pull spanning one new round completes from the round before; two new rounds start it over', () => {
    const { serverOut, pullOut, server, pull } = setup(150);
    pull.request('master', TERM, 0);
    // The first page only.
    server.onViewQuery({ ...pullOut.sent.shift()!.body, from: 'reader', term: TERM } as Frame & { type: typeof FrameType.viewQuery }, 0);
    pull.onView({ ...serverOut.sent.shift()!.body, from: 'master', term: TERM } as Frame & { type: typeof FrameType.view }, TERM, 0);
    server.record(43, 0, 2000, { nodeId: 'master', synced: true }, members(150, 2000));
    exchange(serverOut, server, pullOut, pull, 2000);
    expect(pull.last?.round).toBe(42);

    pull.request('master', TERM, 20_000);
    server.onViewQuery({ ...pullOut.sent.shift()!.body, from: 'reader', term: TERM } as Frame & { type: typeof FrameType.viewQuery }, 20_000);
    pull.onView({ ...serverOut.sent.shift()!.body, from: 'master', term: TERM } as Frame & { type: typeof FrameType.view }, TERM, 20_000);
    server.record(44, 0, 21_000, { nodeId: 'master', synced: true }, members(150, 21_000));
    server.record(45, 0, 22_000, { nodeId: 'master', synced: true }, members(150, 22_000));
    exchange(serverOut, server, pullOut, pull, 22_000);
    expect(pull.last?.round).toBe(45);
  });

  it('answers at most VIEW_PAGES_PER_PEER_PER_SECOND pages per peer per second', () => {
    const { serverOut, server } = setup(3);
    const query = { type: FrameType.viewQuery, queryId: 1, start: 0, round: 0, from: 'reader', term: TERM } as Frame & { type: typeof FrameType.viewQuery };
    for (let index = 0; index < VIEW_PAGES_PER_PEER_PER_SECOND + 10; index += 1) server.onViewQuery(query, 5000);
    expect(serverOut.sent).toHaveLength(VIEW_PAGES_PER_PEER_PER_SECOND);
    server.onViewQuery({ ...query, from: 'other' }, 5000);
    expect(serverOut.sent).toHaveLength(VIEW_PAGES_PER_PEER_PER_SECOND + 1);
    server.onViewQuery(query, 6000);
    expect(serverOut.sent).toHaveLength(VIEW_PAGES_PER_PEER_PER_SECOND + 2);
  });

  it('keeps no view larger than its bound, and ignores pages of another query', () => {
    const serverOut = new RecordingOutbox();
    const pullOut = new RecordingOutbox();
    const server = new ClusterViewServer(serverOut);
    const pull = new ClusterViewPull(pullOut, 10);
    server.record(1, 0, 0, { nodeId: 'master', synced: false }, members(10, 0));
    pull.request('master', TERM, 0);
    exchange(serverOut, server, pullOut, pull, 0);
    expect(pull.last).toBeNull();
    const bounded = setup(3);
    bounded.pull.request('master', TERM, 0);
    const query = bounded.pullOut.sent.shift()!.body;
    bounded.server.onViewQuery({ ...query, queryId: 999, from: 'reader', term: TERM } as Frame & { type: typeof FrameType.viewQuery }, 0);
    bounded.pull.onView({ ...bounded.serverOut.sent.shift()!.body, from: 'master', term: TERM } as Frame & { type: typeof FrameType.view }, TERM, 0);
    expect(bounded.pull.last).toBeNull();
    expect(bounded.pullOut.sent).toHaveLength(0);
  });
});
