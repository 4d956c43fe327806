// The upstream events in the log (src/daemon/event-log.ts): health changes and takeovers at info,
// a refused upstream at error, at most once per REJECT_LOG_INTERVAL_MS with a count of the rest.
import { describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { REJECT_LOG_INTERVAL_MS } from '../src/core/limits.ts';
import { NodeEventLog } from '../src/daemon/event-log.ts';

function capture(): { log: Logger; lines: { level: string; object: Record<string, unknown>; message: string }[] } {
  const lines: { level: string; object: Record<string, unknown>; message: string }[] = [];
  const at = (level: string) => (object: Record<string, unknown>, message: string) => void lines.push({ level, object, message });
  const log = { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), trace: at('trace') } as unknown as Logger;
  return { log, lines };
}

describe('NodeEventLog, upstream events', () => {
  it('logs health changes and takeovers at info, refusals at error', () => {
    const { log, lines } = capture();
    const events = new NodeEventLog(log, { nodeId: 'a', peersMax: 8 });
    events.record({ kind: 'upstream', healthy: true, clockClass: 1, why: null }, 0);
    events.record({ kind: 'upstream', healthy: false, clockClass: 0, why: 'no upstream server is usable' }, 1);
    events.record({ kind: 'upstream-takeover', from: 'b', term: 9 }, 2);
    events.record({ kind: 'upstream-refused', offsetNs: 3e9 + 0.4, limitNs: 600e9 }, 3);
    expect(lines.map((line) => [line.level, line.message.split(':')[0]])).toEqual([
      ['info', 'upstream healthy'],
      ['info', 'upstream lost'],
      ['info', 'took over as master'],
      ['error', 'upstream refused'],
    ]);
    expect(lines[1]?.object).toMatchObject({ healthy: false, clockClass: 0, why: 'no upstream server is usable' });
    expect(lines[3]?.object).toMatchObject({ offsetNs: 3e9, limitNs: 600e9 });
  });

  it('logs a refusal repeated at every upstream poll once per interval, counting the rest', () => {
    const { log, lines } = capture();
    const events = new NodeEventLog(log, { nodeId: 'a', peersMax: 8 });
    for (let atMs = 0; atMs <= REJECT_LOG_INTERVAL_MS; atMs += 1000) events.record({ kind: 'upstream-refused', offsetNs: 3e9, limitNs: 600e9 }, atMs);
    const refusals = lines.filter((line) => line.level === 'error');
    expect(refusals).toHaveLength(2);
    expect(refusals[1]?.object.suppressed).toBe(REJECT_LOG_INTERVAL_MS / 1000 - 1);
  });
});

describe('NodeEventLog, corrections no frame can carry', () => {
  it('logs an unsendable member correction at error, once per interval with a count, and the master\'s own differently', () => {
    const { log, lines } = capture();
    const events = new NodeEventLog(log, { nodeId: 'm', peersMax: 8 });
    // Every round (1 s) meets the same member again.
    for (let atMs = 0; atMs <= REJECT_LOG_INTERVAL_MS; atMs += 1000) events.record({ kind: 'correction-unsendable', nodeId: 'old', correctionNs: Number.NaN, round: atMs / 1000 + 1 }, atMs);
    expect(lines.map((line) => line.level)).toEqual(['error', 'error']);
    expect(lines[0]?.message).toMatch(/^correction not sent: no frame can carry it/);
    expect(lines[0]?.object).toMatchObject({ peer: 'old', round: 1 });
    expect(lines[1]?.object.suppressed).toBe(REJECT_LOG_INTERVAL_MS / 1000 - 1);
    events.record({ kind: 'correction-unsendable', nodeId: 'm', correctionNs: 1.8e19, round: 40 }, 3 * REJECT_LOG_INTERVAL_MS);
    expect(lines.at(-1)?.message).toMatch(/^own correction not applied/);
  });
});
