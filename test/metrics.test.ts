// GET /metrics: two in-process agents on loopback (virtual clocks, never the real one) synchronize;
// the scrape is parsed as Prometheus text format 0.0.4 and every family is checked for presence and
// plausible values. Plus unit checks of AgentMetrics over a hand-made status: per-peer series
// follow the peer list (gone peers lose theirs), stay within the peer limit, and each agent has its
// own registry. No timing thresholds: waits have generous deadlines and assert states, not speed.
import { createSocket } from 'node:dgram';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunConfig } from '../src/daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../src/daemon/daemon.ts';
import { AgentMetrics, CORRECTION_ACTIONS, CORRECTION_BUCKETS_SECONDS } from '../src/daemon/metrics.ts';
import type { StatusReport } from '../src/daemon/status.ts';
import { sleep } from '../lab/netns/netns.ts';
import { freePort } from '../lab/processes.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  help: string;
  type: string;
  samples: Sample[];
}

/** Parses the Prometheus text exposition format (what prom-client writes). */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let found = families.get(name);
    if (!found) {
      found = { help: '', type: '', samples: [] };
      families.set(name, found);
    }
    return found;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'HELP') family(meta[2]!).help = meta[3]!;
      else family(meta[2]!).type = meta[3]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`unparseable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const match of (sample[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = sample[4]!;
    // prom-client writes NaN as "Nan"; Prometheus parses floats case-insensitively (Go ParseFloat).
    const isNaN = raw.toLowerCase() === 'nan';
    const value = isNaN ? Number.NaN : raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? Number.NEGATIVE_INFINITY : Number(raw);
    if (!isNaN && Number.isNaN(value)) throw new Error(`bad value: ${line}`);
    // Histogram series belong to the family without the _bucket/_sum/_count suffix.
    const name = sample[1]!;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const owner = families.get(base)?.type === 'histogram' ? base : name;
    family(owner).samples.push({ name, labels, value });
  }
  return families;
}

function only(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  if (!family) throw new Error(`no family ${name}`);
  const matches = family.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  if (matches.length !== 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${matches.length} samples`);
  return matches[0]!.value;
}

const CLUSTER = `metrics-${process.pid}`;
const daemons: RunningDaemon[] = [];
let master: RunningDaemon;
let slave: RunningDaemon;

function config(nodeId: string, priority: number, extra: Record<string, unknown> = {}) {
  return buildRunConfig({
    'node-id': nodeId,
    priority,
    clock: 'virtual',
    port: 0,
    bind: '127.0.0.1',
    mdns: false,
    http: '127.0.0.1:0',
    // No NTP server on this machine's port 123 (the two agents below get free ports).
    'ntp-port': 0,
    cluster: CLUSTER,
    'poll-interval': 0.2,
    'discovery-window': 0.2,
    ...extra,
  });
}

async function get(daemon: RunningDaemon, path: string, method = 'GET'): Promise<Response> {
  return fetch(`http://127.0.0.1:${daemon.httpPort}${path}`, { method, signal: AbortSignal.timeout(5000) });
}

async function scrape(daemon: RunningDaemon): Promise<{ response: Response; text: string; families: Map<string, Family> }> {
  const response = await get(daemon, '/metrics');
  const text = await response.text();
  return { response, text, families: parseExposition(text) };
}

beforeAll(async () => {
  const logger = pino({ level: 'silent' });
  master = await startDaemon(config('metrics-a', 200, { 'ntp-port': await freePort() }), logger);
  daemons.push(master);
  // Started 3 ms ahead and drifting: there is something to correct.
  slave = await startDaemon(config('metrics-b', 100, { 'virtual-offset': 0.003, 'virtual-drift': 20, 'ntp-port': await freePort() }), logger);
  daemons.push(slave);
  master.agent.addPeer(slave.listen);
  slave.agent.addPeer(master.listen);
  const deadline = Date.now() + 30_000;
  const ready = (): boolean => {
    const a = master.agent.status();
    const b = slave.agent.status();
    return (
      a.role === 'master' &&
      b.role === 'slave' &&
      b.clock.synchronized &&
      b.clock.errorBoundNs !== null &&
      a.counters.roundsCompleted >= 4 &&
      b.counters.correctionsApplied >= 4 &&
      a.peers.some((peer) => peer.nodeId === 'metrics-b' && peer.offsetNs !== null && peer.delayNs !== null)
    );
  };
  while (Date.now() < deadline && !ready()) await sleep(100);
  expect(ready(), 'the pair synchronizes').toBe(true);
}, 40_000);

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stopAbruptly()));
});

describe('GET /metrics', () => {
  it('serves Prometheus text format 0.0.4 with HELP and TYPE for every family, all named berkeley_*', async () => {
    const { response, text, families } = await scrape(master);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text.endsWith('\n')).toBe(true);
    expect(families.size).toBeGreaterThan(20);
    for (const [name, family] of families) {
      expect(name, name).toMatch(/^berkeley_[a-z0-9_]+$/);
      expect(family.help.length, `${name} has HELP`).toBeGreaterThan(10);
      expect(['counter', 'gauge', 'histogram'], `${name} type`).toContain(family.type);
      if (family.type === 'counter') expect(name, `${name}: counters end in _total`).toMatch(/_total$/);
    }
    const head = await get(master, '/metrics', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await head.text()).toBe('');
  });

  it('reports identity, role, term and elections', async () => {
    const a = (await scrape(master)).families;
    const b = (await scrape(slave)).families;
    expect(only(a, 'berkeley_info', { node_id: 'metrics-a', cluster: CLUSTER, clock_mode: 'virtual' })).toBe(1);
    expect(only(a, 'berkeley_role', { role: 'master' })).toBe(1);
    expect(only(a, 'berkeley_role', { role: 'slave' })).toBe(0);
    expect(only(a, 'berkeley_role', { role: 'electing' })).toBe(0);
    expect(only(b, 'berkeley_role', { role: 'slave' })).toBe(1);
    expect(only(b, 'berkeley_role', { role: 'master' })).toBe(0);
    const status = master.agent.status();
    expect(only(a, 'berkeley_term')).toBe(status.term);
    expect(only(a, 'berkeley_term')).toBeGreaterThan(0);
    expect(only(b, 'berkeley_term')).toBe(only(a, 'berkeley_term'));
    expect(only(a, 'berkeley_priority')).toBe(200);
    for (const algorithm of ['ring', 'bully', 'takeover']) expect(only(a, 'berkeley_elections_total', { algorithm })).toBeGreaterThanOrEqual(0);
    const elections = ['ring', 'bully', 'takeover'].reduce((sum, algorithm) => sum + only(a, 'berkeley_elections_total', { algorithm }), 0);
    expect(elections).toBeGreaterThanOrEqual(1);
    expect(only(a, 'berkeley_elections_won_total')).toBeGreaterThanOrEqual(1);
    expect(only(a, 'berkeley_election_in_progress')).toBe(0);
  });

  it('reports the clock and tracking: host offset, frequency, synchronized, RMS offset, spikes, refused', async () => {
    const b = (await scrape(slave)).families;
    expect(only(b, 'berkeley_clock_synchronized')).toBe(1);
    const hostOffset = only(b, 'berkeley_clock_host_offset_seconds');
    // Pulled from +3 ms toward the master (which follows the host clock): within the start offset.
    expect(Number.isFinite(hostOffset)).toBe(true);
    expect(Math.abs(hostOffset)).toBeLessThan(0.01);
    expect(Number.isFinite(only(b, 'berkeley_clock_frequency_ppm'))).toBe(true);
    expect(Math.abs(only(b, 'berkeley_clock_frequency_ppm'))).toBeLessThan(1000);
    expect(Number.isFinite(only(b, 'berkeley_clock_slew_remaining_seconds'))).toBe(true);
    expect(only(b, 'berkeley_clock_steps_total')).toBeGreaterThanOrEqual(1);
    expect(only(b, 'berkeley_clock_slews_total')).toBeGreaterThanOrEqual(0);
    const rms = only(b, 'berkeley_tracking_rms_offset_seconds');
    expect(Number.isNaN(rms) || (rms >= 0 && rms < 0.01)).toBe(true);
    expect(Number.isFinite(only(b, 'berkeley_tracking_last_offset_seconds'))).toBe(true);
    expect(only(b, 'berkeley_tracking_spikes_total')).toBeGreaterThanOrEqual(0);
    expect(only(b, 'berkeley_tracking_refused_total')).toBe(0);
    expect([0, 1]).toContain(only(b, 'berkeley_tracking_holdover'));
    expect(only(b, 'berkeley_uptime_seconds')).toBeGreaterThan(0);
  });

  it('reports the error bound (0 on the master, the status bound on a member) and the NTP server counters', async () => {
    const a = (await scrape(master)).families;
    expect(only(a, 'berkeley_clock_error_bound_seconds')).toBe(0);
    expect(only(a, 'berkeley_ntp_serving')).toBe(1);
    const before = slave.agent.status();
    // One NTP request (a 48-byte NTPv4 client packet) and one short datagram to the member's NTP server.
    const socket = createSocket('udp4');
    const port = Number(before.ntp.addresses[0]?.split(':')[1]);
    const request = Buffer.alloc(48);
    request[0] = (4 << 3) | 3;
    const reply = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    socket.send(request, port, '127.0.0.1');
    socket.send(Buffer.alloc(8), port, '127.0.0.1');
    expect((await reply).length).toBe(48);
    await sleep(100);
    socket.close();
    const b = (await scrape(slave)).families;
    const bound = only(b, 'berkeley_clock_error_bound_seconds');
    expect(bound).toBeGreaterThanOrEqual(0);
    expect(bound).toBeLessThan(0.01);
    expect(only(b, 'berkeley_ntp_requests_total') - before.ntp.counters.requests).toBe(2);
    expect(only(b, 'berkeley_ntp_replies_total') - before.ntp.counters.replies).toBe(1);
    expect(only(b, 'berkeley_ntp_replies_unsynchronized_total')).toBe(before.ntp.counters.repliesUnsynchronized);
    expect(only(b, 'berkeley_ntp_dropped_total', { reason: 'short' }) - (before.ntp.counters.droppedByReason.short ?? 0)).toBe(1);
    expect(only(b, 'berkeley_ntp_dropped_total', { reason: 'rateLimited' })).toBe(0);
    // Not synchronized: no bound, NaN (as the other not-known-yet gauges).
    const unknown = new AgentMetrics({ status: () => ({ ...before, clock: { ...before.clock, errorBoundNs: null } }), peersMax: 8 });
    expect(only(parseExposition((await unknown.render()).body), 'berkeley_clock_error_bound_seconds')).toBeNaN();
  });

  it('has a corrections histogram (1 us to 1 s) whose count equals the corrections handed to the discipline', async () => {
    for (const daemon of [master, slave]) {
      const families = (await scrape(daemon)).families;
      const histogram = families.get('berkeley_correction_seconds');
      expect(histogram?.type).toBe('histogram');
      const buckets = histogram!.samples.filter((sample) => sample.name === 'berkeley_correction_seconds_bucket' && sample.labels.action === 'step');
      expect(buckets.map((sample) => sample.labels.le)).toEqual([...CORRECTION_BUCKETS_SECONDS.map(String), '+Inf']);
      expect(CORRECTION_BUCKETS_SECONDS[0]).toBe(1e-6);
      expect(CORRECTION_BUCKETS_SECONDS.at(-1)).toBe(1);
      // Cumulative buckets never decrease.
      for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
      let count = 0;
      for (const action of CORRECTION_ACTIONS) {
        const actionCount = only(families, 'berkeley_correction_seconds_count', { action });
        expect(only(families, 'berkeley_correction_seconds_bucket', { action, le: '+Inf' })).toBe(actionCount);
        count += actionCount;
      }
      // Same scrape, same moment: the histogram has seen every correction the counter counted.
      const corrections = only(families, 'berkeley_corrections_total');
      expect(corrections).toBeGreaterThanOrEqual(4);
      expect(count).toBe(corrections);
      // The first corrections are stepped (initial synchronization).
      expect(only(families, 'berkeley_correction_seconds_count', { action: 'step' })).toBeGreaterThanOrEqual(1);
      expect(only(families, 'berkeley_correction_seconds_count', { action: 'refuse' })).toBe(0);
      expect(only(families, 'berkeley_correction_seconds_sum', { action: 'step' })).toBeGreaterThanOrEqual(0);
    }
    // Against the status counter read afterwards: a correction may land in between, so at least.
    const families = (await scrape(slave)).families;
    const count = CORRECTION_ACTIONS.reduce((sum, action) => sum + only(families, 'berkeley_correction_seconds_count', { action }), 0);
    expect(slave.agent.status().counters.correctionsApplied).toBeGreaterThanOrEqual(count);
  });

  it('reports peers: a count, and per-peer offset and delay (master) for the other node only', async () => {
    const a = (await scrape(master)).families;
    const b = (await scrape(slave)).families;
    expect(only(a, 'berkeley_peers')).toBe(1);
    expect(only(b, 'berkeley_peers')).toBe(1);
    expect(only(a, 'berkeley_peers_suspect')).toBe(0);
    const offsets = a.get('berkeley_peer_offset_seconds')!.samples;
    expect(offsets.map((sample) => sample.labels.node_id)).toEqual(['metrics-b']);
    expect(Math.abs(offsets[0]!.value)).toBeLessThan(0.01);
    const delay = only(a, 'berkeley_peer_delay_seconds', { node_id: 'metrics-b' });
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThan(1);
    expect(only(a, 'berkeley_peer_last_heard_seconds', { node_id: 'metrics-b' })).toBeGreaterThanOrEqual(0);
    expect(only(a, 'berkeley_peer_suspect', { node_id: 'metrics-b' })).toBe(0);
    expect([0, 1]).toContain(only(a, 'berkeley_peer_excluded', { node_id: 'metrics-b' }));
    // No series about ourselves.
    for (const name of ['berkeley_peer_offset_seconds', 'berkeley_peer_delay_seconds', 'berkeley_peer_last_heard_seconds']) {
      expect(a.get(name)!.samples.some((sample) => sample.labels.node_id === 'metrics-a')).toBe(false);
    }
    // The slave measures nobody: its offset/delay families are present but empty.
    expect(b.get('berkeley_peer_offset_seconds')?.samples).toEqual([]);
    expect(b.get('berkeley_peer_delay_seconds')?.samples).toEqual([]);
    expect(only(b, 'berkeley_peer_last_heard_seconds', { node_id: 'metrics-a' })).toBeGreaterThanOrEqual(0);
  });

  it('counts rounds, frames (received, sent, rejected by reason, ignored) and receive timestamps', async () => {
    const a = (await scrape(master)).families;
    const b = (await scrape(slave)).families;
    expect(only(a, 'berkeley_rounds_completed_total')).toBeGreaterThanOrEqual(4);
    expect(only(b, 'berkeley_rounds_completed_total')).toBe(0);
    expect(only(a, 'berkeley_last_round_members')).toBe(1);
    expect(only(a, 'berkeley_last_round_answered')).toBeLessThanOrEqual(1);
    expect(only(a, 'berkeley_samples_discarded_total')).toBeGreaterThanOrEqual(0);
    expect(only(a, 'berkeley_peers_refused_total')).toBe(0);
    for (const families of [a, b]) {
      expect(only(families, 'berkeley_frames_received_total')).toBeGreaterThan(0);
      expect(only(families, 'berkeley_frames_sent_total')).toBeGreaterThan(0);
      expect(only(families, 'berkeley_send_errors_total')).toBe(0);
      const stamped = only(families, 'berkeley_rx_timestamps_total', { source: 'kernel' }) + only(families, 'berkeley_rx_timestamps_total', { source: 'user' });
      expect(stamped).toBeGreaterThan(0);
      for (const reason of ['other_cluster', 'stale', 'self_id']) expect(only(families, 'berkeley_frames_ignored_total', { reason })).toBeGreaterThanOrEqual(0);
    }
    const rejected = a.get('berkeley_frames_rejected_total')!;
    expect(rejected.type).toBe('counter');
    expect(rejected.samples.map((sample) => sample.labels.reason).sort()).toEqual(Object.keys(master.agent.status().counters.framesRejectedByReason).sort());
    expect(rejected.samples.every((sample) => sample.value === 0)).toBe(true);

    // A garbage datagram over loopback is counted under its reason.
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => socket.send(Buffer.from('not msgpack at all'), master.listen.port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
    socket.close();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && master.agent.status().counters.framesRejected === 0) await sleep(20);
    const after = (await scrape(master)).families.get('berkeley_frames_rejected_total')!.samples;
    expect(after.reduce((sum, sample) => sum + sample.value, 0)).toBe(1);
    const reason = Object.entries(master.agent.status().counters.framesRejectedByReason).find(([, count]) => count === 1)?.[0];
    expect(after.find((sample) => sample.value === 1)?.labels.reason).toBe(reason);
  });

  it('leaves the other paths as they were: /status JSON, / text, 404 elsewhere, 405 for other methods', async () => {
    const status = await get(master, '/status');
    expect(status.status).toBe(200);
    expect(status.headers.get('content-type')).toBe('application/json');
    expect(((await status.json()) as StatusReport).nodeId).toBe('metrics-a');
    expect((await get(master, '/')).status).toBe(200);
    expect((await get(master, '/nope')).status).toBe(404);
    expect((await get(master, '/metrics/')).status).toBe(404);
    expect((await get(master, '/metricsx')).status).toBe(404);
    for (const path of ['/metrics', '/status', '/nope']) {
      const response = await get(master, path, 'POST');
      expect(response.status, `POST ${path}`).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
    }
    expect((await get(master, '/metrics', 'DELETE')).status).toBe(405);
    // Query strings are ignored, as for /status.
    expect((await get(master, '/metrics?x=1')).status).toBe(200);
  });
});

describe('AgentMetrics', () => {
  function peer(nodeId: string, offsetNs: number | null): StatusReport['peers'][number] {
    return { nodeId, address: '127.0.0.1', port: 1, priority: 1, lastHeardAgoMs: 5, suspect: false, offsetNs, delayNs: offsetNs === null ? null : 1000, excluded: false, sampleDiscarded: false };
  }

  it('rebuilds per-peer series from the peer list at each scrape (gone peers lose theirs) within the peer limit', async () => {
    const base = master.agent.status();
    let peers = [peer('p1', 1000), peer('p2', -2000), peer('p3', null)];
    const metrics = new AgentMetrics({ status: () => ({ ...base, peers }), peersMax: 2 });
    let families = parseExposition((await metrics.render()).body);
    // p3 is beyond the limit of 2; p1 and p2 are measured.
    expect(families.get('berkeley_peer_offset_seconds')!.samples.map((sample) => [sample.labels.node_id, sample.value])).toEqual([
      ['p1', 1e-6],
      ['p2', -2e-6],
    ]);
    expect(families.get('berkeley_peer_last_heard_seconds')!.samples.map((sample) => sample.labels.node_id)).toEqual(['p1', 'p2']);
    peers = [peer('p2', -3000)];
    families = parseExposition((await metrics.render()).body);
    for (const name of ['berkeley_peer_offset_seconds', 'berkeley_peer_delay_seconds', 'berkeley_peer_last_heard_seconds', 'berkeley_peer_suspect', 'berkeley_peer_excluded']) {
      expect(families.get(name)!.samples.map((sample) => sample.labels.node_id), name).toEqual(['p2']);
    }
    expect(only(families, 'berkeley_peer_offset_seconds', { node_id: 'p2' })).toBe(-3e-6);
    expect(only(families, 'berkeley_peers')).toBe(1);
  });

  it('keeps a registry per agent and observes absolute corrections in seconds', async () => {
    const base = master.agent.status();
    const one = new AgentMetrics({ status: () => base, peersMax: 8 });
    const two = new AgentMetrics({ status: () => base, peersMax: 8 });
    one.observeCorrection(-2_000_000, 'slew');
    one.observeCorrection(Number.NaN, 'slew');
    const first = parseExposition((await one.render()).body);
    const second = parseExposition((await two.render()).body);
    expect(only(first, 'berkeley_correction_seconds_count', { action: 'slew' })).toBe(1);
    expect(only(first, 'berkeley_correction_seconds_sum', { action: 'slew' })).toBeCloseTo(0.002, 12);
    expect(only(first, 'berkeley_correction_seconds_bucket', { action: 'slew', le: '0.001' })).toBe(0);
    expect(only(first, 'berkeley_correction_seconds_bucket', { action: 'slew', le: '0.0025' })).toBe(1);
    expect(only(second, 'berkeley_correction_seconds_count', { action: 'slew' })).toBe(0);
    const rms = base.tracking.rmsOffsetNs;
    const unknown = new AgentMetrics({ status: () => ({ ...base, tracking: { ...base.tracking, rmsOffsetNs: null, lastOffsetNs: null } }), peersMax: 8 });
    const families = parseExposition((await unknown.render()).body);
    expect(only(families, 'berkeley_tracking_rms_offset_seconds')).toBeNaN();
    expect(rms === null || Number.isFinite(rms)).toBe(true);
  });
});
