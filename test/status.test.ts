// `status` for people and scripts: the verdict (one word, and the exit code scripts read), the table
// within 80 columns whatever the values, the keyed/open line, the member's honest view of the other
// members (the master's view, or "unknown"), and against real agents: a port fetch refuses (6665),
// `waitsync` waiting for an agent that is still starting, timing out, and never reaching one.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { formatShortNs, formatStatus, type MasterView } from '../src/cli/format.ts';
import { verdictOf, VERDICTS, type StatusReport } from '../src/daemon/status.ts';
import { describeResult, freePort, LOOPBACK_ONLY, runCli, spawnCli, stopAllChildren, stopChild } from '../lab/processes.ts';

afterAll(stopAllChildren);

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8')) as StatusReport;
const MEMBER = fixture('status-member');
const MASTER = fixture('status-master');

/** A copy of `base` with changes (deep enough for the fields these tests touch). */
function status(base: StatusReport, change: (copy: StatusReport) => void = () => {}): StatusReport {
  const copy = structuredClone(base);
  change(copy);
  return copy;
}

const verdict = (report: StatusReport) => verdictOf(report).verdict;

describe('the verdict', () => {
  it('synchronized: a member with recent corrections, a master whose members answer', () => {
    expect(verdict(MEMBER)).toBe('synchronized');
    expect(verdictOf(MEMBER).verdictReason).toMatch(/^following node-3, last correction/);
    expect(verdict(MASTER)).toBe('synchronized');
    expect(verdictOf(MASTER).verdictReason).toMatch(/^master, 2 of 2 members answered/);
  });

  it('electing: no master, or an election running', () => {
    expect(verdict(status(MEMBER, (s) => ((s.role = 'electing'), (s.masterId = null))))).toBe('electing');
    const running = status(MEMBER, (s) => {
      s.role = 'electing';
      s.election.inProgress = { term: 7, algorithm: 'ring', forMs: 12 };
    });
    expect(verdictOf(running)).toEqual({ verdict: 'electing', verdictReason: 'election for term 7 running (ring)' });
  });

  it('alone: a master whose rounds nobody answers', () => {
    expect(verdict(status(MASTER, (s) => ((s.lastRound = null), (s.peers = []))))).toBe('alone');
    expect(verdictOf(status(MASTER, (s) => s.lastRound && (s.lastRound.answered = 0))).verdictReason).toMatch(/none of 2 peers answers/);
  });

  it('unsynchronized: a master is known but the first corrections are not done', () => {
    expect(verdict(status(MEMBER, (s) => (s.clock.synchronized = false)))).toBe('unsynchronized');
  });

  it('holdover only after 4 poll intervals without a correction (one late round is not enough)', () => {
    const quiet = (agoMs: number) => status(MEMBER, (s) => ((s.tracking.lastUpdateAgoMs = agoMs), (s.tracking.holdover = agoMs > 2 * s.pollIntervalMs)));
    expect(verdict(quiet(2500))).toBe('synchronized');
    expect(verdict(quiet(4000))).toBe('synchronized');
    expect(verdict(quiet(4001))).toBe('holdover');
  });

  it('refusing: the last correction was refused by the panic threshold', () => {
    const refused = status(MEMBER, (s) => {
      s.tracking.refused = 3;
      s.tracking.lastRefused = { correctionNs: 3600e9, agoMs: 300 };
      s.tracking.lastUpdateAgoMs = 2000;
    });
    expect(verdict(refused)).toBe('refusing');
    // A refusal older than the last accepted correction is history.
    expect(verdict(status(refused, (s) => s.tracking.lastRefused && (s.tracking.lastRefused.agoMs = 2500)))).toBe('synchronized');
  });

  it('every verdict is one of the documented words', () => {
    for (const report of [MEMBER, MASTER]) expect(VERDICTS).toContain(verdict(report));
  });
});

/** A report with everything long: a 64-byte node id, kernel, refusals, barriers, rejects, many peers. */
function worstCase(base: StatusReport): StatusReport {
  const longId = 'n'.repeat(64);
  return status(base, (s) => {
    s.nodeId = `x${'y'.repeat(63)}`;
    s.cluster = 'c'.repeat(64);
    s.listen = { address: '255.255.255.255', port: 65535 };
    s.clock.kernel = { unsync: true, frequencyPpm: -499.999, maxErrorNs: 16e9, estErrorNs: 16e9, status: 0xffff } as StatusReport['clock']['kernel'];
    s.clock.virtualDriftPpm = -250;
    s.tracking.refused = 123456;
    s.tracking.spikes = 99;
    s.tracking.lastRefused = { correctionNs: -3600e9, agoMs: 7_200_000 };
    s.timestamps = { rx: 'user', whyNotKernel: 'SO_TIMESTAMPNS not supported by this socket type on this kernel', rxStampedByKernel: 1e12, rxStampedByUser: 1e12 };
    s.barriers.waiting = [{ name: 'b'.repeat(64), count: 1000, errorCode: 0, acknowledged: true, present: 3, waitingMs: 3_600_000 }];
    s.barriers.open = [{ name: 'o'.repeat(64), generation: 1, present: 999, count: 1000, initialized: true, errorCode: 0, ageMs: 10, inherited: 0 }];
    s.counters.framesRejectedByReason = { truncated: 1e9, bad_magic: 1e9, bad_mac: 1e9, unknown_key: 1e9 } as Record<string, number>;
    s.counters.framesFromSelfId = 12;
    s.auth = { enabled: true, keyFile: '/etc/berkeley-agent/keys', sendKeyId: 65535, keyIds: [65535, 65534, 65533] };
    s.peers = Array.from({ length: 5 }, (_, index) => ({
      nodeId: `${longId.slice(0, 60)}-${index}`,
      address: '255.255.255.255',
      port: 65535,
      priority: 1_000_000,
      lastHeardAgoMs: 119_999,
      suspect: index === 1,
      offsetNs: -999_999_999,
      delayNs: 999_999_999,
      excluded: index === 2,
      sampleDiscarded: index === 3,
    }));
  });
}

describe('the table', () => {
  it('fits 80 columns, even with the longest values', () => {
    for (const report of [MEMBER, MASTER, worstCase(MEMBER), worstCase(MASTER)]) {
      const text = formatStatus(report);
      for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
      expect(text.split('\n')[0]).toMatch(/^Verdict {4}\w+ \(/);
    }
    // Node ids cut to fit are marked.
    expect(formatStatus(worstCase(MASTER))).toMatch(/^n+…\s/m);
  });

  it('a peer whose last correction could not be sent reads NOT CORRECTED on the master (older agents: no field, no change)', () => {
    const report = status(MASTER, (copy) => {
      copy.peers[0]!.correctionUnsendable = true;
    });
    expect(formatStatus(report)).toMatch(new RegExp(`^${literal(report.peers[0]!.nodeId)}\\s.*\\sNOT CORRECTED$`, 'm'));
    const older = status(MASTER, (copy) => {
      for (const peer of copy.peers) delete peer.correctionUnsendable;
    });
    expect(formatStatus(older)).not.toMatch(/NOT CORRECTED/);
  });

  it('table cells use at most four significant digits', () => {
    expect(formatShortNs(-999_999_999, true)).toBe('-1.000 s');
    expect(formatShortNs(999_949_999)).toBe('999.9 ms');
    expect(formatShortNs(12_345, true)).toBe('+12.35 µs');
    expect(formatShortNs(-120, true)).toBe('-120 ns');
    expect(formatShortNs(null)).toBe('-');
  });

  it('says whether the cluster is keyed or open', () => {
    expect(formatStatus(MEMBER)).toMatch(/^Cluster {4}open: frames not authenticated/m);
    const keyed = formatStatus(status(MEMBER, (s) => (s.auth = { enabled: true, keyFile: '/k', sendKeyId: 2, keyIds: [2, 1] })));
    expect(keyed).toMatch(/^Cluster {4}keyed: frames authenticated, sent with key 2 \(accepting 2, 1\)$/m);
  });

  it('a master shows its own measurements and states', () => {
    const text = formatStatus(status(MASTER, (s) => s.peers[0] && (s.peers[0].suspect = true)));
    expect(text).toMatch(/^Peers \(2\), as this master measures them:$/m);
    expect(text).toMatch(/^node-1\s+127\.0\.0\.1:17501\s+.*not answering$/m);
    expect(text).toMatch(/^node-2\s+127\.0\.0\.1:17502\s+\S+ \S+\s+[+-][\d.]+ \S+\s+[\d.]+ \S+\s+ok$/m);
  });

  it('a member without the master\'s view does not claim the others are ok', () => {
    const text = formatStatus(MEMBER, null);
    expect(text).toMatch(/no view from the master yet, so their state is unknown/);
    expect(text).toMatch(/^node-2\s+127\.0\.0\.1:17502\s+.*unknown$/m);
    expect(text).toMatch(/^node-3\s+127\.0\.0\.1:17503\s+.*master$/m);
    expect(text).not.toMatch(/\sok$/m);
  });

  it("a member with the master's view shows every member as the master sees it", () => {
    const view: MasterView = {
      masterId: 'node-3',
      term: MEMBER.term,
      round: 42,
      ageMs: 300,
      members: [
        { nodeId: 'node-3', role: 'master', self: false, offsetNs: 0, delayNs: 0, lastHeardAgoMs: 300, suspect: false, excluded: false, discarded: false, synced: true },
        { nodeId: 'node-1', role: 'slave', self: true, offsetNs: 1200, delayNs: 50_000, lastHeardAgoMs: 300, suspect: false, excluded: false, discarded: false, synced: true },
        { nodeId: 'node-2', role: 'slave', self: false, offsetNs: null, delayNs: null, lastHeardAgoMs: 9000, suspect: true, excluded: false, discarded: false, synced: true },
      ],
    };
    const text = formatStatus(MEMBER, view);
    expect(text).toMatch(/^Members \(3\) as the master node-3 sees them \(round 42, 300 ms ago; \* this node\):$/m);
    expect(text).toMatch(/^\*node-1\s+127\.0\.0\.1:17501\s+300 ms\s+\+1\.200 µs\s+50\.00 µs\s+ok$/m);
    expect(text).toMatch(/^node-2\s+127\.0\.0\.1:17502\s+9\.0 s\s+-\s+-\s+not answering$/m);
    // A view of another master or term is not used.
    expect(formatStatus(MEMBER, { ...view, term: view.term + 1 })).toMatch(/state is unknown/);
  });
});

async function busyPortFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('against real agents', () => {
  it('status and waitsync work on a port fetch refuses (6665-6669, 6000)', async () => {
    let httpPort: number | null = null;
    for (const candidate of [6665, 6666, 6667, 6668, 6669, 6000]) {
      if (await busyPortFree(candidate)) {
        httpPort = candidate;
        break;
      }
    }
    // Every one of them taken on this machine: say so rather than pass silently.
    if (httpPort === null) throw new Error('none of the ports 6665-6669 and 6000 is free on 127.0.0.1; this test needs one');
    const agent = spawnCli(['run', ...LOOPBACK_ONLY, '--port', '0', '--http', `127.0.0.1:${httpPort}`, '--node-id', 'lone', '--log-level', 'warn']);
    try {
      let result = await runCli(['status', '--verdict', '--http', `127.0.0.1:${httpPort}`]);
      for (let attempt = 0; attempt < 40 && result.code === 3; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        result = await runCli(['status', '--verdict', '--http', `127.0.0.1:${httpPort}`]);
      }
      // A lone agent: never synchronized, so exit 1 with its word.
      expect(result.code, describeResult(result)).toBe(1);
      expect(result.stdout).toMatch(/^(electing|alone)\n$/);
      const waited = await runCli(['waitsync', '--timeout', '1.5', '--interval', '0.25', '--http', `127.0.0.1:${httpPort}`]);
      expect(waited.code, describeResult(waited)).toBe(1);
      expect(waited.stderr).toMatch(/^berkeley-agent: waitsync: not synchronized after \d+\.\d s: (electing|alone) \(/);
      expect(waited.stderr.trimEnd().split('\n')).toHaveLength(1);
    } finally {
      await stopChild(agent);
    }
  }, 30_000);

  it('waitsync keeps asking while the agents start, and exits 0 once synchronized', async () => {
    const [udpA, udpB, httpA, httpB] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const waiting = runCli(['waitsync', '--timeout', '40', '--interval', '0.25', '--http', `127.0.0.1:${httpA}`], { timeoutMs: 50_000 });
    // Nothing listens yet: waitsync must not give up.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const common = [...LOOPBACK_ONLY, '--poll-interval', '0.5', '--discovery-window', '0.5', '--log-level', 'warn'];
    const a = spawnCli(['run', ...common, '--port', String(udpA), '--http', `127.0.0.1:${httpA}`, '--node-id', 'ws-a', '--peer', `127.0.0.1:${udpB}`, '--virtual-offset', '0.3']);
    const b = spawnCli(['run', ...common, '--port', String(udpB), '--http', `127.0.0.1:${httpB}`, '--node-id', 'ws-b', '--peer', `127.0.0.1:${udpA}`]);
    try {
      const result = await waiting;
      expect(result.code, describeResult(result)).toBe(0);
      expect(result.stdout).toMatch(/^synchronized after \d+\.\d s \(/);
    } finally {
      await Promise.all([stopChild(a), stopChild(b)]);
    }
  }, 60_000);

  it('waitsync exits 3 when it never reached an agent', async () => {
    const port = await freePort();
    const result = await runCli(['waitsync', '--timeout', '0.6', '--interval', '0.2', '--http', `127.0.0.1:${port}`]);
    expect(result.code, describeResult(result)).toBe(3);
    expect(result.stderr).toMatch(/^berkeley-agent: waitsync: not synchronized after .*cannot reach the agent's control server/);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});

/** A node id as a literal in a regular expression. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
