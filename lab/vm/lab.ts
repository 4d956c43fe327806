// A lab of separate Linux kernels: user-mode-linux guests on a bridge, each with its own
// CLOCK_REALTIME, systemd as PID 1 and the product installed as a user installs it.
//
// Topology: one network namespace (so nothing reaches the machine's own network) holds a bridge
// br0 at 198.18.100.1/24, one tap per guest, and a `chronyd -x` on the bridge that serves the host
// clock (it never touches it), so tests can measure a guest's clock from outside the agent with
// `chronyd -Q` in the guest. Guest N is 198.18.100.(10+N), named gN, reached with ssh from the
// namespace. Each guest boots the cached image (image.ts) through its own copy-on-write overlay,
// and mounts a host directory read-only at /mnt/lab (hostfs): the product's install prefix and the
// lab's tools reach the guests that way.
//
// Everything is torn down by destroy(), also from process 'exit' and signal handlers, so a failing
// run leaves no guest, namespace or chronyd behind. The guests' clocks are theirs to move: stepping
// or detuning a guest never touches this machine's clock.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listNamespaces, processAlive } from '../netns/netns.ts';
import { hostChronyd, umlKernel } from './assets.ts';
import { guestImage, type GuestImage } from './image.ts';

/** Tools the tests run in the guests (a guest sees them at /mnt/lab/NAME). */
const TOOLS_DIR = fileURLToPath(new URL('./tools/', import.meta.url));
export const SUBNET = '198.18.100';
export const BRIDGE_ADDRESS = `${SUBNET}.1`;
/** Memory each guest is given (it uses about 45 MB idle with the agent running). */
const GUEST_MEMORY = '320M';
const GUESTS_MAX = 16;
const SSH_CONNECT_TIMEOUT_S = 5;
/** systemd reaches "running" in about 20 s for three guests booting together on 2 cores. */
const BOOT_TIMEOUT_MS = 180_000;
const COMMAND_TIMEOUT_MS = 60_000;
/** How long teardown waits for the guests' processes to be gone. */
const EXIT_WAIT_MS = 5_000;
/** Namespaces this module creates: `bavm-<pid36>-<random>`, so a later run can sweep a killed one's. */
const NAME_PREFIX = 'bavm-';
const NAME_PATTERN = /^bavm-([0-9a-z]+)-/;

export type LabAvailability = { ok: true } | { ok: false; reason: string };

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function commandExists(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether this machine can run the lab, and if not, why. The fetches (kernel, image) happen in
 * VmLab.create; this only checks what must be here for them.
 */
export function vmLabAvailable(): LabAvailability {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { ok: false, reason: `the VM lab needs x86-64 Linux (this is ${process.platform}/${process.arch})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'the VM lab needs root (network namespaces, taps)' };
  if (!existsSync('/dev/net/tun')) return { ok: false, reason: 'the VM lab needs /dev/net/tun' };
  const missing = ['ip', 'ssh', 'ssh-keygen', 'debootstrap', 'mkfs.ext4', 'dpkg-deb', 'xz', 'patchelf', 'apt-get', 'npm'].filter((command) => !commandExists(command));
  if (missing.length > 0) return { ok: false, reason: `the VM lab needs ${missing.join(', ')} (.ci/run installs them: debootstrap patchelf openssh-client)` };
  return { ok: true };
}

function ip(args: string[]): void {
  execFileSync('ip', args, { timeout: COMMAND_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** SIGKILLs every process in a namespace; returns how many there were. */
function killNamespaceProcesses(namespace: string): number {
  let pids: number[] = [];
  try {
    pids = execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return 0; // no namespace
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  return pids.length;
}

function removeRunDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch {
    // A later run's sweep removes it.
  }
}

/** Deletes lab namespaces whose creating process is gone (it was killed before its cleanup ran). */
export function sweepStaleLabs(): string[] {
  const names = listNamespaces();
  const swept: string[] = [];
  // Run directories (os.tmpdir()/bavm-<pid36>-...) of processes that are gone.
  for (const entry of readdirSync(os.tmpdir())) {
    const match = NAME_PATTERN.exec(entry);
    if (match && !processAlive(Number.parseInt(match[1] ?? '', 36))) removeRunDir(path.join(os.tmpdir(), entry));
  }
  for (const name of names) {
    const match = NAME_PATTERN.exec(name);
    if (!match || processAlive(Number.parseInt(match[1] ?? '', 36))) continue;
    // Guests still running in it belong to nobody now.
    killNamespaceProcesses(name);
    try {
      ip(['netns', 'del', name]);
      swept.push(name);
    } catch {
      // someone else removed it
    }
  }
  return swept;
}

const liveLabs = new Set<VmLab>();
let exitHandlersInstalled = false;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  // The listeners stay: a Ctrl-C reaches npm, its shell and this process alike, and npm forwards it
  // again, so a second signal can arrive during teardown; it must not cut the teardown short.
  const signalNumbers = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
  for (const [signal, number] of Object.entries(signalNumbers)) {
    process.on(signal, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.exit(128 + number);
    });
  }
}

export interface VmLabOptions {
  guests: number;
  /** Hears progress (image build, boots); silent by default. */
  log?: (line: string) => void;
}

export class Guest {
  readonly name: string;
  readonly address: string;
  readonly tap: string;
  readonly mac: string;
  /** The guest kernel's process (it leads its own process group with its helpers). */
  private process: ChildProcess | null = null;
  private consoleFd: number | null = null;

  constructor(private readonly lab: VmLab, readonly index: number) {
    this.name = `g${index}`;
    this.address = `${SUBNET}.${10 + index}`;
    this.tap = `tap${index}`;
    this.mac = `02:ba:00:00:00:${index.toString(16).padStart(2, '0')}`;
  }

  get running(): boolean {
    return this.process !== null && this.process.exitCode === null && this.process.signalCode === null;
  }

  get consolePath(): string {
    return path.join(this.lab.dir, `${this.name}.console`);
  }

  /** Boots the guest (again, after kill(): the overlay keeps its disk, as a power cycle would). */
  boot(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const overlay = path.join(this.lab.dir, `${this.name}.cow`);
    const args = [
      'netns', 'exec', this.lab.namespace, this.lab.kernel,
      `mem=${GUEST_MEMORY}`, `umid=${this.lab.namespace}-${this.name}`, `uml_dir=${path.join(this.lab.dir, 'uml')}`,
      `ubd0=${overlay},${this.lab.image.imagePath}`, 'root=/dev/ubda', 'rw',
      'con0=null,fd:1', 'con=null',
      `vec0:transport=tap,ifname=${this.tap},mac=${this.mac}`,
      `lab.name=${this.name}`, `lab.ip=${this.address}/24`, `lab.gw=${BRIDGE_ADDRESS}`, `lab.share=${this.lab.shareDir}`,
    ];
    this.consoleFd = openSync(this.consolePath, 'a');
    this.process = spawn('ip', args, { detached: true, stdio: ['ignore', this.consoleFd, this.consoleFd] });
    this.process.on('error', () => {});
  }

  /** SIGKILL to the guest kernel and its helpers: a box losing power. */
  kill(): void {
    const pid = this.process?.pid;
    if (pid !== undefined && this.running) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (this.consoleFd !== null) {
      closeSync(this.consoleFd);
      this.consoleFd = null;
    }
  }

  async waitExited(timeoutMs = 10_000): Promise<void> {
    const child = this.process;
    if (child === null || !this.running) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Runs a shell command in the guest as root over ssh. Never throws for a non-zero exit. */
  ssh(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResult> {
    const args = ['netns', 'exec', this.lab.namespace, 'ssh', '-i', this.lab.image.sshKeyPath,
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes',
      '-o', `ConnectTimeout=${SSH_CONNECT_TIMEOUT_S}`, `root@${this.address}`, command];
    return new Promise((resolve) => {
      execFile('ip', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (error && code === null ? `\n[${error.message}]` : '') });
      });
    });
  }

  /** Like ssh(), but throws with the output when the command fails. Returns stdout. */
  async run(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const result = await this.ssh(command, timeoutMs);
    if (result.code !== 0) throw new Error(`${this.name}: \`${command}\` exited ${result.code}:\n${result.stderr.trim()}\n${result.stdout.trim()}`.trim());
    return result.stdout;
  }

  /** Waits until ssh answers and systemd has finished starting (running or degraded). */
  async waitBooted(timeoutMs = BOOT_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited while booting; console:\n${this.consoleTail()}`);
      const result = await this.ssh('systemctl is-system-running --wait', 60_000);
      last = `${result.stdout}${result.stderr}`.trim();
      if (/^(running|degraded)$/m.test(result.stdout)) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    throw new Error(`${this.name} did not finish booting within ${timeoutMs / 1000} s (last: ${last}); console:\n${this.consoleTail()}`);
  }

  /**
   * This guest's clock minus the host's, in ns, measured from outside the agent: `chronyd -Q`
   * (measure only, never set) against the lab's chronyd -x, which serves the host clock. chronyd
   * prints "System clock wrong by X seconds": X is how far the clock must move, so the offset is -X.
   * About +-10 us of noise here. Its own pid file and no command port, so that it also measures
   * beside the guest's own running chronyd (chronyd refuses to start while its pid file names a
   * live chronyd, and that one holds the command port).
   */
  async measureOffsetNs(): Promise<number> {
    const output = await this.run(`chronyd -Q -t 20 'server ${BRIDGE_ADDRESS} iburst minpoll -4 maxpoll -4' 'pidfile /run/lab-measure-chronyd.pid' 'cmdport 0' 2>&1`, 40_000);
    const match = /System clock wrong by (-?[0-9.]+) seconds/.exec(output);
    if (!match) throw new Error(`${this.name}: chronyd -Q measured nothing:\n${output}`);
    return -Math.round(Number(match[1]) * 1e9);
  }

  consoleTail(lines = 30): string {
    try {
      return readFileSync(this.consolePath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console output)';
    }
  }
}

export class VmLab {
  readonly namespace: string;
  readonly dir: string;
  /** Host directory every guest mounts read-only at /mnt/lab. */
  readonly shareDir: string;
  readonly guests: Guest[];
  kernel = '';
  image: GuestImage = { imagePath: '', sshKeyPath: '' };
  private chronyd: ChildProcess | null = null;
  private destroyed = false;

  private constructor(guestCount: number) {
    this.namespace = `${NAME_PREFIX}${process.pid.toString(36)}-${randomBytes(3).toString('hex')}`;
    this.dir = mkdtempSync(path.join(os.tmpdir(), `${this.namespace}-`));
    this.shareDir = path.join(this.dir, 'share');
    mkdirSync(this.shareDir);
    mkdirSync(path.join(this.dir, 'uml'));
    this.guests = Array.from({ length: guestCount }, (_, i) => new Guest(this, i + 1));
  }

  /**
   * Fetches or reuses the kernel and image, builds the network, starts the host's chronyd and
   * boots every guest; resolves once each answers ssh with systemd up.
   */
  static async create(options: VmLabOptions): Promise<VmLab> {
    const available = vmLabAvailable();
    if (!available.ok) throw new Error(available.reason);
    if (!Number.isInteger(options.guests) || options.guests < 1 || options.guests > GUESTS_MAX) throw new Error(`guests: 1 to ${GUESTS_MAX}`);
    const log = options.log ?? (() => {});
    sweepStaleLabs();
    const lab = new VmLab(options.guests);
    liveLabs.add(lab);
    installExitHandlers();
    try {
      log('fetching the user-mode-linux kernel (cached after the first run)');
      lab.kernel = await umlKernel();
      lab.image = guestImage(log);
      // The lab's own tools reach the guests through the share, so changing one rebuilds no image.
      for (const tool of readdirSync(TOOLS_DIR)) copyFileSync(path.join(TOOLS_DIR, tool), path.join(lab.shareDir, tool));
      lab.buildNetwork();
      lab.startChronyd();
      log(`booting ${options.guests} guest${options.guests === 1 ? "" : "s"} in namespace ${lab.namespace}`);
      for (const guest of lab.guests) guest.boot();
      await Promise.all(lab.guests.map((guest) => guest.waitBooted()));
    } catch (error) {
      lab.destroySync();
      throw error;
    }
    return lab;
  }

  private buildNetwork(): void {
    ip(['netns', 'add', this.namespace]);
    ip(['-n', this.namespace, 'link', 'set', 'lo', 'up']);
    ip(['-n', this.namespace, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    ip(['-n', this.namespace, 'addr', 'add', `${BRIDGE_ADDRESS}/24`, 'dev', 'br0']);
    ip(['-n', this.namespace, 'link', 'set', 'br0', 'up']);
    for (const guest of this.guests) {
      ip(['-n', this.namespace, 'tuntap', 'add', 'dev', guest.tap, 'mode', 'tap']);
      ip(['-n', this.namespace, 'link', 'set', guest.tap, 'master', 'br0']);
      ip(['-n', this.namespace, 'link', 'set', guest.tap, 'up']);
    }
  }

  /** chronyd -x on the bridge: serves this machine's clock to the guests, never adjusting it. */
  private startChronyd(): void {
    const chronyd = hostChronyd();
    const conf = path.join(this.dir, 'chronyd.conf');
    writeFileSync(conf, [
      'local stratum 1', `allow ${SUBNET}.0/24`, `bindaddress ${BRIDGE_ADDRESS}`, 'cmdport 0',
      `pidfile ${path.join(this.dir, 'chronyd.pid')}`, '',
    ].join('\n'));
    // -x: never touch the clock. -u root: no privilege drop (the unpacked package made no user).
    this.chronyd = spawn('ip', ['netns', 'exec', this.namespace, chronyd, '-x', '-d', '-u', 'root', '-f', conf],
      { detached: true, stdio: ['ignore', openSync(path.join(this.dir, 'chronyd.log'), 'a'), 'ignore'] });
    this.chronyd.on('error', () => {});
  }

  /** Writes a file into the share (the guests see it at /mnt/lab/NAME). */
  share(name: string, contents: string | Buffer): string {
    writeFileSync(path.join(this.shareDir, name), contents);
    return `/mnt/lab/${name}`;
  }

  /** What a person types to reach guest `guest` (for `npm run lab` and failure messages). */
  sshCommand(guest: Guest): string {
    return `ip netns exec ${this.namespace} ssh -i ${this.image.sshKeyPath} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@${guest.address}`;
  }

  /** Stops every guest and chronyd, deletes the namespace and the run directory. Idempotent. */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const guest of this.guests) guest.kill();
    const pid = this.chronyd?.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // Anything else left in the namespace (a guest's helpers) goes with it; wait until they are
    // gone, so that none still writes into the run directory while it is removed.
    const deadlineMs = Date.now() + EXIT_WAIT_MS;
    while (killNamespaceProcesses(this.namespace) > 0 && Date.now() < deadlineMs) execFileSync('sleep', ['0.1']);
    try {
      ip(['netns', 'del', this.namespace]);
    } catch {
      // never created
    }
    if (process.env.BERKELEY_LAB_KEEP_RUN_DIR !== '1') removeRunDir(this.dir);
  }
}
