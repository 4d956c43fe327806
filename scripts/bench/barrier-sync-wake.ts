// bench:barrier-sync-wake (no agents; root for the SCHED_FIFO way): the participant's side of a synchronized
// start alone, on this host. N waiter processes (long-lived, as in bench:barrier-sync) wait for one
// host CLOCK_REALTIME instant with waitForInstant, the code `barrier --synchronized` and `at` use,
// and record the host clock when the wait ends; the spread is the skew the wait itself adds. Ways
// of waiting: spin (the fallback), kernel (clock_nanosleep TIMER_ABSTIME), and kernel with a raised
// priority for the sleep (nice -10 through os.setPriority; SCHED_FIFO 1 through
// sched_setscheduler, which the commands use where permitted), each restored after the wake-up.
// Then what starting a command costs after the instant, as the commands do it (startCommand): each
// trial a fresh process (as every `at` or `barrier` is) waits for an instant 1.5 s ahead and starts
// CHILD through posix_spawnp (prepared while waiting), or through child_process.spawn; reported are
// the start call's return (the child has exec'd by then) and the child's own first reading of the
// clock (CHILD prints CLOCK_REALTIME in ns: `date +%s%N` by default, which includes its loader).
// Prints p50/p99/max and writes bench-results/barrier-sync-wake.json.
//
//   npx tsx scripts/bench/barrier-sync-wake.ts [--trials 50] [--waiters 4,16] [--ways spin,kernel,nice,fifo]
//       [--ahead-ms 60] [--window-ms 10] [--child 'date +%s%N']
// --ahead-ms: how far ahead the instant is; --window-ms: the timer sleeps until this long before it
// (SYNC_START_SPIN_NS), the last stretch is the kernel sleep or the spin.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { commandFor, hostRealtime, startCommand, waitForInstant, type SleepUntilHostNs } from '../../src/cli/sync-start.ts';
import { openAbsoluteSleep } from '../../src/clock/raw.ts';
import { CLOCK_REALTIME, loadClockNanosleep } from '../../src/native/libc.ts';
import { SYNC_START_SPIN_NS } from '../../src/core/limits.ts';

const SELF = fileURLToPath(import.meta.url);
const WAYS = ['spin', 'kernel', 'nice', 'fifo'] as const;
type Way = (typeof WAYS)[number];

/** The kernel sleep, at the usual priority or raised for the sleep, or why it cannot be had. */
function raisedSleep(way: Way): { sleepUntilNs: SleepUntilHostNs } | { error: string } {
  if (way === 'spin') return { error: 'spin asked for' };
  // 'fifo' is what the commands do (SCHED_FIFO 1 where permitted); the others sleep without it.
  const kernel = openAbsoluteSleep(CLOCK_REALTIME, 'CLOCK_REALTIME', loadClockNanosleep, { realtimePriority: way === 'fifo' });
  if ('error' in kernel || way !== 'nice') return kernel;
  return {
    sleepUntilNs(targetNs) {
      const before = os.getPriority();
      try {
        os.setPriority(-10);
      } catch {
        // EACCES: not permitted; sleep at the usual priority.
      }
      try {
        return kernel.sleepUntilNs(targetNs);
      } finally {
        os.setPriority(before);
      }
    },
  };
}

async function waiter(): Promise<void> {
  const hostNowNs = hostRealtime();
  const clock = { mode: 'kernel', hostOffsetNs: 0, hostAnchorErrorNs: 0, errorBoundNs: null };
  const sleepers = new Map(WAYS.map((way) => [way, raisedSleep(way)] as const));
  createInterface({ input: process.stdin }).on('line', (line) => {
    const request = JSON.parse(line) as { way: Way; instantNs: string; windowNs: number };
    void (async () => {
      const report = await waitForInstant(BigInt(request.instantNs), { hostNowNs, clock, sleepUntilHostNs: sleepers.get(request.way)!, spinNs: request.windowNs });
      process.stdout.write(`${JSON.stringify({ startedNs: report.startedHostNs, wokeBy: report.wokeBy })}\n`);
    })();
  });
  process.stdout.write('ready\n');
}

/** One start as `at TIME -- CHILD` does it, in this fresh process: prints the child's line, then ours. */
async function startOnce(via: string, instantNs: bigint, child: string[]): Promise<void> {
  const hostNowNs = hostRealtime();
  const prepared = via === 'posix_spawn' ? commandFor(child) : { error: 'spawn asked for' };
  const report = await waitForInstant(instantNs, { hostNowNs, clock: { mode: 'kernel', hostOffsetNs: 0, hostAnchorErrorNs: 0, errorBoundNs: null } });
  let how: object = {};
  const ran = await startCommand(child, report, prepared, hostNowNs, (started) => (how = started));
  process.stdout.write(`${JSON.stringify({ ...how, overshootNs: report.overshootNs, lateNs: report.lateNs, exitCode: ran.exitCode })}\n`);
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '50' },
      waiters: { type: 'string', default: '4,16' },
      ways: { type: 'string', default: WAYS.join(',') },
      child: { type: 'string', default: 'date +%s%N' },
      'ahead-ms': { type: 'string', default: '60' },
      'window-ms': { type: 'string', default: String(SYNC_START_SPIN_NS / 1e6) },
      out: { type: 'string', default: 'bench-results/barrier-sync-wake.json' },
    },
  });
  const trials = Number(values.trials);
  const aheadNs = BigInt(Math.round(Number(values['ahead-ms']) * 1e6));
  const windowNs = Math.round(Number(values['window-ms']) * 1e6);
  const sizes = String(values.waiters).split(',').map(Number);
  const ways = String(values.ways).split(',') as Way[];
  if (!Number.isInteger(trials) || trials < 1 || sizes.some((size) => !Number.isInteger(size) || size < 1 || size > 64) || ways.some((way) => !WAYS.includes(way))) {
    process.stderr.write(`bench:barrier-sync-wake: --trials must be a positive integer, --waiters a list of 1..64, --ways of ${WAYS.join(',')}\n`);
    process.exit(2);
  }
  const hostNowNs = hostRealtime();
  const largest = Math.max(...sizes);
  const children: { child: ChildProcess; next: () => Promise<string> }[] = await Promise.all(
    Array.from({ length: largest }, async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', SELF, '--waiter'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines: string[] = [];
      const wanted: ((line: string) => void)[] = [];
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const taker = wanted.shift();
        if (taker) taker(line);
        else lines.push(line);
      });
      const next = () => new Promise<string>((resolve) => (lines.length > 0 ? resolve(lines.shift()!) : wanted.push(resolve)));
      await next();
      return { child, next };
    }),
  );
  const load = () => os.loadavg().map((value) => value.toFixed(2)).join(' ');
  process.stderr.write(`${largest} waiter processes, ${trials} trials per size and way, instant ${values['ahead-ms']} ms ahead, timer until ${windowNs / 1e6} ms before it, ${os.cpus().length} cores, load ${load()}\n`);
  const results: object[] = [];
  const ask = async (group: typeof children, request: object) => {
    for (const { child } of group) child.stdin!.write(`${JSON.stringify(request)}\n`);
    return Promise.all(group.map(({ next }) => next().then((line) => JSON.parse(line) as Record<string, string>)));
  };
  for (const size of sizes) {
    for (const way of ways) {
      const skews: number[] = [];
      const afterInstant: number[] = [];
      for (let trial = 0; trial < trials; trial += 1) {
        const instantNs = hostNowNs() + aheadNs;
        const answers = await ask(children.slice(0, size), { way, instantNs: instantNs.toString(), windowNs });
        const moments = answers.map((answer) => Number(BigInt(answer.startedNs!) - instantNs));
        skews.push((Math.max(...moments) - Math.min(...moments)) / 1e3);
        afterInstant.push(...moments.map((ns) => ns / 1e3));
      }
      const summary = { kind: 'wait', waiters: size, way, trials, aheadMs: Number(aheadNs) / 1e6, windowMs: windowNs / 1e6, skewUs: percentiles(skews), afterInstantUs: percentiles(afterInstant) };
      results.push(summary);
      process.stdout.write(
        `${String(size).padStart(3)} waiters  ${way.padEnd(7)} ${String(values['ahead-ms']).padStart(4)}/${String(windowNs / 1e6).padStart(3)} ms  skew p50 ${summary.skewUs.p50.toFixed(1).padStart(8)} µs  p99 ${summary.skewUs.p99.toFixed(1).padStart(8)}  max ${summary.skewUs.max.toFixed(1).padStart(8)}   woke after the instant p50 ${summary.afterInstantUs.p50.toFixed(1)} µs p99 ${summary.afterInstantUs.p99.toFixed(1)}\n`,
      );
    }
  }
  for (const { child } of children) child.stdin!.end();
  // Starting a command after the instant: a fresh process per trial, one at a time.
  const childCommand = String(values.child).split(' ').filter((word) => word !== '');
  const check = spawnSync(childCommand[0]!, childCommand.slice(1), { encoding: 'utf8' });
  if (check.status === 0 && /^\d{18,}$/.test(check.stdout.trim())) {
    for (const via of ['spawn', 'posix_spawn']) {
      const called: number[] = [];
      const childRead: number[] = [];
      let late = 0;
      for (let trial = 0; trial < Math.min(trials, 30); trial += 1) {
        const instantNs = hostNowNs() + 1_500_000_000n;
        const once_ = spawn(process.execPath, ['--import', 'tsx', SELF, '--once', via, instantNs.toString(), ...childCommand], { stdio: ['ignore', 'pipe', 'inherit'] });
        let output = '';
        once_.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
        await once(once_, 'close');
        const lines = output.trim().split('\n');
        const childLine = lines.find((line) => /^\d{18,}$/.test(line));
        const ours = JSON.parse(lines.at(-1) ?? '{}') as { via?: string; startedAfterNs?: number; lateNs?: number };
        if (childLine === undefined || ours.startedAfterNs === undefined || ours.via !== via) {
          process.stderr.write(`a ${via} trial said: ${output.trim().slice(0, 300)}\n`);
          continue;
        }
        if ((ours.lateNs ?? 0) > 0) late += 1;
        called.push(ours.startedAfterNs / 1e3);
        childRead.push(Number(BigInt(childLine) - instantNs) / 1e3);
      }
      const summary = { kind: 'command', via, child: childCommand, trials: called.length, late, startCallReturnedAfterUs: percentiles(called), childClockAfterUs: percentiles(childRead) };
      results.push(summary);
      process.stdout.write(
        `${via.padEnd(11)} ${JSON.stringify(childCommand.join(' '))} after the instant: the start call returned p50 ${summary.startCallReturnedAfterUs.p50.toFixed(0)} µs p99 ${summary.startCallReturnedAfterUs.p99.toFixed(0)} max ${summary.startCallReturnedAfterUs.max.toFixed(0)}; the child read the clock p50 ${summary.childClockAfterUs.p50.toFixed(0)} µs p99 ${summary.childClockAfterUs.p99.toFixed(0)} max ${summary.childClockAfterUs.max.toFixed(0)} (${called.length} trials${late > 0 ? `, ${late} late` : ''})\n`,
      );
    }
  } else {
    process.stderr.write(`--child ${JSON.stringify(values.child)} does not print CLOCK_REALTIME in ns; the command's start not measured\n`);
  }
  const out = String(values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ startedAt: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version, loadAverage: os.loadavg() }, results }, null, 2)}\n`);
  process.stderr.write(`load ${load()}; written to ${out}\n`);
}

if (process.argv[2] === '--waiter') void waiter();
else if (process.argv[2] === '--once') void startOnce(process.argv[3]!, BigInt(process.argv[4]!), process.argv.slice(5));
else
  main().catch((error: unknown) => {
    process.stderr.write(`bench:barrier-sync-wake: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
