// The daemon on the kernel clock, end to end in one process: an agent started with --clock system
// over a fake adjtimex (never the real one) and a virtual-clock peer on loopback. The corrections
// of real Berkeley rounds must reach the kernel as the driver's writes: an initial step, the
// frequency, STA_UNSYNC cleared with error estimates once synchronized; and nothing after stop.
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { buildRunConfig } from '../src/daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../src/daemon/daemon.ts';
import { ADJ_ESTERROR, ADJ_FREQUENCY, ADJ_MAXERROR, ADJ_NANO, ADJ_SETOFFSET, ADJ_STATUS, STA_UNSYNC } from '../src/clock/timex.ts';
import { FakeKernel } from './support/fake-kernel.ts';
import { installLifecycle } from '../src/daemon/lifecycle.ts';
import { sleep } from '../lab/netns/netns.ts';

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

/** What startDaemon needs to put the kernel clock driver over `kernel` (never the real syscall). */
function onFakeKernel(kernel: FakeKernel) {
  return {
    syscall: kernel,
    loadSyscall: () => ({ error: 'tests never load the real adjtimex' }),
    capCheck: () => true,
    procDir: emptyProc,
    platform: 'linux' as const,
  };
}

function config(nodeId: string, priority: number, clock: string, extra: Record<string, unknown> = {}) {
  return buildRunConfig({
    'node-id': nodeId,
    priority,
    clock,
    port: 0,
    bind: '127.0.0.1',
    mdns: false,
    http: 'none',
    // No NTP server on this machine's port 123.
    'ntp-port': 0,
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
    const system = await startDaemon(config('kern', 200, 'system'), logger, undefined, onFakeKernel(kernel));
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

describe('a member on the kernel clock publishes its error bound (fake adjtimex)', () => {
  it('sets maxerror to the bound and esterror (half the measurement round trip) no larger, after each correction', async () => {
    const kernel = new FakeKernel({ freq: 0 });
    const logger = pino({ level: 'silent' });
    // The virtual agent is the master: the kernel agent is a member with a bound above 0.
    const master = await startDaemon(config('bound-virt', 200, 'virtual', { 'virtual-offset': 0.002 }), logger);
    daemons.push(master);
    const member = await startDaemon(config('bound-kern', 100, 'system'), logger, undefined, onFakeKernel(kernel));
    daemons.push(member);
    master.agent.addPeer(member.listen);
    member.agent.addPeer(master.listen);
    const deadline = Date.now() + 20_000;
    let status = member.agent.status();
    while (Date.now() < deadline && !(status.role === 'slave' && status.clock.errorBoundNs !== null && status.tracking.updates >= 6)) {
      await sleep(100);
      status = member.agent.status();
    }
    expect(status.clock.errorBoundNs, 'the member has a bound').not.toBeNull();
    const synchronizedWrites = kernel.writes().filter((call) => (call.request.modes & (ADJ_STATUS | ADJ_ESTERROR | ADJ_MAXERROR)) === (ADJ_STATUS | ADJ_ESTERROR | ADJ_MAXERROR));
    const last = synchronizedWrites.at(-1)!.request;
    const boundNs = status.clock.errorBoundNs as number;
    // Written at the last correction (at most a poll interval before this status): the bound has
    // grown since by 15 ppm of that time (a few us at most), and the kernel takes whole us, rounded up.
    expect(last.maxerror as number).toBeGreaterThanOrEqual(1);
    expect((last.maxerror as number) * 1000).toBeLessThanOrEqual(boundNs + 1000);
    expect((last.maxerror as number) * 1000).toBeGreaterThan(boundNs - 20_000);
    expect(last.esterror as number).toBeLessThanOrEqual(last.maxerror as number);
  }, 40_000);
});

describe('an internal error on the kernel clock', () => {
  it('ends the slew (the kernel back at its base frequency), saves the state, sends LEAVE and exits 1', async () => {
    const kernel = new FakeKernel({ freq: 7 * 65_536 });
    const stateDir = mkdtempSync(path.join(tmpdir(), 'berkeley-crash-state-'));
    const logger = pino({ level: 'silent' });
    try {
      const system = await startDaemon(config('crash', 200, 'system', { 'state-dir': stateDir }), logger, undefined, onFakeKernel(kernel));
      daemons.push(system);
      const peer = await startDaemon(config('crash-peer', 100, 'virtual'), logger);
      daemons.push(peer);
      system.agent.addPeer(peer.listen);
      peer.agent.addPeer(system.listen);
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !(system.agent.status().role === 'master' && system.agent.status().peers.some((p) => p.nodeId === 'crash-peer' && p.lastHeardAgoMs !== null))) await sleep(100);
      expect(system.agent.status().role).toBe('master');
      while (Date.now() < deadline && peer.agent.status().masterId !== 'crash') await sleep(50);
      expect(peer.agent.status().masterId).toBe('crash');

      // A slew in progress, as a correction leaves one: the kernel runs 400 ppm off its base.
      const baseFreq = kernel.timex.freq;
      const driver = (system.agent as unknown as { options: { clock: { slew(phaseNs: number, ratePpm: number): void } } }).options.clock;
      driver.slew(50_000_000, 400);
      expect(Math.round((kernel.timex.freq - baseFreq) / 65_536)).toBe(400);

      const fakeProcess = new EventEmitter() as EventEmitter & { exit: (code: number) => void };
      const exited = new Promise<number>((resolve) => (fakeProcess.exit = resolve));
      installLifecycle({ daemon: system, logger, process: fakeProcess as never });
      fakeProcess.emit('uncaughtException', new Error('injected failure'), 'uncaughtException');
      // Synchronously, before anything else may run: the slew ended, the state on disk.
      expect(kernel.timex.freq).toBe(baseFreq);
      const saved = JSON.parse(readFileSync(path.join(stateDir, 'state.json'), 'utf8')) as { nodeId: string; term: number };
      expect(saved).toMatchObject({ nodeId: 'crash', term: system.agent.status().term });
      expect(await exited).toBe(1);
      daemons.splice(daemons.indexOf(system), 1);
      // The peer heard the LEAVE: it is electing (or master) at once, without waiting for the master timeout.
      const leftDeadline = Date.now() + 3000;
      while (Date.now() < leftDeadline && peer.agent.status().masterId === 'crash') await sleep(50);
      expect(peer.agent.status().masterId).not.toBe('crash');
      const writesAfter = kernel.writes().length;
      await sleep(300);
      expect(kernel.writes().length, 'nothing touches the kernel after the crash stop').toBe(writesAfter);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 40_000);
});
