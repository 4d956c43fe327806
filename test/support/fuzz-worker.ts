// A worker thread for test/fuzz.test.ts: runs part of the decoder's burst property on the second
// core (a million decodes do not fit the test's time budget on one). Reports its frame counts, or
// fast-check's failure report (seed, path, counterexample).
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { decoderProperties, newStats } from '../../lab/fuzz-frames.ts';

export interface FuzzWorkerInput {
  seed: number;
  numRuns: number;
  burst: number;
}

export interface FuzzWorkerOutput {
  frames: number;
  accepted: number;
  failure: string | null;
}

const input = workerData as FuzzWorkerInput;
const stats = newStats();
const details = fc.check(decoderProperties(stats, input.burst).burst, { seed: input.seed, numRuns: input.numRuns }) as fc.RunDetails<[Uint8Array, Uint8Array, number]>;
const failure = details.failed ? `${fc.defaultReportMessage(details)}\n${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}` : null;
parentPort?.postMessage({ frames: stats.frames, accepted: stats.accepted, failure } satisfies FuzzWorkerOutput);
