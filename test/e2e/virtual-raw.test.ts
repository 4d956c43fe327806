// A real agent's virtual clock counts from CLOCK_MONOTONIC_RAW (issue 17, "Beside chrony"), shown
// without touching this machine's clock: a lone agent (--clock virtual, loopback, no mDNS) runs as
// master with nothing to correct it, so its clock minus CLOCK_MONOTONIC_RAW must stay constant.
// This test reads CLOCK_REALTIME and CLOCK_MONOTONIC_RAW itself (clock_gettime through koffi, the
// same binding the agent uses) around each status request: the agent's clock minus RAW is
// clock.hostOffsetNs (the agent's clock minus host realtime, at the reply) plus realtime minus RAW
// (which changes only at the host's adjtimex frequency, ppm, so the request's latency does not
// matter). It also checks that the agent says it runs on RAW (clock.virtualBase) and did not warn
// about falling back. The agent's own reading of host realtime has an error of at most its anchor's
// bound (clock.host.anchorErrorNs), which the tolerance includes.
//
// What this cannot show here: a host clock slewed or stepped under the agent (no test may move
// this machine's clock). On this host MONOTONIC and RAW differ by a few ppm at most, too little to
// tell the two bases apart over seconds; test/virtual-driver.test.ts drives a fake host clock
// through slews and steps, and the VM lab (guests' clocks may be moved) tests a real chronyd.
import { afterAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import type { StatusReport } from '../../src/daemon/status.ts';
import { CLOCK_MONOTONIC_RAW, CLOCK_REALTIME, loadClockGettime } from '../../src/native/libc.ts';
import { freePort, getStatus, LOOPBACK_ONLY, running, sleep, spawnCli, stopAllChildren, stopChild, waitFor } from '../../lab/processes.ts';

/** Rounding and the two clock_gettime calls of a pairing; the agent's anchor bounds are added. */
const MARGIN_NS = 20_000;
const SAMPLES = 6;
const SAMPLE_INTERVAL_MS = 1_000;

const binding = loadClockGettime();
if ('error' in binding) console.warn(`[virtual-raw e2e] SKIPPED: cannot read clocks through koffi (${binding.error})`);

function readNs(clockId: number): bigint {
  const timespec = new BigInt64Array(2);
  if (!('error' in binding) && binding.clockGettime(clockId, timespec) !== 0) throw new Error(`clock_gettime(${clockId}) failed`);
  return (timespec[0] as bigint) * 1_000_000_000n + (timespec[1] as bigint);
}

/** Host realtime minus RAW now, from the tightest of several realtime brackets around a RAW reading. */
function realMinusRawNs(): bigint {
  let best = { widthNs: 1n << 62n, realMinusRawNs: 0n };
  for (let read = 0; read < 16; read += 1) {
    const before = readNs(CLOCK_REALTIME);
    const raw = readNs(CLOCK_MONOTONIC_RAW);
    const after = readNs(CLOCK_REALTIME);
    if (after - before < best.widthNs) best = { widthNs: after - before, realMinusRawNs: (before + after) / 2n - raw };
  }
  return best.realMinusRawNs;
}

afterAll(stopAllChildren);

describe.skipIf('error' in binding)('a real agent\'s virtual clock runs on CLOCK_MONOTONIC_RAW', () => {
  it('says so, and its clock minus RAW stays constant while it is left alone', async () => {
    const udpPort = await freePort();
    const httpPort = await freePort();
    const child: ChildProcess = spawnCli([
      'run', ...LOOPBACK_ONLY, '--clock', 'virtual', '--virtual-offset', '0.25', '--port', String(udpPort),
      '--http', `127.0.0.1:${httpPort}`, '--node-id', 'raw-1', '--cluster', 'virtual-raw', '--discovery-window', '1',
      '--poll-interval', '0.5', '--log-format', 'json',
    ]);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output = (output + chunk).slice(-20_000)));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output = (output + chunk).slice(-20_000)));
    try {
      await waitFor('the agent to answer /status as master', 30_000, async () => {
        if (!running(child)) throw new Error(`the agent exited: ${output.slice(-3000)}`);
        const status = await getStatus(httpPort);
        return status?.role === 'master' ? status : undefined;
      }, () => output.slice(-2000));

      const samples: { virtualMinusRawNs: bigint; realMinusRawNs: bigint; status: StatusReport }[] = [];
      for (let sample = 0; sample < SAMPLES; sample += 1) {
        if (sample > 0) await sleep(SAMPLE_INTERVAL_MS);
        const before = realMinusRawNs();
        const status = await getStatus(httpPort);
        const after = realMinusRawNs();
        if (status === null) throw new Error(`no status: ${output.slice(-3000)}`);
        const realMinusRaw = (before + after) / 2n;
        samples.push({ virtualMinusRawNs: BigInt(status.clock.hostOffsetNs) + realMinusRaw, realMinusRawNs: realMinusRaw, status });
      }

      const first = samples[0] as (typeof samples)[number];
      const last = samples[samples.length - 1] as (typeof samples)[number];
      expect(first.status.clock.mode).toBe('virtual');
      expect(first.status.clock.virtualBase).toBe('monotonic-raw');
      expect(output).not.toMatch(/cannot read CLOCK_MONOTONIC_RAW/);
      // Nothing corrected the clock meanwhile (a lone master): any change would be the base's.
      expect(last.status.clock).toMatchObject({ steps: 0, slews: 0, frequencyPpm: 0 });
      // Started where the host clock was, plus --virtual-offset.
      expect(Math.abs(first.status.clock.hostOffsetNs - 250_000_000)).toBeLessThan(50_000_000);

      const anchorBoundNs = Math.max(...samples.map((s) => s.status.clock.host.anchorErrorNs));
      const movesNs = samples.map((s) => Number(s.virtualMinusRawNs - first.virtualMinusRawNs));
      const hostRateNs = Number(last.realMinusRawNs - first.realMinusRawNs);
      console.log(`[virtual-raw e2e] agent clock minus RAW moved by ${movesNs.join(', ')} ns over ${samples.length - 1} s ` +
        `(anchor bound ${anchorBoundNs} ns); host realtime minus RAW moved ${hostRateNs} ns meanwhile (the host's adjtimex frequency)`);
      for (const moveNs of movesNs) expect(Math.abs(moveNs)).toBeLessThanOrEqual(2 * anchorBoundNs + MARGIN_NS);
    } finally {
      await stopChild(child);
    }
  });
});
