// Precision on real kernels (issue 13): N user-mode-linux guests (default 3) run the packed tarball
// as the systemd service on their kernel clocks, started with their clocks stepped apart and their
// oscillators detuned (adjtimex --tick). Once they agree, every --interval seconds for --minutes,
// chronyd -Q in each guest measures its clock against the host's (a chronyd -x on the lab bridge),
// and the spread (max - min over guests) is recorded. Prints a table and writes
// bench-results/vm.json. A benchmark reports; it never fails on a number. Needs root.
//
//   npx tsx scripts/bench/vm.ts [--guests 3] [--minutes 5] [--interval 5] [--poll-interval 1]
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { kernelBaseFrequencyPpm, kernelTimex, offsetsNs, sleep, spread, statuses, waitAgreed, waitSpreadBelow } from '../../lab/vm/cluster.ts';
import { VmLab, vmLabAvailable } from '../../lab/vm/lab.ts';
import { enableService, installOnGuest, packAndInstall } from '../../lab/vm/product.ts';

const { values } = parseArgs({
  options: {
    guests: { type: 'string', default: '3' },
    minutes: { type: 'string', default: '5' },
    interval: { type: 'string', default: '5' },
    'poll-interval': { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench-results/vm.json' },
  },
});
const guestCount = Number(values.guests);
const minutes = Number(values.minutes);
const intervalS = Number(values.interval);
const pollIntervalS = Number(values['poll-interval']);
for (const [name, value] of [['guests', guestCount], ['minutes', minutes], ['interval', intervalS], ['poll-interval', pollIntervalS]] as const) {
  if (!(value > 0)) {
    process.stderr.write(`bench/vm: --${name}: a positive number\n`);
    process.exit(2);
  }
}
const available = vmLabAvailable();
if (!available.ok) {
  process.stderr.write(`bench/vm: ${available.reason}\n`);
  process.exit(2);
}

/** Guest i starts (i - mid) * 0.9 s off and (i - mid) * 100 ppm fast: up to +-2 s and +-100 ppm for 3-5 guests. */
const mid = (guestCount - 1) / 2;
const stepsS = Array.from({ length: guestCount }, (_, i) => Number(((i - mid) * 0.9).toFixed(3)));
const ticks = Array.from({ length: guestCount }, (_, i) => 10000 + Math.round(i - mid));

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? NaN;
}

const log = (line: string): void => {
  process.stderr.write(`bench/vm: ${line}\n`);
};
const lab = await VmLab.create({ guests: guestCount, log });
try {
  await packAndInstall(lab);
  await Promise.all(lab.guests.map(async (guest, i) => {
    await installOnGuest(guest);
    await guest.run(`date -s "@$(node -p 'Date.now() / 1000 + ${stepsS[i]}')" > /dev/null && adjtimex --tick ${ticks[i]}`);
  }));
  const startedMs = Date.now();
  await Promise.all(lab.guests.map((guest) => enableService(guest, { BERKELEY_AGENT_POLL_INTERVAL: String(pollIntervalS) })));
  await waitAgreed(lab.guests, 180_000);
  const synchronizedS = (Date.now() - startedMs) / 1000;
  await waitSpreadBelow(lab.guests, 1_000_000, 300_000);
  const under1msS = (Date.now() - startedMs) / 1000;
  log(`synchronized after ${synchronizedS.toFixed(1)} s, spread under 1 ms after ${under1msS.toFixed(1)} s; sampling for ${minutes} min`);
  const spreadsNs: number[] = [];
  const clusterMinusHostNs: number[] = [];
  const deadline = Date.now() + minutes * 60_000;
  while (Date.now() < deadline) {
    const offsets = await offsetsNs(lab.guests);
    spreadsNs.push(spread(offsets));
    clusterMinusHostNs.push(offsets.reduce((sum, value) => sum + value, 0) / offsets.length);
    await sleep(intervalS * 1000);
  }
  const timex = await Promise.all(lab.guests.map((guest) => kernelTimex(guest)));
  const frequenciesPpm = await Promise.all(lab.guests.map((guest) => kernelBaseFrequencyPpm(guest)));
  const reports = await statuses(lab.guests);
  const rss = await Promise.all(lab.guests.map(async (guest) => Number((await guest.run('ps -o rss= -p $(systemctl show -p MainPID --value berkeley-agent)')).trim()) / 1024));
  const sorted = [...spreadsNs].sort((a, b) => a - b);
  const rates = frequenciesPpm.map((frequencyPpm, i) => frequencyPpm + ((ticks[i] ?? 10000) - 10000) * 100);
  const result = {
    startedAt: new Date(startedMs).toISOString(),
    host: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? null, node: process.version, kernel: lab.kernel },
    guests: guestCount, pollIntervalS, stepsS, ticks, minutes, samples: spreadsNs.length,
    synchronizedAfterS: synchronizedS, spreadUnder1msAfterS: under1msS,
    spreadUs: { p50: percentile(sorted, 0.5) / 1e3, p90: percentile(sorted, 0.9) / 1e3, p99: percentile(sorted, 0.99) / 1e3, max: (sorted.at(-1) ?? NaN) / 1e3 },
    clusterMinusHostUs: { first: (clusterMinusHostNs[0] ?? NaN) / 1e3, last: (clusterMinusHostNs.at(-1) ?? NaN) / 1e3 },
    kernel: timex.map((t, i) => ({ guest: lab.guests[i]?.name, tick: t.tick, frequencyPpm: frequenciesPpm[i], effectiveRatePpm: rates[i], maxerrorUs: t.maxerror, esterrorUs: t.esterror, status: t.status })),
    agents: reports.map((r, i) => ({ guest: lab.guests[i]?.name, role: r?.role, rmsOffsetNs: r?.tracking?.rmsOffsetNs, rssMB: rss[i], rxTimestamps: r?.timestamps?.rx })),
    // The round trip the master measured to each member (its best probe of the last round).
    masterDelaysUs: (reports.find((r) => r?.role === 'master')?.peers ?? []).map((peer: { nodeId: string; delayNs: number | null }) => ({ member: peer.nodeId, delayUs: peer.delayNs === null ? null : peer.delayNs / 1e3 })),
  };
  mkdirSync(path.dirname(values.out ?? 'bench-results/vm.json'), { recursive: true });
  writeFileSync(values.out ?? 'bench-results/vm.json', `${JSON.stringify(result, null, 2)}\n`);
  const row = (label: string, value: string): void => {
    process.stdout.write(`${label.padEnd(40)} ${value}\n`);
  };
  row('guests / poll interval', `${guestCount} / ${pollIntervalS} s`);
  row('synchronized after', `${synchronizedS.toFixed(1)} s`);
  row('spread under 1 ms after', `${under1msS.toFixed(1)} s`);
  row(`spread (chrony, ${spreadsNs.length} samples) p50/p90/p99/max`, `${result.spreadUs.p50.toFixed(1)} / ${result.spreadUs.p90.toFixed(1)} / ${result.spreadUs.p99.toFixed(1)} / ${result.spreadUs.max.toFixed(1)} us`);
  row('effective rates (freq + tick error)', rates.map((r) => `${r.toFixed(2)}`).join(', ') + ' ppm');
  row('kernel maxerror / esterror', timex.map((t) => `${t.maxerror}/${t.esterror}`).join(', ') + ' us');
  row('master -> member delay (best probe)', result.masterDelaysUs.map((d: { delayUs: number | null }) => d.delayUs === null ? '-' : d.delayUs.toFixed(0)).join(', ') + ' us');
  row('receive timestamps', reports.map((r) => String(r?.timestamps?.rx)).join(', '));
  row('agent RSS', rss.map((m) => m.toFixed(1)).join(', ') + ' MB');
  row('agents\' own rms offset', reports.map((r) => r?.tracking?.rmsOffsetNs == null ? '-' : `${(r.tracking.rmsOffsetNs / 1e3).toFixed(1)}`).join(', ') + ' us');
  process.stdout.write(`wrote ${values.out}\n`);
} finally {
  await lab.destroy();
}
