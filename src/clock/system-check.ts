// Before the agent takes the kernel clock: is this Linux, may we set the time, is anyone else
// setting it, and can the adjtimex binding load. Each failure is one sentence for the operator.
// `--clock system` exits with it; `--clock auto` logs it and falls back to the virtual clock.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KernelClockDriver, type HostTimeSource, type KernelClockOptions } from './kernel.ts';
import { loadTimexSyscall, type TimexSyscall } from './timex.ts';

/** CAP_SYS_TIME, from <linux/capability.h>. */
const CAP_SYS_TIME_BIT = 25n;

/**
 * Processes that discipline the system clock (or, for ptp4l, a clock phc2sys copies into it).
 * ntpsec's and openntpd's daemons usually run as "ntpd" too. /proc/PID/comm is cut at 15
 * characters, so systemd-timesyncd shows as "systemd-timesyn".
 */
export const TIME_DAEMON_NAMES = ['chronyd', 'ntpd', 'openntpd', 'systemd-timesyncd', 'ptp4l', 'phc2sys', 'timed', 'ntpsec'] as const;
const COMM_BYTES_MAX = 15;

/** True when this process's effective capabilities include CAP_SYS_TIME. Never throws. */
export function hasCapSysTime(statusPath = '/proc/self/status'): boolean {
  try {
    const match = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(readFileSync(statusPath, 'utf8'));
    if (!match?.[1]) return false;
    return ((BigInt(`0x${match[1]}`) >> CAP_SYS_TIME_BIT) & 1n) === 1n;
  } catch {
    return false;
  }
}

/**
 * Running time daemons, by /proc/PID/comm. Processes that exit while we look, unreadable entries
 * and zombies are skipped. Never throws. Only sees this PID namespace: a daemon on the host
 * outside a container is invisible from inside it.
 */
export function findTimeDaemons(procDir = '/proc'): { pid: number; name: string }[] {
  const wanted = new Map<string, string>(TIME_DAEMON_NAMES.map((name) => [name.slice(0, COMM_BYTES_MAX), name]));
  let entries: string[];
  try {
    entries = readdirSync(procDir);
  } catch {
    return [];
  }
  const found: { pid: number; name: string }[] = [];
  for (const entry of entries) {
    if (!/^[1-9][0-9]*$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let comm: string;
    try {
      comm = readFileSync(join(procDir, entry, 'comm'), 'utf8').trim();
    } catch {
      continue;
    }
    const name = wanted.get(comm);
    if (name === undefined || isZombie(procDir, entry)) continue;
    found.push({ pid, name });
  }
  return found.sort((a, b) => a.pid - b.pid);
}

/** A zombie has exited and adjusts nothing; state is the field after the ")" closing comm in /proc/PID/stat. */
function isZombie(procDir: string, entry: string): boolean {
  try {
    const stat = readFileSync(join(procDir, entry, 'stat'), 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 1).trim().startsWith('Z');
  } catch {
    return false;
  }
}

export interface OpenSystemClockOptions {
  /** Take the kernel clock even while another time daemon runs. */
  force: boolean;
  hostClock: HostTimeSource;
  /** The adjtimex binding; default: loadSyscall(). */
  syscall?: TimexSyscall;
  /** Loads the binding when `syscall` is not given; default: loadTimexSyscall (koffi). */
  loadSyscall?: () => TimexSyscall | { error: string };
  procDir?: string;
  capCheck?: () => boolean;
  /** Linux only; injectable so the reason for other systems can be tested. */
  platform?: string;
  /** Passed to the driver: the daemon wires onStepped (re-anchor the host clock) and onError (log). */
  driver?: KernelClockOptions;
}

export type OpenSystemClockResult = { ok: true; driver: KernelClockDriver; warnings: string[] } | { ok: false; reason: string };

/**
 * Checks, cheapest first, then opens the kernel clock driver (which turns the kernel's own PLL off).
 * koffi is loaded only after the checks pass, so an agent that cannot use the kernel clock anyway
 * never loads native code.
 */
export function openSystemClock(options: OpenSystemClockOptions): OpenSystemClockResult {
  const platform = options.platform ?? process.platform;
  if (platform !== 'linux') return { ok: false, reason: `the kernel clock driver needs Linux (this is ${platform})` };
  const capCheck = options.capCheck ?? (() => hasCapSysTime());
  if (!capCheck()) {
    return { ok: false, reason: 'no permission to set the clock: run as root or grant CAP_SYS_TIME (AmbientCapabilities=CAP_SYS_TIME in the unit)' };
  }
  const warnings: string[] = [];
  const daemons = findTimeDaemons(options.procDir);
  if (daemons.length > 0) {
    const list = daemons.map((daemon) => `${daemon.name} (pid ${daemon.pid})`).join(', ');
    if (!options.force) return { ok: false, reason: `another time daemon is running: ${list}; stop it or pass --force` };
    warnings.push(`--force: disciplining the kernel clock although ${list} is running; the two will fight over it`);
  }
  let syscall = options.syscall;
  if (!syscall) {
    const loaded = (options.loadSyscall ?? loadTimexSyscall)();
    if ('error' in loaded) return { ok: false, reason: `cannot use the kernel clock: ${loaded.error}` };
    syscall = loaded;
  }
  const opened = KernelClockDriver.open(syscall, options.hostClock, options.driver);
  if (!opened.ok) return opened;
  return { ok: true, driver: opened.driver, warnings: [...warnings, ...opened.warnings] };
}
