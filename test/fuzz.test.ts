// Fuzzing the frame decoder and the protocol core (issue 7, "Hostile and broken input"): about a
// million random, hostile and mutated frames with fixed seeds. A failure prints fast-check's seed
// and path; `npx tsx scripts/fuzz.ts --frames N --seed S` runs the same generators for longer.
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FrameType, type Frame, type OutgoingFrame } from '../src/core/frames.ts';
import { COUNTER_MAX, PROTOCOL_VERSION } from '../src/core/limits.ts';
import { decodeFrame, encodeFrame } from '../src/wire/codec.ts';
import type { FuzzWorkerInput, FuzzWorkerOutput } from './support/fuzz-worker.ts';
import { buildNode, checkNodeAfter, clockNs, decoderProperties, hex, newStats, nodeProperties, simulationProperty, stampOutgoing, type FuzzStats } from '../lab/fuzz-frames.ts';

const SEED = 20_260_707;
/** Mutated datagrams per run of the burst property. */
const BURST = 200;
/** Longest input sequence fed to one node per run. */
const SEQUENCE = 40;
/** Runs of the burst property, half in a worker thread. */
const BURST_RUNS = 4_720;

const totals: { name: string; stats: FuzzStats; ms: number }[] = [];

function run<T extends unknown[]>(name: string, property: (stats: FuzzStats) => fc.IPropertyWithHooks<T>, numRuns: number, seedOffset: number): void {
  const stats = newStats();
  const started = performance.now();
  // A failure's shrinking is bounded, so that a failing run still ends within the test's time.
  fc.assert(property(stats), { seed: SEED + seedOffset, numRuns, interruptAfterTimeLimit: 60_000 });
  totals.push({ name, stats, ms: performance.now() - started });
  expect(stats.frames).toBeGreaterThan(0);
}

afterAll(() => {
  const frames = totals.reduce((sum, entry) => sum + entry.stats.frames, 0);
  const ms = totals.reduce((sum, entry) => sum + entry.ms, 0);
  for (const { name, stats, ms: took } of totals) {
    console.log(`fuzz ${name}: ${stats.frames} frames (${stats.accepted} decoded, ${stats.delivered} to a node) in ${(took / 1000).toFixed(1)} s`);
  }
  console.log(`fuzz total: ${frames} frames in ${(ms / 1000).toFixed(1)} s (${Math.round(frames / (ms / 1000))} frames/s), seed ${SEED}`);
});

describe('decodeFrame under hostile input', () => {
  it('(a) arbitrary bytes', () => run('decoder.bytes', (stats) => decoderProperties(stats, BURST).bytes, 15_000, 1), 60_000);
  it('(b) arbitrary msgpack values', () => run('decoder.msgpack', (stats) => decoderProperties(stats, BURST).msgpack, 8_000, 2), 60_000);
  it('(c) frames of every type with hostile fields, versions, types, keys and sizes', () => run('decoder.structured', (stats) => decoderProperties(stats, BURST).structured, 10_000, 3), 60_000);
  it('(d) valid frames mutated step by step (shrinkable)', () => run('decoder.mutated', (stats) => decoderProperties(stats, BURST).mutated, 4_000, 4), 60_000);
  it(`(d) valid frames mutated in bursts of ${BURST} (two threads)`, async () => {
    // Half the runs in a worker thread on the other core, half here, with different seeds.
    const input: FuzzWorkerInput = { seed: SEED + 50, numRuns: BURST_RUNS / 2, burst: BURST };
    // The worker loads its TypeScript through tsx's loader, registered in the thread itself.
    const entry = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL('./support/fuzz-worker.ts', import.meta.url).href)}); })`;
    const worker = new Worker(entry, { eval: true, workerData: input });
    const fromWorker = new Promise<FuzzWorkerOutput>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`fuzz worker exited with ${code}`)));
    });
    // Started, but the worker only runs once this thread is done with its half if it ran first:
    // yield until it is up, so that both halves overlap.
    await new Promise<void>((resolve) => worker.once('online', () => resolve()));
    run('decoder.burst', (stats) => decoderProperties(stats, BURST).burst, BURST_RUNS / 2, 5);
    const output = await fromWorker;
    await worker.terminate();
    totals.push({ name: 'decoder.burst (worker)', stats: { frames: output.frames, accepted: output.accepted, delivered: 0 }, ms: 0 });
    expect(output.failure).toBeNull();
  }, 120_000);
});

describe('ProtocolNode under hostile input', () => {
  it('(i) datagrams that fail to decode never reach the node and change nothing', () => run('node.invalid', (stats) => nodeProperties(stats, SEQUENCE).invalid, 400, 6), 60_000);
  it('(ii) decodable hostile frames and ticks: no exception, invariants hold', () => run('node.hostile', (stats) => nodeProperties(stats, SEQUENCE).hostile, 1_500, 7), 60_000);
  it('a frame of another cluster changes nothing but a counter', () => run('node.otherCluster', (stats) => nodeProperties(stats, SEQUENCE).otherCluster, 300, 8), 60_000);
  it('hostile frames injected into a running simulation', () => run('simulation', (stats) => simulationProperty(stats, 20), 40, 9), 60_000);

  // Found by this fuzzer: the decoder accepts terms up to Number.MAX_SAFE_INTEGER, and a node that
  // followed a coordinator in such a term went past 2^53 at its next election (terms no longer
  // exact, its frames refused by every peer). Nodes now ignore terms above TERM_ADOPT_MAX (2^52).
  it('a coordinator in term 2^53 - 1 is ignored: the follower stays in the exact range', () => {
    const subject = buildNode('fresh', 1);
    const coordinator = stampOutgoing({ v: PROTOCOL_VERSION, cluster: 'default', from: 'm', prio: 0, term: COUNTER_MAX, type: FrameType.coordinator, algorithm: 0 } as OutgoingFrame, 0n);
    const bytes = encodeFrame(coordinator);
    const decoded = decodeFrame(bytes);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    subject.node.receive(decoded.frame, { address: '10.0.0.99', port: 7412 }, clockNs(0), 0);
    subject.node.drain();
    subject.nowMs = 3000; // the master is silent for masterTimeoutMs: an election in term 2^53
    subject.node.tick(subject.nowMs);
    checkNodeAfter(subject, 0, () => 'coordinator in term 2^53 - 1, then 3 s of silence');
  });

  // Found by this fuzzer in the replay protection (src/core/node.ts recordSequence): with replay
  // protection off, heard() recorded every frame's (boot, seq), and a sequence number far below the
  // sender's highest shifted a BigInt by that distance (a throw at 2^52, megabytes below that).
  it('a sequence number far below the sender\'s highest does not throw (recordSequence)', () => {
    const subject = buildNode('fresh', 1);
    const hello = { v: PROTOCOL_VERSION, cluster: 'default', from: 'a', prio: 1, term: 0, boot: 1, to: '', toBoot: 0, type: FrameType.hello, wantReply: false, role: 0, masterId: null, masterPrio: null };
    for (const seq of [2 ** 52, 1]) {
      const decoded = decodeFrame(encodeFrame({ ...hello, seq, txNs: 0n } as unknown as Frame));
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) return;
      expect(() => subject.node.receive(decoded.frame, { address: '10.0.0.1', port: 7412 }, 0n, 0)).not.toThrow();
    }
  });
});
