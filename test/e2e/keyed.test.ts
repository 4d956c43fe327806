// End to end with cluster keys (issue 7): four agents in network namespaces, real mDNS and UDP.
// Three hold the cluster key, in the middle of a key rotation (two send with the old key, one with
// the new; all accept both). The fourth has a key of its own under the same key id and the highest
// priority. Checks that the three agree on a master among themselves with their clocks within
// 1 ms, that the intruder is never master for any of them and never moves their clocks, that each
// of them counts its frames as bad-mac, and that the intruder, discovered through mDNS (which is
// not authenticated), is at most a peer that never answers.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable, sleep } from '../../lab/netns/netns.ts';
import { SPREAD_LIMIT_NS, spreadNs, startAgent, statuses, statusOf, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`SKIPPED e2e keyed cluster test: ${availability.reason}`);

const keyLine = (id: number, byte: number) => `${id} hex:${Buffer.alloc(32, byte).toString('hex')}\n`;

describe.skipIf(!availability.ok)('a keyed cluster in network namespaces, with a wrong-key intruder of the highest priority', () => {
  let lab: NetnsLab;
  let dir: string;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    lab = await NetnsLab.create({ hosts: 4, prefix: 'key' });
    dir = mkdtempSync(path.join(os.tmpdir(), 'keyed-e2e-'));
  });

  afterAll(async () => {
    await lab?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the key holders agree among themselves mid-rotation; the intruder is counted, never followed', async () => {
    const files = {
      old: path.join(dir, 'old-first'),
      rotated: path.join(dir, 'new-first'),
      intruder: path.join(dir, 'intruder'),
    };
    writeFileSync(files.old, keyLine(1, 0x11) + keyLine(2, 0x22));
    writeFileSync(files.rotated, keyLine(2, 0x22) + keyLine(1, 0x11));
    // Same key id as the cluster's first key, another secret: only the MAC can tell them apart.
    writeFileSync(files.intruder, keyLine(1, 0x99));
    for (const file of Object.values(files)) chmodSync(file, 0o600);

    const keyFiles = [files.old, files.old, files.rotated, files.intruder];
    for (const host of lab.hosts) {
      const intruder = host.index === 4;
      agents.push(
        startAgent(lab, host, intruder ? 'zz-intruder' : `node-${host.index}`, [
          '--interface', host.iface,
          '--poll-interval', '1',
          '--discovery-window', '5',
          '--key-file', keyFiles[host.index - 1]!,
          '--virtual-offset', String([-0.5, 0.4, 0.9, 5][host.index - 1]),
          ...(intruder ? ['--priority', '1000'] : []),
        ]),
      );
    }
    const members = agents.slice(0, 3);
    const intruder = agents[3]!;

    const agreement = await waitForAgreement(lab, members, 60_000);
    expect(agreement.masterId).toBe('node-3');

    // Watch for a while: the three keep their master, their spread stays under 1 ms, and the
    // intruder (started 5 s ahead, highest priority) never gets in.
    const deadline = Date.now() + 8_000;
    let worstNs = 0;
    while (Date.now() < deadline) {
      const reports = await statuses(lab, members);
      expect(reports).toHaveLength(3);
      for (const report of reports) expect(report.masterId, `${report.nodeId}'s master`).toBe('node-3');
      worstNs = Math.max(worstNs, spreadNs(reports));
      await sleep(500);
    }
    expect(worstNs).toBeLessThan(SPREAD_LIMIT_NS);

    const reports = await statuses(lab, members);
    for (const report of reports) {
      expect(report.auth.enabled).toBe(true);
      expect(report.counters.framesRejectedByReason['bad-mac'], `${report.nodeId} counts the intruder's frames`).toBeGreaterThan(0);
      // mDNS may tell them about the intruder; then it is a peer that was never heard.
      const seen = report.peers.find((peer) => peer.nodeId === 'zz-intruder');
      if (seen) expect(seen.lastHeardAgoMs, `${report.nodeId} heard a frame from the intruder`).toBeNull();
      expect(report.peers.filter((peer) => peer.nodeId !== 'zz-intruder' && peer.lastHeardAgoMs !== null)).toHaveLength(2);
    }
    // Both keys are in use: node-3 sends with key 2, the others with key 1.
    expect(reports.find((report) => report.nodeId === 'node-3')!.auth.sendKeyId).toBe(2);
    expect(reports.find((report) => report.nodeId === 'node-1')!.auth.sendKeyId).toBe(1);

    // The intruder got nothing it could use either: it rejects their frames and follows nobody else.
    const outsider = await statusOf(lab, intruder);
    expect(outsider).not.toBeNull();
    expect(outsider!.counters.framesRejectedByReason['bad-mac']).toBeGreaterThan(0);
    expect(outsider!.masterId === null || outsider!.masterId === 'zz-intruder').toBe(true);
    // Its clock started 5 s ahead and stayed there; the members' did not follow it.
    const memberOffsets = reports.map((report) => report.clock.hostOffsetNs);
    expect(Math.abs(outsider!.clock.hostOffsetNs - Math.max(...memberOffsets))).toBeGreaterThan(3e9);
  }, 120_000);
});
