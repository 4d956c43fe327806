// chrony side by side with the real-process benchmark (scripts/bench/real.ts): two chronyd
// instances in two namespaces of the benchmark's NetnsLab, one serving and one polling it every
// second in interleaved mode with kernel timestamps. Both namespaces share this machine's kernel
// clock, so the true offset between them is 0 and every offset the client measures is noise: the
// figure our spread is compared with.
//
// Safety (GUIDE §5): chronyd always runs with -x (it never adjusts, slews or steps the clock; the
// command line is checked before every start), and only through NetnsLab.spawn inside a namespace
// the lab created, on 198.18.0.0/15 addresses. Every file it writes (config, pid, socket, drift,
// dumps, logs) is in one temp dir removed by stop(); the lab kills the process group on cleanup,
// exit or signal.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabHost, NetnsLab } from '../../lab/netns/netns.ts';
import { sleep } from '../../lab/netns/netns.ts';
import { percentile } from '../../lab/netns/agents.ts';

/** Where Debian's chrony package puts the binaries; PATH is searched first. */
const CHRONYD_PATHS = ['/usr/sbin/chronyd', '/sbin/chronyd', '/usr/local/sbin/chronyd'];
const CHRONYC_PATHS = ['/usr/bin/chronyc', '/bin/chronyc', '/usr/local/bin/chronyc'];
/** The user chronyd drops root privileges to (Debian's compiled-in default). */
const CHRONY_USER = '_chrony';
/** chronyd has written its pid file (it is up and its sockets are bound) within this. */
const START_TIMEOUT_MS = 10_000;
/** Bound on a chronyc call at the end of the run. */
const CHRONYC_TIMEOUT_MS = 5_000;
/** Grace between SIGTERM and SIGKILL when stopping a chronyd. */
const STOP_GRACE_MS = 2_000;

export interface ChronyStats {
  /** Root mean square of the client's measured offsets in the window (true offset is 0). */
  rmsOffsetNs: number;
  p50AbsOffsetNs: number;
  p99AbsOffsetNs: number;
  maxAbsOffsetNs: number;
  meanOffsetNs: number;
  /** Measurements in the window that passed chrony's packet tests (the ones used above). */
  samples: number;
  /** Of those, how many were interleaved with kernel transmit and receive timestamps. */
  interleavedKernelSamples: number;
  /** Measurements in the window that failed a packet test (not used). */
  rejectedSamples: number;
  /** Median round-trip delay of the samples used. */
  p50DelayNs: number;
  /** `chronyc tracking` of the client at the end (its own RMS offset figure), when it answered. */
  tracking: { rmsOffsetNs: number; lastOffsetNs: number; frequencyPpm: number; skewPpm: number } | null;
  server: string;
  client: string;
  version: string;
}

export type ChronyOutcome = ChronyStats | { skipped: string };

export function findChronyd(): string | null {
  return findExecutable('chronyd', CHRONYD_PATHS);
}

function findExecutable(name: string, fallbacks: string[]): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return fallbacks.find((path) => existsSync(path)) ?? null;
}

interface Instance {
  role: 'server' | 'client';
  host: LabHost;
  dir: string;
  child: ChildProcess;
}

/** A started server/client pair; collect() reads the client's measurements, stop() ends both. */
export class ChronyPair {
  private stopped = false;

  private constructor(
    private readonly lab: NetnsLab,
    private readonly root: string,
    private readonly server: Instance,
    private readonly client: Instance,
    private readonly version: string,
  ) {}

  /**
   * Starts the server in `serverHost`'s namespace and the client in `clientHost`'s. Both hosts
   * must belong to `lab`. Throws (after cleaning up) when chronyd does not come up.
   */
  static async start(lab: NetnsLab, serverHost: LabHost, clientHost: LabHost, chronyd: string): Promise<ChronyPair> {
    const owned = new Set(lab.namespaceNames());
    for (const host of [serverHost, clientHost]) {
      // Never run chronyd in a namespace this run did not create (least of all the root one).
      if (!owned.has(host.ns)) throw new Error(`refusing to start chronyd outside the lab (namespace ${host.ns})`);
    }
    const version = execFileSync(chronyd, ['-v'], { encoding: 'utf8', timeout: CHRONYC_TIMEOUT_MS }).trim();
    const root = mkdtempSync(join(tmpdir(), 'berkeley-bench-chrony-'));
    registerTempDir(root);
    const instances: Instance[] = [];
    try {
      const serverDir = prepareDir(root, 'server');
      const clientDir = prepareDir(root, 'client');
      writeFileSync(join(serverDir, 'chrony.conf'), serverConfig(serverDir, serverHost.address));
      writeFileSync(join(clientDir, 'chrony.conf'), clientConfig(clientDir, serverHost.address));
      instances.push(spawnChronyd(lab, serverHost, serverDir, chronyd, 'server'));
      await waitForPidFile(lab, instances[0]!);
      instances.push(spawnChronyd(lab, clientHost, clientDir, chronyd, 'client'));
      await waitForPidFile(lab, instances[1]!);
      return new ChronyPair(lab, root, instances[0]!, instances[1]!, version);
    } catch (err) {
      for (const instance of instances) await stopInstance(instance);
      rmSync(root, { recursive: true, force: true });
      unregisterTempDir(root);
      throw err;
    }
  }

  /** True while both chronyd processes run. */
  running(): boolean {
    return this.server.child.exitCode === null && this.server.child.signalCode === null && this.client.child.exitCode === null && this.client.child.signalCode === null;
  }

  /**
   * The client's measurements whose time stamp (UTC, whole seconds in measurements.log) falls in
   * [fromMs, toMs], plus the client's `chronyc tracking` as it is now.
   */
  async collect(fromMs: number, toMs: number): Promise<ChronyStats> {
    const logPath = join(this.client.dir, 'log', 'measurements.log');
    const text = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    const window = parseMeasurements(text).filter((m) => m.atMs >= Math.floor(fromMs / 1000) * 1000 && m.atMs <= toMs);
    const used = window.filter((m) => m.passed);
    if (used.length === 0) {
      throw new Error(
        `chrony client logged no usable measurement in the window (${window.length} logged); chronyd said:\n` +
          `server: ${this.lab.outputOf(this.server.child).slice(-2000)}\nclient: ${this.lab.outputOf(this.client.child).slice(-2000)}`,
      );
    }
    const offsets = used.map((m) => m.offsetNs);
    const absolute = offsets.map(Math.abs);
    return {
      rmsOffsetNs: Math.sqrt(offsets.reduce((sum, x) => sum + x * x, 0) / offsets.length),
      p50AbsOffsetNs: percentile(absolute, 0.5),
      p99AbsOffsetNs: percentile(absolute, 0.99),
      maxAbsOffsetNs: Math.max(...absolute),
      meanOffsetNs: offsets.reduce((sum, x) => sum + x, 0) / offsets.length,
      samples: used.length,
      interleavedKernelSamples: used.filter((m) => m.mode === 'I' && m.txSource === 'K' && m.rxSource === 'K').length,
      rejectedSamples: window.length - used.length,
      p50DelayNs: percentile(used.map((m) => m.delayNs), 0.5),
      tracking: await this.tracking(),
      server: `${this.server.host.ns} ${this.server.host.address}`,
      client: `${this.client.host.ns} ${this.client.host.address}`,
      version: this.version,
    };
  }

  private async tracking(): Promise<ChronyStats['tracking']> {
    const chronyc = findExecutable('chronyc', CHRONYC_PATHS);
    if (chronyc === null) return null;
    // Over the client's Unix command socket (the UDP command port is off): -c for CSV.
    const result = await this.lab.exec(this.client.host, chronyc, ['-n', '-c', '-h', join(this.client.dir, 'chronyd.sock'), 'tracking'], { timeoutMs: CHRONYC_TIMEOUT_MS });
    if (result.code !== 0) return null;
    // CSV fields: refid, address, stratum, ref time, system time, last offset, RMS offset,
    // frequency, residual freq, skew, root delay, root dispersion, update interval, leap.
    const fields = result.stdout.trim().split(',');
    const number = (index: number): number => Number(fields[index]);
    if (fields.length < 10 || ![5, 6, 7, 9].every((index) => Number.isFinite(number(index)))) return null;
    return { lastOffsetNs: number(5) * 1e9, rmsOffsetNs: number(6) * 1e9, frequencyPpm: number(7), skewPpm: number(9) };
  }

  /** Stops both chronyd and removes the temp dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([stopInstance(this.client), stopInstance(this.server)]);
    rmSync(this.root, { recursive: true, force: true });
    unregisterTempDir(this.root);
  }
}

function prepareDir(root: string, role: string): string {
  const dir = join(root, role);
  mkdirSync(join(dir, 'log'), { recursive: true });
  // chronyd drops root for its own user after start-up; that user must write its logs, drift and
  // dump files, and chronyd insists the command socket's directory is accessible only to it.
  let uid = 0;
  let gid = 0;
  try {
    uid = Number(execFileSync('id', ['-u', CHRONY_USER], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', CHRONY_USER], { encoding: 'utf8' }).trim());
  } catch {
    // No such user: chronyd is started with -u root below.
  }
  for (const path of [root, dir, join(dir, 'log')]) {
    if (path !== root) chownSync(path, uid, gid);
    chmodSync(path, path === root ? 0o711 : 0o700);
  }
  return dir;
}

function commonConfig(dir: string): string[] {
  return [
    '# Written by scripts/bench/real-chrony.ts. chronyd runs with -x: it never touches the clock.',
    `pidfile ${join(dir, 'chronyd.pid')}`,
    `driftfile ${join(dir, 'drift')}`,
    `dumpdir ${dir}`,
    `ntsdumpdir ${dir}`,
    `logdir ${join(dir, 'log')}`,
    // Commands only over a Unix socket of our own; no UDP command port.
    `bindcmdaddress ${join(dir, 'chronyd.sock')}`,
    'cmdport 0',
  ];
}

function serverConfig(dir: string, address: string): string {
  return [
    ...commonConfig(dir),
    // Serve its own (free-running) clock as a stratum-8 reference to the lab's range only.
    'local stratum 8',
    `bindaddress ${address}`,
    'allow 198.18.0.0/15',
    'log measurements',
    '',
  ].join('\n');
}

function clientConfig(dir: string, serverAddress: string): string {
  return [
    ...commonConfig(dir),
    // Serve nobody; poll the server every second (2^0 s), interleaved; software (kernel)
    // timestamping is chrony's default on Linux, no hwtimestamp.
    'port 0',
    `server ${serverAddress} iburst minpoll 0 maxpoll 0 xleave`,
    'log measurements tracking statistics',
    '',
  ].join('\n');
}

function spawnChronyd(lab: NetnsLab, host: LabHost, dir: string, chronyd: string, role: Instance['role']): Instance {
  let user = 'root';
  try {
    execFileSync('id', ['-u', CHRONY_USER], { stdio: 'ignore' });
    user = CHRONY_USER;
  } catch {
    // Keep root.
  }
  // -x: never adjust the system clock (checked below, whatever edits come later); -d: stay in the
  // foreground so the lab tracks and kills it; -4: the lab is IPv4 only.
  const args = ['-x', '-d', '-4', '-u', user, '-f', join(dir, 'chrony.conf')];
  if (!args.includes('-x')) throw new Error('chronyd must run with -x');
  const child = lab.spawn(host, chronyd, args, { label: `chronyd ${role} (${host.ns})` });
  return { role, host, dir, child };
}

async function waitForPidFile(lab: NetnsLab, instance: Instance): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  const pidPath = join(instance.dir, 'chronyd.pid');
  while (Date.now() < deadline) {
    if (instance.child.exitCode !== null || instance.child.signalCode !== null) break;
    if (existsSync(pidPath)) return;
    await sleep(50);
  }
  throw new Error(`chronyd ${instance.role} did not start: ${lab.outputOf(instance.child).slice(-2000)}`);
}

async function stopInstance(instance: Instance): Promise<void> {
  const { child } = instance;
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  if (gone() || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalGroup(child, 'SIGTERM');
  await Promise.race([exited, sleep(STOP_GRACE_MS)]);
  if (!gone()) {
    signalGroup(child, 'SIGKILL');
    await Promise.race([exited, sleep(STOP_GRACE_MS)]);
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // The lab spawns children detached, leading their own process group.
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

// ---------------------------------------------------------------------------------------------
// measurements.log

export interface Measurement {
  atMs: number;
  /** Server minus client, as chrony measured it. */
  offsetNs: number;
  delayNs: number;
  /** Packet tests 1-3 and 5-7 passed (columns "123" and "567" all ones). */
  passed: boolean;
  /** B basic, I interleaved (the letter after the NTP version in the "MTxRx" columns, e.g. 4I). */
  mode: string;
  /** Transmit / receive timestamp source: D daemon, K kernel, H hardware. */
  txSource: string;
  rxSource: string;
}

/**
 * Parses chrony's measurements.log (header and separator lines are skipped):
 *   Date (UTC) Time  IP Address  L St 123 567 ABCD LP RP Score Offset Peer-del. Peer-disp.
 *   Root-del. Root-disp. Refid M Tx Rx
 * where M is the NTP version and mode (4B basic, 4I interleaved) and Tx/Rx the timestamp sources
 * (D daemon, K kernel, H hardware), each its own whitespace-separated column.
 */
export function parseMeasurements(text: string): Measurement[] {
  const out: Measurement[] = [];
  for (const line of text.split('\n')) {
    if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /.test(line)) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 20) continue;
    const atMs = Date.parse(`${f[0]}T${f[1]}Z`);
    const offsetNs = Number(f[11]) * 1e9;
    const delayNs = Number(f[12]) * 1e9;
    if (!Number.isFinite(atMs) || !Number.isFinite(offsetNs) || !Number.isFinite(delayNs)) continue;
    const version = f[17] ?? '';
    out.push({
      atMs,
      offsetNs,
      delayNs,
      passed: f[5] === '111' && f[6] === '111',
      mode: version.slice(-1) || '?',
      txSource: f[18] ?? '?',
      rxSource: f[19] ?? '?',
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Temp dirs are removed even when the process dies of a signal or exits early.

const liveTempDirs = new Set<string>();
let tempHandlersInstalled = false;

function registerTempDir(dir: string): void {
  liveTempDirs.add(dir);
  if (tempHandlersInstalled) return;
  tempHandlersInstalled = true;
  const removeAll = (): void => {
    for (const path of liveTempDirs) rmSync(path, { recursive: true, force: true });
    liveTempDirs.clear();
  };
  process.on('exit', removeAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // NetnsLab's own handler (installed earlier, so it runs first) kills chronyd and re-raises the
    // signal; this one must also step aside and re-raise, or the process would survive it.
    const onSignal = (): void => {
      removeAll();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function unregisterTempDir(dir: string): void {
  liveTempDirs.delete(dir);
}
