// A network-namespace lab for end-to-end tests (GUIDE §5).
//
// Topology: one "switch" namespace holding Linux bridges (br0, br1, ...), and one namespace per
// host. Each host gets a veth pair created *inside the switch namespace* with its far end moved
// straight into the host namespace and renamed `eth0`, so no interface ever appears in the root
// namespace (nothing can leak onto the real network, and interface names cannot collide with the
// machine's or with another run's). Hosts are 198.18.0.<index>/24 (198.18.0.0/15 is reserved for
// benchmarking) with a default route via eth0 so multicast (mDNS, 224.0.0.251) has a route.
//
// Everything the lab creates is torn down by cleanup(), which is also run synchronously from
// process 'exit' / SIGINT / SIGTERM / SIGHUP handlers so a failing or interrupted test run does not
// leave namespaces or processes behind. Namespace names carry the creating pid, so a later run can
// sweep what a SIGKILLed run left (see sweepStaleNamespaces).

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';

/** Bytes of combined stdout/stderr kept per child for failure diagnostics. */
const OUTPUT_RING_BYTES_MAX = 64 * 1024;
/** Grace between SIGTERM and SIGKILL when cleaning up children. */
const KILL_GRACE_MS = 1_500;
/** Bound on any single `ip` / exec command the lab runs for its own setup. */
const COMMAND_TIMEOUT_MS = 10_000;
/** Hosts per lab: the last octet of 198.18.<subnet>.<index> must stay a valid host address. */
const HOSTS_MAX = 250;
/** Bridges per lab (br0..br15). */
const BRIDGES_MAX = 16;
/** A namespace whose creating pid is gone is only swept once it is at least this old. */
const STALE_NAMESPACE_AGE_MS = 10 * 60 * 1000;

/** Every namespace name this module creates starts with this, then `<pid36>-<random>-`. */
const NAME_PREFIX = 'ba-';
const NAME_PATTERN = /^ba-([0-9a-z]+)-([0-9a-z]+)-/;

export type NetnsAvailability = { ok: true } | { ok: false; reason: string };

export interface LabHost {
  /** 1-based; also the last octet of the host's addresses. */
  index: number;
  /** Network namespace name (use with `ip netns exec`). */
  ns: string;
  /** IPv4 address of `iface` (no prefix length). */
  address: string;
  /** Name of the veth inside the host namespace. */
  iface: string;
}

export interface LabInterface {
  iface: string;
  address: string;
  bridge: number;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface TrackedChild {
  child: ChildProcess;
  label: string;
  ring: OutputRing;
  exited: boolean;
}

/** Keeps the last `capacity` bytes written to it; used so failures can show what a child said. */
class OutputRing {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private droppedBytes = 0;

  constructor(private readonly capacity: number) {}

  /** A caller may have set an encoding on the stream (then chunks come as strings). */
  push(data: Buffer | string): void {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes > this.capacity && this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const excess = this.bytes - this.capacity;
      if (head.length <= excess) {
        this.chunks.shift();
        this.bytes -= head.length;
        this.droppedBytes += head.length;
      } else {
        this.chunks[0] = head.subarray(excess);
        this.bytes -= excess;
        this.droppedBytes += excess;
      }
    }
  }

  text(): string {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.droppedBytes > 0 ? `[... ${this.droppedBytes} bytes dropped ...]\n${body}` : body;
  }
}

// ---------------------------------------------------------------------------------------------
// Availability probe

let availability: NetnsAvailability | undefined;

/**
 * Whether this process can build labs: root, `ip` present, and a probe namespace with a bridge and
 * a veth pair can be created and deleted. Synchronous so it can drive `describe.skipIf(...)` at
 * collection time. The result is cached for the life of the process.
 */
export function netnsAvailable(): NetnsAvailability {
  if (availability !== undefined) return availability;
  availability = probeAvailability();
  return availability;
}

function probeAvailability(): NetnsAvailability {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (platform is ${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, reason: 'network namespace tests need root (uid 0)' };
  }
  const probe = `${NAME_PREFIX}${process.pid.toString(36)}-${randomBytes(3).toString('hex')}-probe`;
  try {
    ipSync(['netns', 'add', probe]);
  } catch (err) {
    return { ok: false, reason: `'ip netns add' failed: ${errorText(err)}` };
  }
  try {
    ipSync(['-n', probe, 'link', 'add', 'br0', 'type', 'bridge']);
    ipSync(['-n', probe, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `cannot create a bridge/veth inside a namespace: ${errorText(err)}` };
  } finally {
    try {
      ipSync(['netns', 'del', probe]);
    } catch {
      // Nothing more we can do; the stale sweep of a later run removes it.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Process-wide cleanup registry

const liveLabs = new Set<NetnsLab>();
let exitHandlersInstalled = false;

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  // 'exit' handlers must be synchronous; cleanupSync only uses process.kill and execFileSync.
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const lab of liveLabs) lab.cleanupSync();
      // Installing a listener suppressed Node's default "exit on signal"; restore it and re-raise
      // so the process still dies with the signal its parent expects.
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Deletes namespaces that a previous run (SIGKILLed, so its exit handlers never ran) left behind:
 * names made by this module whose creating pid no longer exists and which are older than
 * STALE_NAMESPACE_AGE_MS (the age guard protects labs of processes in another pid namespace).
 * Returns the names deleted.
 */
export function sweepStaleNamespaces(): string[] {
  const deleted: string[] = [];
  for (const ns of listNamespaces()) {
    const match = NAME_PATTERN.exec(ns);
    if (!match) continue;
    const pid = Number.parseInt(match[1]!, 36);
    if (pid === process.pid || processAlive(pid)) continue;
    const path = `/run/netns/${ns}`;
    try {
      if (existsSync(path) && Date.now() - statSync(path).mtimeMs < STALE_NAMESPACE_AGE_MS) continue;
    } catch {
      continue;
    }
    try {
      ipSync(['netns', 'del', ns]);
      deleted.push(ns);
    } catch {
      // Someone else removed it meanwhile, or it is busy: leave it.
    }
  }
  return deleted;
}

/** Names from `ip netns list` (which prints `name` or `name (id: N)`). */
export function listNamespaces(): string[] {
  let out: string;
  try {
    out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  } catch {
    return [];
  }
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.length > 0);
}

// ---------------------------------------------------------------------------------------------
// The lab

export interface NetnsLabOptions {
  hosts: number;
  /** Short tag mixed into namespace names to tell labs apart in `ip netns list` (e.g. 'mdns'). */
  prefix?: string;
}

export class NetnsLab {
  readonly hosts: LabHost[];
  /** Name of the switch namespace holding the bridges. */
  readonly switchNs: string;

  private readonly namespaces: string[];
  private readonly children = new Set<TrackedChild>();
  /** Bridges created (or being created) in the switch namespace; br0 by build(). A promise so
   *  concurrent moveToBridge calls for a new bridge create it once. */
  private readonly bridges = new Map<number, Promise<void>>();
  /** Interfaces added with addInterface, per host index, so each gets the next ethN. */
  private readonly extraIfaceCount = new Map<number, number>();
  private cleaned = false;
  private cleanupPromise: Promise<void> | undefined;

  private constructor(switchNs: string, hosts: LabHost[]) {
    this.switchNs = switchNs;
    this.hosts = hosts;
    this.namespaces = [switchNs, ...hosts.map((h) => h.ns)];
  }

  /** Builds the topology. On any failure everything created so far is deleted before rethrowing. */
  static async create(opts: NetnsLabOptions): Promise<NetnsLab> {
    const available = netnsAvailable();
    if (!available.ok) throw new Error(`network namespaces unavailable: ${available.reason}`);
    if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > HOSTS_MAX) {
      throw new RangeError(`hosts must be an integer in 1..${HOSTS_MAX}, got ${opts.hosts}`);
    }
    const tag = (opts.prefix ?? '').toLowerCase().replace(/[^0-9a-z]/g, '').slice(0, 8);
    installExitHandlers();
    sweepStaleNamespaces();

    const base = `${NAME_PREFIX}${process.pid.toString(36)}-${randomBytes(3).toString('hex')}-${tag ? `${tag}-` : ''}`;
    const hosts: LabHost[] = [];
    for (let index = 1; index <= opts.hosts; index++) {
      hosts.push({ index, ns: `${base}h${index}`, address: `198.18.0.${index}`, iface: 'eth0' });
    }
    const lab = new NetnsLab(`${base}sw`, hosts);
    liveLabs.add(lab);
    try {
      await lab.build();
    } catch (err) {
      await lab.cleanup();
      throw err;
    }
    return lab;
  }

  private async build(): Promise<void> {
    const sw = this.switchNs;
    await ip(['netns', 'add', sw]);
    await ip(['-n', sw, 'link', 'set', 'lo', 'up']);
    await this.ensureBridge(0);
    for (const host of this.hosts) {
      await ip(['netns', 'add', host.ns]);
      // IPv6 off: no DAD, router/MLD solicitations or AAAA records muddying packet captures and
      // mDNS answers; the agent speaks IPv4.
      await this.sysctl(host.ns, ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await ip(['-n', host.ns, 'link', 'set', 'lo', 'up']);
      // Create the pair inside the switch namespace and push the far end straight into the host.
      const port = switchPortName(host.index, 0);
      await ip(['-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', host.iface, 'netns', host.ns]);
      await ip(['-n', sw, 'link', 'set', port, 'master', 'br0']);
      await ip(['-n', sw, 'link', 'set', port, 'up']);
      await ip(['-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', host.iface]);
      await ip(['-n', host.ns, 'link', 'set', host.iface, 'up']);
      // Multicast needs a route: without one, sends to 224.0.0.251 fail with ENETUNREACH.
      await ip(['-n', host.ns, 'route', 'replace', 'default', 'dev', host.iface]);
    }
  }

  private async ensureBridge(bridge: number): Promise<string> {
    if (!Number.isInteger(bridge) || bridge < 0 || bridge >= BRIDGES_MAX) {
      throw new RangeError(`bridge must be an integer in 0..${BRIDGES_MAX - 1}, got ${bridge}`);
    }
    const name = `br${bridge}`;
    let created = this.bridges.get(bridge);
    if (!created) {
      created = (async () => {
        await ip(['-n', this.switchNs, 'link', 'add', name, 'type', 'bridge']);
        // Snooping off: every port sees every multicast group without depending on IGMP queriers.
        await ip(['-n', this.switchNs, 'link', 'set', name, 'type', 'bridge', 'mcast_snooping', '0']);
        await ip(['-n', this.switchNs, 'link', 'set', name, 'up']);
      })();
      this.bridges.set(bridge, created);
    }
    await created;
    return name;
  }

  private async sysctl(ns: string, settings: string[]): Promise<void> {
    const result = await runCommand('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...settings], COMMAND_TIMEOUT_MS);
    if (result.code !== 0) throw new Error(`sysctl in ${ns} failed: ${result.stderr.trim()}`);
  }

  /**
   * Starts `command args` inside the host's namespace. The child leads its own process group so
   * cleanup can kill it together with anything it forked. stdout/stderr are also copied into a
   * ring buffer (see outputOf / diagnostics); callers may attach their own listeners as well.
   */
  spawn(
    host: LabHost,
    command: string,
    args: string[],
    opts: { env?: Record<string, string>; cwd?: string; label?: string } = {},
  ): ChildProcess {
    this.assertLive();
    const child = spawn('ip', ['netns', 'exec', host.ns, command, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const tracked: TrackedChild = {
      child,
      label: opts.label ?? `h${host.index}: ${command} ${args.join(' ')}`.slice(0, 200),
      ring: new OutputRing(OUTPUT_RING_BYTES_MAX),
      exited: false,
    };
    this.children.add(tracked);
    child.stdout?.on('data', (chunk: Buffer | string) => tracked.ring.push(chunk));
    child.stderr?.on('data', (chunk: Buffer | string) => tracked.ring.push(chunk));
    child.on('exit', () => {
      tracked.exited = true;
    });
    // An 'error' (e.g. spawn failure) without a listener would crash the test process.
    child.on('error', (err) => {
      tracked.exited = true;
      tracked.ring.push(Buffer.from(`[spawn error: ${err.message}]\n`));
    });
    return child;
  }

  /** Runs a command inside the host's namespace to completion (killed after timeoutMs). */
  async exec(host: LabHost, command: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    this.assertLive();
    const child = this.spawn(host, command, args);
    const result = await collect(child, opts.timeoutMs ?? COMMAND_TIMEOUT_MS);
    // The caller has the output; forget the child so many short execs do not pile up buffers.
    for (const tracked of this.children) if (tracked.child === child) this.children.delete(tracked);
    return result;
  }

  /** Combined stdout/stderr tail of a child started with spawn/exec. */
  outputOf(child: ChildProcess): string {
    for (const tracked of this.children) if (tracked.child === child) return tracked.ring.text();
    return '';
  }

  /** Output tails of every child this lab started, for printing when a test fails. */
  diagnostics(): string {
    const parts: string[] = [];
    for (const tracked of this.children) {
      const status = tracked.exited
        ? `exited code=${tracked.child.exitCode} signal=${tracked.child.signalCode}`
        : 'running';
      parts.push(`--- ${tracked.label} (pid ${tracked.child.pid}, ${status}) ---\n${tracked.ring.text()}`);
    }
    return parts.join('\n');
  }

  /**
   * Partitions (up=false) or reconnects a host. side 'host' (default) downs the veth inside the
   * host: its sends then fail (ENETUNREACH), exercising the agent's error paths. side 'switch'
   * downs the bridge port instead: the host keeps a carrier-less link and its packets vanish
   * silently, like a pulled cable at the switch.
   */
  async setLinkUp(host: LabHost, up: boolean, opts: { side?: 'host' | 'switch' } = {}): Promise<void> {
    this.assertLive();
    const state = up ? 'up' : 'down';
    if ((opts.side ?? 'host') === 'switch') {
      await ip(['-n', this.switchNs, 'link', 'set', switchPortName(host.index, 0), state]);
      return;
    }
    await ip(['-n', host.ns, 'link', 'set', host.iface, state]);
    // Downing a link flushes its routes and bringing it up restores only the connected subnet
    // route, so the default route multicast relies on must be put back by hand.
    if (up) await ip(['-n', host.ns, 'route', 'replace', 'default', 'dev', host.iface]);
  }

  /**
   * Drops each packet the host sends with probability `fraction` (0 removes the filter). netem is
   * not in every kernel (not in this project's CI VM), so this is a tc egress filter instead: a
   * classic BPF program that loads a random number (SKF_AD_RANDOM) and returns TC_ACT_SHOT below
   * the threshold, else TC_ACT_OK. Throws when tc refuses it, so a run never passes without loss.
   */
  async setEgressLoss(host: LabHost, fraction: number): Promise<void> {
    this.assertLive();
    if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`loss must be in [0, 1), got ${fraction}`);
    const run = async (args: string[], allowFailure = false) => {
      const result = await this.exec(host, 'tc', args);
      if (result.code !== 0 && !allowFailure) throw new Error(`tc ${args.join(' ')} in ${host.ns} failed: ${result.stderr.trim()}`);
    };
    // Replacing: start from no filter (the qdisc may not exist yet).
    await run(['qdisc', 'del', 'dev', host.iface, 'clsact'], true);
    if (fraction === 0) return;
    await run(['qdisc', 'add', 'dev', host.iface, 'clsact']);
    const SKF_AD_RANDOM = 0xfffff000 + 56; // SKF_AD_OFF + SKF_AD_RANDOM, as an unsigned 32-bit offset
    const threshold = Math.round(fraction * 2 ** 32);
    // ld rand; jge #threshold -> pass, else drop (jt 1 skips the drop); ret SHOT (2); ret OK (0).
    const program = `4,32 0 0 ${SKF_AD_RANDOM},53 1 0 ${threshold},6 0 0 2,6 0 0 0`;
    await run(['filter', 'add', 'dev', host.iface, 'egress', 'bpf', 'da', 'bytecode', program]);
  }

  /**
   * Moves the host's eth0 port to bridge `bridge` (created on first use). Hosts on different
   * bridges share a subnet but no link: a partition into groups that keeps every link up.
   */
  async moveToBridge(host: LabHost, bridge: number): Promise<void> {
    this.assertLive();
    const name = await this.ensureBridge(bridge);
    await ip(['-n', this.switchNs, 'link', 'set', switchPortName(host.index, 0), 'master', name]);
  }

  /**
   * Gives a host an extra interface (eth1, eth2, ...) on bridge `bridge` with address
   * 198.18.<subnet>.<host index>/24 and no default route. For tests of multi-homed hosts.
   */
  async addInterface(host: LabHost, opts: { bridge: number; subnet: number }): Promise<LabInterface> {
    this.assertLive();
    if (!Number.isInteger(opts.subnet) || opts.subnet < 1 || opts.subnet > 255) {
      throw new RangeError(`subnet must be an integer in 1..255 (0 is eth0's), got ${opts.subnet}`);
    }
    const bridgeName = await this.ensureBridge(opts.bridge);
    const n = (this.extraIfaceCount.get(host.index) ?? 0) + 1;
    this.extraIfaceCount.set(host.index, n);
    const iface = `eth${n}`;
    const port = switchPortName(host.index, n);
    const address = `198.18.${opts.subnet}.${host.index}`;
    await ip(['-n', this.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', host.ns]);
    await ip(['-n', this.switchNs, 'link', 'set', port, 'master', bridgeName]);
    await ip(['-n', this.switchNs, 'link', 'set', port, 'up']);
    await ip(['-n', host.ns, 'addr', 'add', `${address}/24`, 'dev', iface]);
    await ip(['-n', host.ns, 'link', 'set', iface, 'up']);
    return { iface, address, bridge: opts.bridge };
  }

  /** GET a URL from inside the host's namespace and parse the JSON body (throws on non-2xx). */
  async httpGetJson<T = unknown>(host: LabHost, url: string, opts: { timeoutMs?: number } = {}): Promise<T> {
    this.assertLive();
    return httpGetJson<T>(host, url, opts);
  }

  /** Every namespace name this lab owns (switch first). */
  namespaceNames(): string[] {
    return [...this.namespaces];
  }

  /**
   * Kills every tracked child (SIGTERM to its process group, SIGKILL after KILL_GRACE_MS) and
   * deletes every namespace the lab made. Idempotent and safe to call concurrently.
   */
  cleanup(): Promise<void> {
    this.cleanupPromise ??= this.cleanupAsync();
    return this.cleanupPromise;
  }

  private async cleanupAsync(): Promise<void> {
    const running = [...this.children].filter((t) => !t.exited);
    for (const tracked of running) signalGroup(tracked.child, 'SIGTERM');
    const deadline = Date.now() + KILL_GRACE_MS;
    while (running.some((t) => !t.exited) && Date.now() < deadline) await sleep(25);
    for (const tracked of running) if (!tracked.exited) signalGroup(tracked.child, 'SIGKILL');
    // Give the kernel a moment to reap so namespace deletion does not race open sockets (a
    // namespace held by a live process would linger after `ip netns del` removes its name).
    const reapDeadline = Date.now() + KILL_GRACE_MS;
    while (running.some((t) => !t.exited) && Date.now() < reapDeadline) await sleep(25);
    this.deleteNamespacesSync();
    this.cleaned = true;
    liveLabs.delete(this);
  }

  /** Synchronous variant used from process exit/signal handlers; no grace period. */
  cleanupSync(): void {
    if (this.cleaned) return;
    for (const tracked of this.children) if (!tracked.exited) signalGroup(tracked.child, 'SIGKILL');
    this.deleteNamespacesSync();
    this.cleaned = true;
    liveLabs.delete(this);
  }

  private deleteNamespacesSync(): void {
    // Hosts first, switch last: deleting a host namespace destroys its veth ends, which removes
    // their peers from the bridge.
    const existing = new Set(listNamespaces());
    for (const ns of [...this.namespaces].reverse()) {
      if (!existing.has(ns)) continue;
      try {
        ipSync(['netns', 'del', ns]);
      } catch {
        // Reported by the test's final `ip netns list` check if it really stayed.
      }
    }
  }

  private assertLive(): void {
    if (this.cleaned || this.cleanupPromise) throw new Error('NetnsLab used after cleanup()');
  }
}

/**
 * GET `url` from inside the host's namespace (the server usually listens there) and parse JSON.
 * Uses curl when installed, else a `node -e` fetch.
 */
export async function httpGetJson<T = unknown>(host: LabHost, url: string, opts: { timeoutMs?: number } = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  let result: ExecResult;
  if (haveCurl()) {
    const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    // The status code goes on a line of its own after the body so non-2xx answers are visible.
    result = await runCommand(
      'ip',
      ['netns', 'exec', host.ns, 'curl', '-sS', '--max-time', seconds, '-w', '\n%{http_code}', url],
      timeoutMs + 2_000,
    );
  } else {
    const script =
      'const r=await fetch(process.argv[1],{signal:AbortSignal.timeout(Number(process.argv[2]))});' +
      'process.stdout.write((await r.text())+"\\n"+r.status)';
    result = await runCommand(
      'ip',
      ['netns', 'exec', host.ns, process.execPath, '--input-type=module', '-e', script, url, String(timeoutMs)],
      timeoutMs + 2_000,
    );
  }
  if (result.code !== 0) {
    throw new Error(`GET ${url} in ${host.ns} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  const cut = result.stdout.lastIndexOf('\n');
  const body = result.stdout.slice(0, cut);
  const status = Number(result.stdout.slice(cut + 1));
  if (!(status >= 200 && status < 300)) throw new Error(`GET ${url} in ${host.ns}: HTTP ${status}: ${body.slice(0, 500)}`);
  try {
    return JSON.parse(body) as T;
  } catch (err) {
    throw new Error(`GET ${url} in ${host.ns}: body is not JSON (${errorText(err)}): ${body.slice(0, 500)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

let curlPresent: boolean | undefined;
function haveCurl(): boolean {
  curlPresent ??= ['/usr/bin/curl', '/bin/curl', '/usr/local/bin/curl'].some((p) => existsSync(p));
  return curlPresent;
}

/** Switch-side port names live only inside the switch namespace: short, fixed, collision-free. */
function switchPortName(hostIndex: number, ifaceIndex: number): string {
  return ifaceIndex === 0 ? `p${hostIndex}` : `p${hostIndex}e${ifaceIndex}`;
}

function ipSync(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: COMMAND_TIMEOUT_MS });
}

async function ip(args: string[]): Promise<void> {
  const result = await runCommand('ip', args, COMMAND_TIMEOUT_MS);
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
}

function runCommand(command: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const failure = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({
        code: failure ? (typeof failure.code === 'number' ? failure.code : null) : 0,
        signal: failure?.signal ?? null,
        stdout,
        stderr: failure && typeof failure.code === 'string' ? `${stderr}${failure.message}` : stderr,
      });
    });
  });
}

function collect(child: ChildProcess, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin?.end();
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: `${stderr}${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Signals the child's whole process group (it was spawned detached), else just the child. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

/** Whether a pid names a live process (EPERM: alive, someone else's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function errorText(err: unknown): string {
  if (err && typeof err === 'object' && 'stderr' in err) {
    const stderr = String((err as { stderr: unknown }).stderr ?? '').trim();
    if (stderr) return stderr;
  }
  return err instanceof Error ? err.message : String(err);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Collects a stream's lines as they arrive so a test can wait for one matching a predicate
 * (lines seen before the wait started count too).
 */
export class LineCollector {
  readonly lines: string[] = [];
  private partial = '';
  private waiters = new Set<() => void>();

  constructor(stream: NodeJS.ReadableStream | null | undefined) {
    stream?.on('data', (chunk: Buffer | string) => {
      const text = this.partial + chunk.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) this.lines.push(line);
      if (parts.length > 0) for (const wake of [...this.waiters]) wake();
    });
  }

  /** Lines (from `from` on) that match. */
  matching(predicate: (line: string) => boolean, from = 0): string[] {
    return this.lines.slice(from).filter(predicate);
  }

  /** Resolves with the first matching line at index >= from; rejects after timeoutMs. */
  waitFor(predicate: (line: string) => boolean, timeoutMs: number, what = 'a matching line', from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      let scanned = from;
      const check = (): boolean => {
        for (; scanned < this.lines.length; scanned++) {
          const line = this.lines[scanned]!;
          if (predicate(line)) {
            done();
            resolve(line);
            return true;
          }
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; lines so far:\n${this.lines.join('\n')}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      };
      const wake = (): void => void check();
      this.waiters.add(wake);
      check();
    });
  }
}
