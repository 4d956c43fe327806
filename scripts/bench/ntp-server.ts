// NTP server precision as a real client sees it (issue 17): the server (src/net/ntp-server.ts) in
// this process on loopback serves the host clock plus a fixed offset, and Debian's chronyd -Q
// (measure only, never sets the clock) measures it again and again. Every error (what chrony
// measured minus the offset served) is noise plus our stamping bias: the kernel receive stamp, and
// the transmit stamp read before Node's send path.
//
//   npx tsx scripts/bench/ntp-server.ts [--runs 20] [--offset-us 2500] [--out bench-results/ntp-server.json]
//
// A benchmark reports; it never fails on a number.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { findChronyd, runChronyQ } from '../../lab/ntp/chrony-q.ts';
import { HostClock } from '../../src/clock/host.ts';
import { startNtpServer } from '../../src/net/ntp-server.ts';

function fail(message: string): never {
  console.error(`ntp-server bench: ${message}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({ options: {
    runs: { type: 'string', default: '20' },
    'offset-us': { type: 'string', default: '2500' },
    out: { type: 'string', default: 'bench-results/ntp-server.json' },
  } });
} catch (error) {
  fail((error as Error).message);
}
const runs = Number(parsed.values.runs);
const offsetUs = Number(parsed.values['offset-us']);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) fail(`--runs must be an integer from 1 to 1000: ${parsed.values.runs}`);
if (!Number.isFinite(offsetUs) || Math.abs(offsetUs) > 1e6) fail(`--offset-us must be a number within +-1e6: ${parsed.values['offset-us']}`);

const chronyd = findChronyd();
if ('skip' in chronyd) fail(chronyd.skip);

const hostClock = new HostClock();
const offsetNs = BigInt(Math.round(offsetUs * 1000));
const started = await startNtpServer({
  port: 0, address: '127.0.0.1', logger: { warn: () => {}, info: () => {} },
  clock: {
    nowNs: () => hostClock.nowNs() + offsetNs,
    snapshot: () => ({ synchronized: true, stratum: 10, refid: 0x4252_4b4c, errorBoundNs: 0, rootDelayNs: 0, referenceTimeNs: null, precisionLog2: -20 }),
  },
});
if (!started.ok) fail(started.warning);
const server = started.server;

const errorsUs: number[] = [];
let failures = 0;
try {
  for (let run = 0; run < runs; run += 1) {
    const result = await runChronyQ(chronyd.path, '127.0.0.1', server.port, 10);
    if (result.wrongByNs === null) failures += 1;
    else errorsUs.push((result.wrongByNs - Number(offsetNs)) / 1000);
  }
} finally {
  await server.close();
}

const sorted = [...errorsUs].sort((a, b) => a - b);
const at = (fraction: number) => sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
const summary = {
  runs, offsetUs, failures, rxTimestamps: server.rxTimestamps, anchorErrorNs: hostClock.anchorErrorNs,
  errorUs: { first: errorsUs[0] ?? null, min: sorted[0] ?? null, p50: at(0.5), p90: at(0.9), max: sorted.at(-1) ?? null },
  counters: server.counters, errorsUs,
};
console.log(`NTP server measured by chronyd -Q on loopback (${runs} runs, served offset ${offsetUs} us, receive stamps: ${server.rxTimestamps})`);
console.log('error = chrony\'s "wrong by" minus the served offset, us');
console.log(`  first ${summary.errorUs.first}  min ${summary.errorUs.min}  p50 ${summary.errorUs.p50}  p90 ${summary.errorUs.p90}  max ${summary.errorUs.max}  (no measurement: ${failures})`);
mkdirSync(path.dirname(parsed.values.out), { recursive: true });
writeFileSync(parsed.values.out, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`written to ${parsed.values.out}`);
