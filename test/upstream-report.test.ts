// What an agent with --upstream reports besides its status JSON (test/status-build.test.ts): the
// `status` table (the reference and mode on the clock line, one line per server, within 80
// columns) and the metrics (class, health, following, per-server reachability and offset,
// stratum, counters), from a status report with an upstream section.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatStatus, STATUS_WIDTH } from '../src/cli/format.ts';
import { AgentMetrics } from '../src/daemon/metrics.ts';
import { verdictOf, type StatusReport } from '../src/daemon/status.ts';
import { followingStatus, upstreamCore } from './support/upstream-status.ts';

/** The table with wrapped fields joined again (continuation lines are indented 11 columns). */
const unwrapped = (text: string) => text.replace(/\n {11}(?=\S)/g, ' ');

const MASTER = JSON.parse(readFileSync(new URL('./fixtures/status-master.json', import.meta.url), 'utf8')) as StatusReport;

describe('the status table with an upstream', () => {
  it('puts the reference and the mode on the clock line, then the upstream and one line per server', () => {
    const text = formatStatus(followingStatus(MASTER));
    const lines = text.split('\n');
    const clock = lines.findIndex((line) => line.startsWith('Clock'));
    const flat = unwrapped(text);
    expect(flat).toMatch(/^Clock +virtual, synchronized, reference upstream \(following\); /m);
    expect(flat).toMatch(/^Upstream +following \(this master steers the cluster to it\); healthy, class 1; selected 198\.18\.0\.10:123 \(stratum 1\), offset \+16\.2 µs ±56\.2 µs, 2 truechimers; acquired 2, lost 1; 1 refused \(last \+3\.000 s\)$/m);
    const header = lines.findIndex((line) => /^ {2}SERVER +ADDRESS +REACH +ST +OFFSET +DELAY +VERDICT$/.test(line));
    expect(header).toBeGreaterThan(clock);
    expect(lines[header + 1]).toMatch(/^ {2}198\.18\.0\.10:123 +198\.18\.0\.10 +377 +1 +\+12\.35 µs +101\.4 µs +truechimer$/);
    expect(lines[header + 2]).toMatch(/^ {2}198\.18\.0\.11:123 .* truechimer$/);
    expect(lines[header + 3]).toMatch(/^ {2}198\.18\.0\.12:123 +198\.18\.0\.12 +377 +1 +\+2\.000 s .* falseticker$/);
    expect(lines[header + 4]).toMatch(/^ {2}ntp\.invalid:123 +- +0 +- +- +- +resolving$/);
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(STATUS_WIDTH);
  });

  it('says the reference is the cluster in holdover, and prints nothing of an upstream without one', () => {
    const holdover = formatStatus(followingStatus(MASTER, upstreamCore({ mode: 'holdover', healthy: false, clockClass: 0, lastUnusable: 'no upstream server is usable' })));
    expect(unwrapped(holdover)).toMatch(/^Clock +virtual, synchronized, reference cluster \(holdover\); /m);
    expect(unwrapped(holdover)).toMatch(/^Upstream +holdover \(upstream lost: running on the learned frequency\); not healthy \(no upstream server is usable\), class 0/m);
    const plain = formatStatus(MASTER);
    expect(unwrapped(plain)).toMatch(/^Clock +virtual, synchronized, reference cluster; /m);
    expect(plain).not.toMatch(/^Upstream/m);
    expect(plain).not.toMatch(/SERVER/);
  });
});

describe('the verdict of a master following an upstream', () => {
  const following = (change: (copy: StatusReport) => void = () => {}) => {
    const copy = followingStatus(MASTER);
    change(copy);
    return copy;
  };

  it('is synchronized even alone (it has a reference), naming the upstream', () => {
    const alone = following((s) => ((s.lastRound = null), (s.peers = [])));
    expect(verdictOf(alone)).toEqual({ verdict: 'synchronized', verdictReason: 'master following 198.18.0.10:123 (stratum 1), 0 of 0 members answered the last round' });
    // The same master without the upstream is alone.
    expect(verdictOf({ ...alone, upstream: null }).verdict).toBe('alone');
  });

  it('counts quiet time in upstream polls (its own clock is corrected only when the upstream answers)', () => {
    // 16 s upstream polls, 1 s rounds: 20 s without a correction is normal, 65 s is holdover.
    expect(verdictOf(following((s) => (s.tracking.lastUpdateAgoMs = 20_000))).verdict).toBe('synchronized');
    expect(verdictOf(following((s) => (s.tracking.lastUpdateAgoMs = 65_000)))).toMatchObject({ verdict: 'holdover', verdictReason: expect.stringMatching(/^master, no correction from 198\.18\.0\.10:123/) });
  });

  it('is unsynchronized before its initial corrections, refusing while it refuses the upstream', () => {
    expect(verdictOf(following((s) => (s.clock.synchronized = false))).verdict).toBe('unsynchronized');
    const refusing = verdictOf(followingStatus(MASTER, upstreamCore({ mode: 'refused' })));
    expect(refusing).toEqual({ verdict: 'refusing', verdictReason: 'master, refusing 198.18.0.10:123 (stratum 1): +3.000 s from the cluster\'s time, beyond --max-correction' });
  });
});

/** name{labels} value lines of an exposition, as a map. */
function samples(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    found.set(line.slice(0, at), line.slice(at + 1));
  }
  return found;
}

async function scrape(status: StatusReport): Promise<Map<string, string>> {
  const metrics = new AgentMetrics({ status: () => status, peersMax: 16 });
  return samples((await metrics.render()).body);
}

describe('the upstream metrics', () => {
  it('while following: class 1, healthy, following, per-server reachability and offset, the stratum, the counters', async () => {
    const lines = await scrape(followingStatus(MASTER));
    expect(lines.get('berkeley_clock_class')).toBe('1');
    expect(lines.get('berkeley_upstream_healthy')).toBe('1');
    expect(lines.get('berkeley_upstream_following')).toBe('1');
    expect(lines.get('berkeley_upstream_stratum')).toBe('1');
    expect(lines.get('berkeley_upstream_reachable{server="198.18.0.10:123"}')).toBe('1');
    expect(lines.get('berkeley_upstream_reachable{server="ntp.invalid:123"}')).toBe('0');
    expect(Number(lines.get('berkeley_upstream_offset_seconds{server="198.18.0.10:123"}'))).toBeCloseTo(12_345e-9, 12);
    expect(lines.get('berkeley_upstream_offset_seconds{server="198.18.0.12:123"}')).toBe('2');
    // No sample, no series.
    expect(lines.has('berkeley_upstream_offset_seconds{server="ntp.invalid:123"}')).toBe(false);
    expect(lines.get('berkeley_upstream_acquisitions_total')).toBe('2');
    expect(lines.get('berkeley_upstream_losses_total')).toBe('1');
    expect(lines.get('berkeley_upstream_refusals_total')).toBe('1');
  });

  it('without --upstream: class 0, not healthy, not following, no stratum, no per-server series', async () => {
    const lines = await scrape(MASTER);
    expect(lines.get('berkeley_clock_class')).toBe('0');
    expect(lines.get('berkeley_upstream_healthy')).toBe('0');
    expect(lines.get('berkeley_upstream_following')).toBe('0');
    // prom-client's spelling of NaN.
    expect(lines.get('berkeley_upstream_stratum')).toBe('Nan');
    expect([...lines.keys()].some((key) => key.startsWith('berkeley_upstream_reachable'))).toBe(false);
    expect(lines.get('berkeley_upstream_losses_total')).toBe('0');
  });
});
