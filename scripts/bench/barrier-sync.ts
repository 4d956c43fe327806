// `npm run bench:barrier-sync` (root: network namespaces): how close together participants start.
// Agents run in network namespaces (one per host, virtual clocks, mDNS, the highest key master);
// each participant is a long-lived process in its host's namespace that does what the `barrier` and
// `at` commands do once started (barrier-sync-participant.ts) and records the host's CLOCK_REALTIME
// the moment it is released. Namespaces share the host clock, so the spread of those readings is the
// true skew. For 4 and 16 participants (round-robin over the hosts): plain release (on arrival),
// --synchronized (at the master's release instant) and `at` (an instant 300 ms ahead). Prints
// p50/p99/max skew per mode (and how late after the instant the waits ended, and how they waited:
// clock_nanosleep or the spin fallback) and writes bench-results/barrier-sync.json. It reports; it
// never fails on a number. The participants do not start a command: what that adds is measured by
// bench:barrier-sync-wake (scripts/bench/barrier-sync-wake.ts).
//
//   npm run bench:barrier-sync [-- --trials 100] [--participants 4,16] [--hosts 4] [--out FILE]
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';
import { NetnsLab, netnsAvailable, sleep } from '../../lab/netns/netns.ts';
import { startAgent, statusOf, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';

const PARTICIPANT = fileURLToPath(new URL('./barrier-sync-participant.ts', import.meta.url));

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '100' },
    participants: { type: 'string', default: '4,16' },
    hosts: { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench-results/barrier-sync.json' },
  },
});

interface Participant {
  child: ChildProcess;
  pending: Map<number, (answer: Answer) => void>;
}

interface Answer {
  id: number;
  exitCode: number;
  releasedNs: string;
  lateNs: number | null;
  /** How far past its target the participant's wait ended, ns (synchronized and at). */
  overshootNs?: number | null;
  /** How it waited the last stretch (synchronized and at). */
  wokeBy?: string | null;
  error?: string;
}

let nextId = 1;
function ask(participant: Participant, request: object): Promise<Answer> {
  const id = nextId++;
  return new Promise((resolve) => {
    participant.pending.set(id, resolve);
    participant.child.stdin?.write(`${JSON.stringify({ ...request, id })}\n`);
  });
}

function startParticipant(lab: NetnsLab, host: NetnsLab['hosts'][number]): Promise<Participant> {
  const child = lab.spawn(host, process.execPath, ['--import', 'tsx', PARTICIPANT]);
  const participant: Participant = { child, pending: new Map() };
  return new Promise((resolve) => {
    let buffer = '';
    // Buffers decoded here, not setEncoding: the lab keeps the same chunks in its output ring, which
    // needs them as Buffers (strings broke it once the ring overflowed, at 100 trials).
    const decoder = new StringDecoder('utf8');
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += decoder.write(chunk);
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const message = JSON.parse(line) as Answer & { ready?: boolean };
        if (message.ready) resolve(participant);
        else participant.pending.get(message.id)?.(message);
      }
    });
  });
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

type Mode = 'plain' | 'synchronized' | 'at';

interface Summary {
  participants: number;
  mode: Mode;
  trials: number;
  /** The agents' clocks' spread (max - min of their offsets from the host clock) before the mode's trials, µs. */
  clockSpreadUs: number;
  /** Spread of the participants' release moments (host CLOCK_REALTIME) per trial, µs. */
  skewUs: { p50: number; p99: number; max: number };
  /** Participants that started late (the release or the command came after the instant). */
  late: number;
  /** How far past the instant (its host target) each participant's wait ended, µs (synchronized and at). */
  afterInstantUs: { p50: number; p99: number; max: number } | null;
  /** How the participants waited the last stretch: counts per way (clock_nanosleep, spin, none when late). */
  wokeBy: Record<string, number>;
  failures: number;
}

async function main(): Promise<void> {
  const availability = netnsAvailable();
  if (!availability.ok) {
    process.stderr.write(`bench:barrier-sync: needs network namespaces (root): ${availability.reason}\n`);
    process.exit(2);
  }
  const trials = Number(values.trials);
  const hostCount = Number(values.hosts);
  const sizes = String(values.participants).split(',').map(Number);
  if (!Number.isInteger(trials) || trials < 1 || !Number.isInteger(hostCount) || hostCount < 2 || hostCount > 32 || sizes.some((size) => !Number.isInteger(size) || size < 2 || size > 64)) {
    process.stderr.write('bench:barrier-sync: --trials must be a positive integer, --hosts 2..32 and --participants a list of 2..64\n');
    process.exit(2);
  }
  const lab = await NetnsLab.create({ hosts: hostCount, prefix: 'bsync' });
  try {
    const agents: AgentProcess[] = lab.hosts.map((host) => startAgent(lab, host, `node-${host.index}`, ['--interface', host.iface, '--poll-interval', '1', '--discovery-window', '2', '--log-level', 'warn']));
    const agreement = await waitForAgreement(lab, agents, 60_000);
    const master = agents.find((agent) => agent.nodeId === agreement.masterId)!;
    // Let the delay filters fill (the margin uses them) and the clocks settle.
    await sleep(8000);
    const largest = Math.max(...sizes);
    const participants = await Promise.all(Array.from({ length: largest }, (_, index) => startParticipant(lab, lab.hosts[index % hostCount]!)));
    process.stderr.write(`${hostCount} hosts in namespaces, master ${agreement.masterId}, ${largest} participant processes; ${trials} trials per size and mode\n`);
    const summaries: Summary[] = [];
    for (const size of sizes) {
      for (const mode of ['plain', 'synchronized', 'at'] as const) {
        // How far apart the agents' clocks are (each one's offset from the host clock): a floor under any skew.
        const offsets = (await Promise.all(agents.map((agent) => statusOf(lab, agent)))).map((report) => report?.clock.hostOffsetNs ?? Number.NaN);
        const clockSpreadUs = (Math.max(...offsets) - Math.min(...offsets)) / 1e3;
        const skews: number[] = [];
        const afterInstant: number[] = [];
        const wokeBy: Record<string, number> = {};
        let late = 0;
        let failures = 0;
        for (let trial = 0; trial < trials; trial += 1) {
          const group = participants.slice(0, size);
          let answers: Answer[];
          if (mode === 'at') {
            const report = await statusOf(lab, master);
            const instantNs = BigInt(Date.now()) * 1_000_000n + BigInt(report?.clock.hostOffsetNs ?? 0) + 300_000_000n;
            answers = await Promise.all(group.map((participant) => ask(participant, { kind: 'at', instantNs: instantNs.toString() })));
          } else {
            const name = `b-${size}-${mode}-${trial}`;
            const synchronized = mode === 'synchronized';
            const waiters = group.slice(0, -1).map((participant) => ask(participant, { kind: 'barrier', name, count: null, synchronized }));
            for (let waited = 0; ; waited += 5) {
              const open = (await statusOf(lab, master))?.barriers.open?.find((entry) => entry.name === name);
              if (open !== undefined && open.present === size - 1) break;
              if (waited > 20_000) throw new Error(`${name}: the master never counted ${size - 1} waiters`);
              await sleep(5);
            }
            // Let the last confirmations land, as when participants arrive over seconds.
            await sleep(30);
            answers = await Promise.all([...waiters, ask(group[size - 1]!, { kind: 'barrier', name, count: size - 1, synchronized })]);
          }
          const released = answers.filter((answer) => answer.error === undefined && answer.exitCode === 0 && answer.releasedNs !== '');
          failures += answers.length - released.length;
          late += released.filter((answer) => (answer.lateNs ?? 0) > 0).length;
          for (const answer of released) {
            if (typeof answer.overshootNs === 'number' && (answer.lateNs ?? 0) === 0) afterInstant.push(answer.overshootNs / 1e3);
            if (typeof answer.wokeBy === 'string') wokeBy[answer.wokeBy] = (wokeBy[answer.wokeBy] ?? 0) + 1;
          }
          if (released.length < 2) continue;
          const moments = released.map((answer) => BigInt(answer.releasedNs));
          const spreadNs = moments.reduce((a, b) => (b > a ? b : a)) - moments.reduce((a, b) => (b < a ? b : a));
          skews.push(Number(spreadNs) / 1e3);
        }
        skews.sort((a, b) => a - b);
        afterInstant.sort((a, b) => a - b);
        const summary: Summary = {
          participants: size,
          mode,
          trials,
          clockSpreadUs,
          skewUs: { p50: percentile(skews, 0.5), p99: percentile(skews, 0.99), max: skews.at(-1) ?? Number.NaN },
          late,
          afterInstantUs: afterInstant.length === 0 ? null : { p50: percentile(afterInstant, 0.5), p99: percentile(afterInstant, 0.99), max: afterInstant.at(-1)! },
          wokeBy,
          failures,
        };
        summaries.push(summary);
        process.stdout.write(
          `${String(size).padStart(3)} participants  ${mode.padEnd(12)}  skew p50 ${summary.skewUs.p50.toFixed(1).padStart(9)} µs  p99 ${summary.skewUs.p99.toFixed(1).padStart(9)} µs  max ${summary.skewUs.max.toFixed(1).padStart(9)} µs  late ${late}/${trials * size}${summary.afterInstantUs === null ? '' : `  woke p50 ${summary.afterInstantUs.p50.toFixed(0)} µs after`}  clocks ${clockSpreadUs.toFixed(1)} µs apart${failures > 0 ? `  failures ${failures}` : ''}\n`,
        );
      }
    }
    const out = String(values.out);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      out,
      `${JSON.stringify({ startedAt: new Date().toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? null, node: process.version, loadAverage: os.loadavg() }, hosts: hostCount, summaries }, null, 2)}\n`,
    );
    process.stderr.write(`written to ${out}\n`);
    for (const participant of participants) participant.child.stdin?.end();
  } finally {
    await lab.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:barrier-sync: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
