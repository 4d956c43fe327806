// One participant of `npm run bench:barrier-sync`, run inside a host's network namespace for the
// whole benchmark (so that no process start lands in a trial). It does what `berkeley-agent barrier
// [--synchronized]` and `berkeley-agent at` do after their process started, with the same code
// (runBarrier, startAtRelease, runAt), and records the host's CLOCK_REALTIME the moment it is
// released. Requests and answers are JSON lines on stdin/stdout.
import { createInterface } from 'node:readline';
import { runBarrier, startAtRelease } from '../../src/cli/barrier.ts';
import { runAt } from '../../src/cli/at.ts';
import { hostRealtime } from '../../src/cli/sync-start.ts';

type Request =
  | { id: number; kind: 'barrier'; name: string; count: number | null; synchronized: boolean }
  | { id: number; kind: 'at'; instantNs: string };

const target = { host: '127.0.0.1', port: 7413 };
const hostNowNs = hostRealtime();

async function handle(request: Request): Promise<object> {
  if (request.kind === 'at') {
    let releasedNs = '';
    const outcome = await runAt({ time: { kind: 'absolute', instantNs: BigInt(request.instantNs) }, timeText: request.instantNs, target, allowUnsynchronized: false, command: null }, (report) => {
      releasedNs = report.startedHostNs;
    });
    return { id: request.id, exitCode: outcome.exitCode, releasedNs, lateNs: outcome.report?.lateNs ?? null, overshootNs: outcome.report?.overshootNs ?? null, wokeBy: outcome.report?.wokeBy ?? null };
  }
  const command = { name: request.name, count: request.count, wait: true, errorCode: 0, timeoutMs: 60_000, host: target.host, port: target.port, synchronized: request.synchronized };
  const outcome = await runBarrier(command);
  if (!request.synchronized) return { id: request.id, exitCode: outcome.exitCode, releasedNs: hostNowNs().toString(), lateNs: null };
  const started = await startAtRelease(outcome, command, hostNowNs);
  return { id: request.id, exitCode: outcome.exitCode, releasedNs: started.start?.startedHostNs ?? hostNowNs().toString(), lateNs: started.start?.lateNs ?? null, overshootNs: started.start?.overshootNs ?? null, wokeBy: started.start?.wokeBy ?? null, messages: started.messages };
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const request = JSON.parse(line) as Request;
  handle(request).then(
    (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`),
    (error: unknown) => process.stdout.write(`${JSON.stringify({ id: request.id, error: String(error) })}\n`),
  );
});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
