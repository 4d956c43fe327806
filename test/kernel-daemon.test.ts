// The daemon on the kernel clock, end to end in one process: an agent started with --clock system
// over a fake adjtimex (never the real one) and a virtual-clock peer on loopback. The corrections
// of real Berkeley rounds must reach the kernel as the driver's writes: an initial step, the
// frequency, STA_UNSYNC cleared with error estimates once synchronized; and nothing after stop.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { buildRunConfig } from '../src/daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../src/daemon/daemon.ts';
import { ADJ_ESTERROR, ADJ_FREQUENCY, ADJ_MAXERROR, ADJ_NANO, ADJ_SETOFFSET, ADJ_STATUS, STA_UNSYNC } from '../src/clock/timex.ts';
import { FakeKernel } from './support/fake-kernel.ts';
import { sleep } from './e2e/netns.ts';

// Safety net: even a path that reached the real binding would get one that refuses every write.
vi.mock('../src/clock/timex.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/clock/timex.ts')>();
  return { ...actual, loadTimexSyscall: vi.fn(() => actual.loadTimexSyscall({ readOnly: true })) };
});

const emptyProc = mkdtempSync(path.join(tmpdir(), 'berkeley-proc-'));
const daemons: RunningDaemon[] = [];
afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stopAbruptly()));
  rmSync(emptyProc, { recursive: true, force: true });
});

function config(nodeId: string, priority: number, clock: string, extra: Record<string, unknown> = {}) {
  return buildRunConfig({
    'node-id': nodeId,
    priority,
    clock,
    port: 0,
    bind: '127.0.0.1',
    mdns: false,
    http: 'none',
    cluster: `kernel-${process.pid}`,
    'poll-interval': 0.2,
    'discovery-window': 0.2,
    ...extra,
  });
}

describe('an agent on the kernel clock (fake adjtimex)', () => {
  it('disciplines the kernel through the driver: step, frequency, STA_UNSYNC cleared; silent after stop', async () => {
    const kernel = new FakeKernel({ freq: 7 * 65_536 });
    const logger = pino({ level: 'silent' });
    const system = await startDaemon(config('kern', 200, 'system'), logger, undefined, {
      syscall: kernel,
      loadSyscall: () => ({ error: 'tests never load the real adjtimex' }),
      capCheck: () => true,
      procDir: emptyProc,
      platform: 'linux',
    });
    daemons.push(system);
    // A peer 2 ms ahead: the steps stay below HostClock's 5 ms re-anchoring check.
    const virtual = await startDaemon(config('virt', 100, 'virtual', { 'virtual-offset': 0.002 }), logger);
    daemons.push(virtual);
    system.agent.addPeer(virtual.listen);
    virtual.agent.addPeer(system.listen);

    const deadline = Date.now() + 20_000;
    let status = system.agent.status();
    while (Date.now() < deadline && !(status.clock.synchronized && status.clock.kernel?.unsync === false && status.tracking.updates >= 6)) {
      await sleep(100);
      status = system.agent.status();
    }
    expect(status.role).toBe('master');
    expect(status.clock.mode).toBe('system');
    expect(status.clock.hostOffsetNs).toBe(0);
    expect(status.clock.virtualDriftPpm).toBeNull();
    expect(status.clock.synchronized).toBe(true);
    expect(status.clock.kernel).toMatchObject({ unsync: false });
    // With no drift file the kernel clock starts from the kernel's own frequency.
    expect(status.tracking.updates).toBeGreaterThanOrEqual(6);

    const writes = kernel.writes();
    const steps = writes.filter((call) => call.via === 'clockAdjtime' && (call.request.modes & ADJ_SETOFFSET) !== 0);
    expect(steps.length, 'initial synchronization steps the kernel clock').toBeGreaterThanOrEqual(1);
    expect(steps.every((call) => (call.request.modes & ADJ_NANO) !== 0)).toBe(true);
    const frequencyWrites = writes.filter((call) => (call.request.modes & ADJ_FREQUENCY) !== 0);
    expect(frequencyWrites.length).toBeGreaterThan(0);
    // Started from the kernel's 7 ppm, the loop has only nudged it.
    expect(Math.abs((frequencyWrites[0]?.request.freq ?? 0) / 65_536 - 7)).toBeLessThan(1);
    const synchronizedWrites = writes.filter(
      (call) => (call.request.modes & ADJ_STATUS) !== 0 && ((call.request.status ?? 0) & STA_UNSYNC) === 0 && (call.request.modes & (ADJ_ESTERROR | ADJ_MAXERROR)) === (ADJ_ESTERROR | ADJ_MAXERROR),
    );
    expect(synchronizedWrites.length, 'once synchronized, STA_UNSYNC is cleared with error estimates').toBeGreaterThan(0);
    expect(kernel.timex.status & STA_UNSYNC).toBe(0);

    // After a graceful stop the driver writes nothing more (no slew end, no frequency).
    await system.stop();
    daemons.splice(daemons.indexOf(system), 1);
    const after = kernel.writes().length;
    await sleep(600);
    expect(kernel.writes().length).toBe(after);
  }, 40_000);
});
