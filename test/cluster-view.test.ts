// The cluster view behind the dashboard: a member pulls the master's view of every member page by
// page (each page under the frame limit: the simulator encodes every frame), and gets it whole or
// not at all; the master bounds what queries can draw. Then the shell's ClusterMonitor (history
// for the chart, events) and the control server's dashboard routes.
import { describe, expect, it } from 'vitest';
import { FrameType, type Frame } from '../src/core/frames.ts';
import { PROTOCOL_VERSION, VIEW_PAGES_PER_PEER_PER_SECOND } from '../src/core/limits.ts';
import type { ClusterView, NodeEvent } from '../src/core/node.ts';
import { Simulation, type SimNodeSpec } from '../src/sim/simulation.ts';
import { ClusterMonitor, describeEvent } from '../src/daemon/dashboard.ts';
import { ControlServer } from '../src/daemon/http.ts';
import type { StatusReport } from '../src/daemon/status.ts';

function specs(count: number): SimNodeSpec[] {
  // Long ids (the 64-byte limit is the worst case for page size) and distinct clocks.
  return Array.from({ length: count }, (_, index) => ({
    nodeId: `member-${String(index).padStart(3, '0')}-${'x'.repeat(52)}`,
    initialOffsetNs: (index % 7) * 1e6 - 3e6,
    driftPpm: (index % 11) * 10 - 50,
    startMs: index,
  }));
}

function settled(seed: number, count: number, lossRate = 0): { sim: Simulation; master: string; member: string } {
  const sim = new Simulation({ seed, nodes: specs(count), discoverAll: true, network: { lossRate } });
  sim.runFor(12_000);
  const masters = sim.masters();
  expect(masters, `seed ${seed}`).toHaveLength(1);
  const master = masters[0]!;
  const member = sim.liveNodeIds().find((id) => id !== master)!;
  return { sim, master, member };
}

function sortedIds(view: ClusterView): string[] {
  return view.members.map((member) => member.nodeId).sort();
}

describe('cluster view (pure core, simulated network)', () => {
  it("a member pulls the master's whole view over several pages, equal to the master's own", () => {
    const { sim, master, member } = settled(1, 40);
    const before = sim.node(member)!.status().counters.framesSentByType.viewQuery;
    sim.inject(member, (node, nowMs) => node.requestView(nowMs));
    sim.runFor(100);
    const pulled = sim.node(member)!.clusterView();
    expect(pulled).not.toBeNull();
    const own = sim.node(master)!.clusterView()!;
    expect(pulled!.masterId).toBe(master);
    expect(pulled!.term).toBe(own.term);
    expect(sortedIds(pulled!)).toEqual(sortedIds(own));
    expect(sortedIds(pulled!)).toHaveLength(40);
    // 40 entries of 64-byte ids do not fit one 1200-byte frame: it took several pages.
    const queries = sim.node(member)!.status().counters.framesSentByType.viewQuery - before;
    expect(queries).toBeGreaterThanOrEqual(3);
    // Same round (nothing finished in between at this size): the same numbers.
    if (pulled!.round === own.round) {
      const byId = new Map(own.members.map((entry) => [entry.nodeId, entry]));
      for (const entry of pulled!.members) {
        expect(entry.offsetNs).toBe(byId.get(entry.nodeId)!.offsetNs);
        expect(entry.delayNs).toBe(byId.get(entry.nodeId)!.delayNs);
        expect(entry.master).toBe(entry.nodeId === master);
      }
    }
    // Every member but the master was measured.
    expect(pulled!.members.filter((entry) => !entry.master && entry.offsetNs === null)).toEqual([]);
  });

  it('under 20% loss a pull resumes at its lost page: views arrive whole, never partial', () => {
    const { sim, member } = settled(2, 30);
    sim.setNetwork({ lossRate: 0.2 });
    const seen = new Set<ClusterView>();
    // The shell asks once per poll interval while the dashboard is open.
    for (let request = 0; request < 60; request += 1) {
      sim.inject(member, (node, nowMs) => node.requestView(nowMs));
      sim.runFor(500);
      const view = sim.node(member)!.clusterView();
      if (view !== null) seen.add(view);
    }
    expect(seen.size).toBeGreaterThan(10);
    for (const view of seen) {
      expect(view.members).toHaveLength(30);
      expect(new Set(view.members.map((entry) => entry.nodeId)).size).toBe(30);
      expect(view.members.filter((entry) => entry.master)).toHaveLength(1);
    }
  });

  it('the master answers at most VIEW_PAGES_PER_PEER_PER_SECOND pages per peer per second; a member answers none', () => {
    const { sim, master, member } = settled(3, 4);
    const query = (from: string, queryId: number, term: number): Frame =>
      ({ v: PROTOCOL_VERSION, cluster: 'default', from, prio: 100, term, boot: 1, seq: queryId + 1, to: '', toBoot: 0, txNs: 0n, type: FrameType.viewQuery, queryId, start: 0, round: 0 }) as Frame;
    const sentViews = (id: string) => sim.node(id)!.status().counters.framesSentByType.view;
    const term = sim.node(master)!.status().term;
    const masterBefore = sentViews(master);
    sim.inject(master, (node, nowMs) => {
      for (let index = 0; index < VIEW_PAGES_PER_PEER_PER_SECOND * 3; index += 1) node.receive(query(member, index, term), { address: '10.0.0.9', port: 7412 }, 0n, nowMs);
    });
    expect(sentViews(master) - masterBefore).toBe(VIEW_PAGES_PER_PEER_PER_SECOND);
    const memberBefore = sentViews(member);
    sim.inject(member, (node, nowMs) => node.receive(query(master, 1, term), { address: '10.0.0.9', port: 7412 }, 0n, nowMs));
    expect(sentViews(member)).toBe(memberBefore);
  });
});

function view(round: number, offsets: Record<string, number | null>, atMs = round * 1000): ClusterView {
  return {
    masterId: 'm',
    term: 7,
    round,
    atMs,
    averageNs: 0,
    members: Object.entries(offsets).map(([nodeId, offsetNs]) => ({
      nodeId,
      master: nodeId === 'm',
      suspect: false,
      excluded: false,
      discarded: false,
      synced: true,
      offsetNs,
      delayNs: offsetNs === null ? null : 40_000,
      lastHeardAgoMs: 10,
    })),
  };
}

const SELF = { nodeId: 'a', cluster: 'c', role: 'slave' as const, masterId: 'm', term: 7, version: '0', pollIntervalMs: 1000, synchronized: true, uptimeMs: 1, reference: 'cluster' as const, upstreamMode: null };

describe('ClusterMonitor', () => {
  it('records each round once, aligned per member, and bounded to its window', () => {
    const monitor = new ClusterMonitor('a', 3, 10);
    monitor.recordView(view(1, { m: 0, a: 5, b: 7 }), 1000);
    monitor.recordView(view(1, { m: 0, a: 5, b: 7 }), 1000); // same round again
    monitor.recordView(view(2, { m: 0, a: 6 }), 2000); // b missing this round
    monitor.recordView(view(3, { m: 0, a: 4, c: 1 }), 3000); // c new
    let report = monitor.report(SELF, 3000, 3000, null);
    expect(report.history.timesMs).toEqual([1000, 2000, 3000]);
    const series = Object.fromEntries(report.history.series.map((entry) => [entry.nodeId, entry.offsetsNs]));
    expect(series).toEqual({ m: [0, 0, 0], a: [5, 6, 4], b: [7, null, null], c: [null, null, 1] });
    // A fourth round pushes the first out; b, absent from the whole window, leaves the chart.
    monitor.recordView(view(4, { m: 0, a: 3, c: 2 }), 4000);
    report = monitor.report(SELF, 4000, 4000, null);
    expect(report.history.timesMs).toEqual([2000, 3000, 4000]);
    expect(report.history.series.map((entry) => entry.nodeId).sort()).toEqual(['a', 'c', 'm']);
    // since: only newer points.
    const newer = monitor.report(SELF, 4000, 4000, 3000);
    expect(newer.history.timesMs).toEqual([4000]);
    expect(newer.history.series.find((entry) => entry.nodeId === 'a')!.offsetsNs).toEqual([3]);
  });

  it('a round before any member was measured adds no point; the view still shows', () => {
    const monitor = new ClusterMonitor('a');
    monitor.recordView(view(1, { m: 0, a: null }), 1000);
    const report = monitor.report(SELF, 1500, 1500, null);
    expect(report.history.timesMs).toEqual([]);
    expect(report.view?.members.map((member) => member.nodeId)).toEqual(['m', 'a']);
    expect(report.view?.members.find((member) => member.nodeId === 'a')?.self).toBe(true);
    // Last heard counts the view's age: 10 ms at the round + 500 ms since.
    expect(report.view?.members[1]?.lastHeardAgoMs).toBe(510);
    expect(report.view?.ageMs).toBe(500);
  });

  it('keeps the newest events, bounded, and leaves rounds and views to the logs', () => {
    const monitor = new ClusterMonitor('a', 10, 3);
    const events: NodeEvent[] = [
      { kind: 'peer-new', nodeId: 'b', endpoint: { address: '198.18.0.2', port: 7412 }, via: 'discovery' },
      { kind: 'round', record: { round: 1, term: 1, atMs: 0, members: 1, answered: 1, averageNs: 0, medianNs: 0, boundNs: 0, excluded: [], reference: 'majority' } },
      { kind: 'election-start', term: 8, algorithm: 'ring', reason: 'master silent' },
      { kind: 'election-end', record: { term: 9, algorithm: 'bully', winner: 'b', durationMs: 812.4, endedMs: 0 } },
      { kind: 'peer-left', nodeId: 'm', wasMaster: true },
    ];
    events.forEach((event, index) => monitor.recordEvent(event, 100 * index));
    const report = monitor.report(SELF, 0, 0, null);
    expect(report.events.map((event) => event.text)).toEqual(['election started, term 8 (ring): master silent', 'b elected master, term 9 (bully, 812 ms)', 'master m left; electing']);
    expect(describeEvent(events[0]!, 'a')).toBe('b joined (discovered by mDNS from 198.18.0.2:7412)');
  });

  it('pulls only while someone reads the dashboard', () => {
    const monitor = new ClusterMonitor('a');
    expect(monitor.interested(0)).toBe(false);
    monitor.markRead(1000);
    expect(monitor.interested(20_000)).toBe(true);
    expect(monitor.interested(31_001)).toBe(false);
  });
});

describe('control server dashboard routes', () => {
  it('serves the page with a strict policy, its assets from this server, and validates since', async () => {
    const requests: (number | null)[] = [];
    const monitor = new ClusterMonitor('a');
    const server = new ControlServer({
      host: '127.0.0.1',
      port: 0,
      status: () => ({}) as StatusReport,
      cluster: (sinceMs) => {
        requests.push(sinceMs);
        return monitor.report(SELF, 0, 0, sinceMs);
      },
    });
    const port = await server.start();
    try {
      const base = `http://127.0.0.1:${port}`;
      const page = await fetch(`${base}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
      const html = await page.text();
      // Every script and stylesheet the page loads comes from this server (no CDN).
      const sources = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css|svg))"/g)].map((match) => match[1]!);
      expect(sources.length).toBeGreaterThanOrEqual(4);
      for (const source of sources) {
        expect(source.startsWith('/'), source).toBe(true);
        expect((await fetch(`${base}${source}`)).status, source).toBe(200);
      }
      expect((await fetch(`${base}/vendor/uPlot.iife.min.js`)).headers.get('content-type')).toMatch(/javascript/);
      const data = await fetch(`${base}/api/cluster?since=1500`);
      expect(data.status).toBe(200);
      expect(((await data.json()) as { self: { nodeId: string } }).self.nodeId).toBe('a');
      expect(requests).toEqual([1500]);
      const bad = await fetch(`${base}/api/cluster?since=soon`);
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain('since');
      expect((await fetch(`${base}/nope.js`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
