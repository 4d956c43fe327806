// Reading a lab cluster from outside: the agents' status and logs, the guests' kernels, and their
// clocks measured by chrony. Shared by the VM lab's tests and its benchmark.
import type { Guest } from './lab.ts';
import { agentStatus } from './product.ts';

/** status --json, read field by field. */
export type Status = Record<string, any>;

export { sleep } from '../netns/netns.ts';
import { sleep } from '../netns/netns.ts';

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(1000);
  }
}

export async function statuses(guests: Guest[]): Promise<(Status | null)[]> {
  return Promise.all(guests.map((guest) => agentStatus(guest) as Promise<Status | null>));
}

export interface LogLine {
  /** pino's time: ms on the guest's clock, which the agents keep within microseconds of each other. */
  time: number;
  msg: string;
  [field: string]: unknown;
}

/** The agent's JSON log lines in the guest's journal since `sinceMs` (guest clock). */
export async function agentLog(guest: Guest, sinceMs: number): Promise<LogLine[]> {
  const out = await guest.run(`journalctl -u berkeley-agent -o cat --no-pager --since @${Math.floor(sinceMs / 1000) - 1}`);
  return out.split('\n').flatMap((line) => {
    try {
      const entry = JSON.parse(line) as LogLine;
      return typeof entry.time === 'number' && entry.time >= sinceMs ? [entry] : [];
    } catch {
      return [];
    }
  });
}

export async function guestNowMs(guest: Guest): Promise<number> {
  return Number((await guest.run('date +%s%3N')).trim());
}

/**
 * When the survivors' new master took over, on the cluster's clock: the first 'role changed' to
 * master among `guests` after `sinceMs`, and the reasons their elections gave.
 */
export async function takeover(guests: Guest[], sinceMs: number): Promise<{ atMs: number; master: string; reasons: string[] }> {
  const lines = (await Promise.all(guests.map(async (guest) => (await agentLog(guest, sinceMs)).map((line): LogLine & { guest: string } => ({ ...line, guest: guest.name }))))).flat();
  const became = lines.filter((line) => line.msg === 'role changed' && line.to === 'master').sort((a, b) => a.time - b.time)[0];
  if (!became) throw new Error(`no guest logged becoming master since ${sinceMs}: ${JSON.stringify(lines.map((l) => [l.guest, l.msg]))}`);
  const reasons = lines.filter((line) => line.msg === 'election started' || line.msg === 'master left; electing now').map((line) => String(line.reason ?? line.msg));
  return { atMs: became.time, master: became.guest, reasons };
}

/** All of `guests` synchronized under one master that is one of them; returns their statuses. */
export async function waitAgreed(guests: Guest[], timeoutMs: number, notMaster?: string): Promise<Status[]> {
  let last: (Status | null)[] = [];
  try {
    return await waitFor('one master and every guest synchronized', timeoutMs, async () => {
      last = await statuses(guests);
      const reports = last.filter((status): status is Status => status !== null);
      if (reports.length !== guests.length) return null;
      const masters = new Set(reports.map((status) => status.masterId));
      const master = reports[0]?.masterId;
      if (masters.size !== 1 || typeof master !== 'string' || master === notMaster) return null;
      if (!reports.some((status) => status.role === 'master' && status.nodeId === master)) return null;
      return reports.every((status) => status.clock.synchronized) ? reports : null;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last statuses: ${JSON.stringify(last.map((s) => s && { node: s.nodeId, role: s.role, master: s.masterId, sync: s.clock?.synchronized }))}`);
  }
}

/** Every guest's clock minus the host's, measured by chronyd -Q (outside the agent). */
export async function offsetsNs(guests: Guest[]): Promise<number[]> {
  return Promise.all(guests.map((guest) => guest.measureOffsetNs()));
}

export const spread = (values: number[]): number => Math.max(...values) - Math.min(...values);

/** Waits until chrony sees the guests within `boundNs` of each other; returns the offsets then. */
export async function waitSpreadBelow(guests: Guest[], boundNs: number, timeoutMs: number): Promise<number[]> {
  let last: number[] = [];
  try {
    return await waitFor(`a spread under ${boundNs / 1e3} us`, timeoutMs, async () => {
      last = await offsetsNs(guests);
      return spread(last) < boundNs ? last : null;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last offsets (us): ${last.map((v) => (v / 1e3).toFixed(1)).join(', ')}`);
  }
}

/** adjtimex -p's output as numbers (mode, offset, frequency, maxerror, esterror, status, tick, ...). */
function parseTimex(out: string): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const match = /^\s*([a-z_ ]+):\s+(-?[0-9.]+)\s*$/.exec(line);
    if (match) fields[(match[1] ?? '').trim().replace(/ /g, '_')] = Number(match[2]);
  }
  return fields;
}

/** adjtimex -p as numbers (mode, offset, frequency, maxerror, esterror, status, tick, ...). */
export async function kernelTimex(guest: Guest): Promise<Record<string, number>> {
  return parseTimex(await guest.run('adjtimex -p'));
}

/**
 * The kernel's base frequency, ppm: the median of adjtimex readings over a few seconds (one shell
 * loop in the guest). The kernel driver slews by raising the kernel frequency for a moment (up to
 * hundreds of ppm), so one reading taken during a slew says nothing about the learned frequency;
 * slews fill a small share of the time once converged, so the median is the base.
 */
export async function kernelBaseFrequencyPpm(guest: Guest, samples = 15, intervalS = 0.2): Promise<number> {
  const out = await guest.run(`for i in $(seq ${samples}); do adjtimex -p; echo ---; sleep ${intervalS}; done`);
  const readings = out.split('---').map(parseTimex).flatMap((fields) => (fields.frequency === undefined ? [] : [fields.frequency / 65536]));
  if (readings.length === 0) throw new Error(`no adjtimex frequency read on ${guest.name}: ${out.slice(0, 200)}`);
  readings.sort((a, b) => a - b);
  return readings[Math.floor(readings.length / 2)] as number;
}

