// The upstream NTP client (src/net/ntp-client.ts, src/ntp/client.ts, src/ntp/selection.ts)
// against a server we did not write: Debian's chronyd, each in its own network namespace, run with
// -x (it never touches the clock) and `local stratum 1`, so it serves this machine's clock. The
// client runs in a third namespace (lab/ntp/upstream-probe.ts), measuring a clock it defines as
// the host's realtime plus 3 ms.
// - Sign: offsets are "server minus our clock", so a clock 3 ms ahead of chronyd measures -3 ms
//   (our clock must move back 3 ms to agree). The measurement must be within half its round trip
//   of -3 ms (the four-timestamp bound; chrony's and the kernel's stamps are exact here), chronyd's
//   stratum must read 1, the reach register must fill (0xff), and selection must pick it.
// - Three servers, two chronyd and our own NTP server (src/net/ntp-server.ts) serving the host
//   clock + 2 s with a synchronized snapshot: selection marks ours a falseticker and follows the
//   two chronyd.
// - Two servers seconds apart (one chronyd, ours at +2 s): no majority, nothing selected.
// chronyd is the machine's own or Debian's package unpacked into the lab cache (lab/vm/assets.ts,
// never installed); lab/ntp/chronyd-server.ts runs it with a config in a temporary directory
// (pidfile, driftfile there, cmdport 0). Every process and namespace goes with the lab's cleanup, also on failure.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable, type LabHost } from '../../lab/netns/netns.ts';
import { startChronydServer } from '../../lab/ntp/chronyd-server.ts';
import { findChronyd } from '../../lab/ntp/chrony-q.ts';
import type { ProbeConfig } from '../../lab/ntp/upstream-probe.ts';
import type { UpstreamServerStatus } from '../../src/net/ntp-client.ts';
import type { SelectionResult } from '../../src/ntp/selection.ts';

const PROBE = fileURLToPath(new URL('../../lab/ntp/upstream-probe.ts', import.meta.url));
const CHRONY_PORT = 11123;
const OUR_SERVER_PORT = 11124;
const CLOCK_OFFSET_NS = 3_000_000;
const FALSETICKER_OFFSET_NS = 2_000_000_000;
/** Clock readings, NTP's 2^-32 s rounding and chrony's precision: far below a microsecond each. */
const READING_SLOP_NS = 20_000;

const availability = netnsAvailable();
const chronyd = findChronyd();
const skipReason = !availability.ok ? availability.reason : 'skip' in chronyd ? chronyd.skip : null;
if (skipReason !== null) console.warn(`[ntp-client e2e] SKIPPED: ${skipReason}`);

interface ProbeResult {
  name: string;
  status: UpstreamServerStatus[];
  selection: SelectionResult;
  rxTimestamps: string;
}

describe.skipIf(skipReason !== null)('NTP client against chronyd -x in namespaces', () => {
  const binary = 'path' in chronyd ? chronyd.path : '';
  let lab: NetnsLab | undefined;
  let dir = '';
  let results: ProbeResult[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ntp-client-e2e-'));
    lab = await NetnsLab.create({ hosts: 3, prefix: 'ntpc' });
    const l = lab;
    const [first, second, client] = l.hosts as [LabHost, LabHost, LabHost];
    try {
      await startChronydServer(l, first, { binary, port: CHRONY_PORT, dir });
      await startChronydServer(l, second, { binary, port: CHRONY_PORT, dir });
      const chrony1 = { host: first.address, port: CHRONY_PORT };
      const chrony2 = { host: second.address, port: CHRONY_PORT };
      const ours = { host: client.address, port: OUR_SERVER_PORT };
      const config: ProbeConfig = {
        // 1 s polls: a burst then polls, 12 requests, the last 8 all answered.
        durationMs: 12_500, pollIntervalMs: 1_000,
        ntpServer: { address: client.address, port: OUR_SERVER_PORT, offsetNs: FALSETICKER_OFFSET_NS },
        runs: [
          { name: 'one', servers: [chrony1], clockOffsetNs: CLOCK_OFFSET_NS },
          { name: 'three', servers: [chrony1, ours, chrony2], clockOffsetNs: CLOCK_OFFSET_NS },
          { name: 'two', servers: [chrony1, ours], clockOffsetNs: CLOCK_OFFSET_NS },
        ],
      };
      const run = await l.exec(client, process.execPath, ['--import', 'tsx', PROBE, JSON.stringify(config)], { timeoutMs: 60_000 });
      if (run.code !== 0) throw new Error(`probe failed (exit ${run.code}):\n${run.stderr}\n${l.diagnostics()}`);
      results = (JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as { results: ProbeResult[] }).results;
    } catch (error) {
      console.error(l.diagnostics());
      throw error;
    }
  }, 120_000);

  afterAll(async () => {
    await lab?.cleanup();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const result = (name: string) => {
    const found = results.find((entry) => entry.name === name);
    if (found === undefined) throw new Error(`no probe result ${name}`);
    return found;
  };

  it('measures a clock 3 ms ahead of chronyd as -3 ms, within half the round trip; stratum 1; reach fills; selected', () => {
    const { status, selection, rxTimestamps } = result('one');
    const server = status[0] as UpstreamServerStatus;
    expect(server).toMatchObject({ stratum: 1, leap: 0, reachable: true, reach: 0xff, state: 'polling', lastRejectReason: null });
    const offsetNs = server.offsetNs as number;
    const delayNs = server.delayNs as number;
    const errorNs = offsetNs + CLOCK_OFFSET_NS;
    console.log(`[ntp-client e2e] chronyd: offset ${(offsetNs / 1e6).toFixed(4)} ms (expected -3 ms, error ${(errorNs / 1e3).toFixed(1)} us), `
      + `delay ${(delayNs / 1e3).toFixed(1)} us, jitter ${((server.jitterNs as number) / 1e3).toFixed(1)} us, root distance ${((server.rootDistanceNs as number) / 1e3).toFixed(1)} us, `
      + `${server.samples} samples of ${server.requests} requests, rx stamps: ${rxTimestamps}`);
    expect(Math.abs(errorNs)).toBeLessThanOrEqual(delayNs / 2 + READING_SLOP_NS);
    expect(server.rootDistanceNs as number).toBeGreaterThanOrEqual(delayNs / 2);
    expect(selection).toMatchObject({ ok: true, selected: [server.id], systemPeer: server.id, stratum: 1 });
    if (selection.ok) expect(Math.abs(selection.offsetNs + CLOCK_OFFSET_NS)).toBeLessThanOrEqual(selection.errorBoundNs + READING_SLOP_NS);
  });

  it('three servers: ours, 2 s off, is a falseticker; the two chronyd are followed', () => {
    const { status, selection } = result('three');
    const ours = status[1] as UpstreamServerStatus;
    // Ours answered as a synchronized stratum-10 server 2 s ahead of the host: offset ~ +2 s - 3 ms.
    expect(ours).toMatchObject({ stratum: 10, reachable: true });
    expect(Math.abs((ours.offsetNs as number) - (FALSETICKER_OFFSET_NS - CLOCK_OFFSET_NS))).toBeLessThan(1e6);
    expect(selection.ok, JSON.stringify(selection)).toBe(true);
    if (!selection.ok) return;
    expect(selection.selected).toEqual([status[0]?.id, status[2]?.id]);
    expect(selection.servers.map((entry) => entry.verdict)).toEqual(['truechimer', 'falseticker', 'truechimer']);
    expect(selection.servers[1]?.reason).toMatch(/misses the intersection/);
    expect(Math.abs(selection.offsetNs + CLOCK_OFFSET_NS)).toBeLessThanOrEqual(selection.errorBoundNs + READING_SLOP_NS);
    console.log(`[ntp-client e2e] three servers: combined offset ${(selection.offsetNs / 1e6).toFixed(4)} ms +- ${(selection.errorBoundNs / 1e3).toFixed(1)} us; falseticker at ${((ours.offsetNs as number) / 1e9).toFixed(4)} s`);
  });

  it('two servers 2 s apart: no majority, nothing followed, and it says so', () => {
    const { status, selection } = result('two');
    expect(status.every((server) => server.reachable)).toBe(true);
    expect(selection).toMatchObject({ ok: false, code: 'noMajority' });
    if (selection.ok) return;
    expect(selection.reason).toMatch(/no majority of the 2 usable servers agrees/);
    expect(selection.servers.map((entry) => entry.verdict)).toEqual(['falseticker', 'falseticker']);
  });
});
