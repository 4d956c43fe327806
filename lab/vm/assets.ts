// What the VM lab needs from outside the repository, fetched once from Debian's archive and cached:
// a user-mode-linux kernel that runs on this CPU, and a chronyd for the host side.
//
// The kernel: Debian stable's user-mode-linux (6.1) and trixie's (6.12) panic at the guest's first
// process on hosts whose XSAVE area is larger than UML's fixed FP buffer (AVX-512, AMX: "userspace
// - ptrace set fp regs failed, errno = 14", because the host's PTRACE_SETREGSET wants the whole
// area). UML sizes the buffer from the host since 6.13, so the lab takes the user-mode-linux of
// Debian testing (then unstable) with the C library of the same suite, and points the binary's
// interpreter at that library with patchelf (running it through ld.so instead moves its load
// address, which UML refuses). Nothing is installed on the host: both packages are only unpacked.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Where the lab keeps what it fetched and built; outside the checkout so every run reuses it. */
export const LAB_CACHE_DIR = process.env.BERKELEY_LAB_CACHE ?? '/var/cache/berkeley-agent-lab';
const DEBIAN_ARCHIVE = 'http://deb.debian.org/debian';
/** Suites searched, in order, for a user-mode-linux recent enough for any x86-64 host. */
const UML_SUITES = ['forky', 'sid'];
/** UML sizes its FP register buffer from the host from this kernel version on. */
const UML_VERSION_MIN = [6, 13];
const FETCH_TIMEOUT_MS = 120_000;
const COMMAND_TIMEOUT_MS = 120_000;

interface DebianPackage {
  name: string;
  version: string;
  filename: string;
  sha256: string;
}

/** The stanza of `name` in a suite's Packages index (amd64, main). */
async function findPackage(suite: string, name: string): Promise<DebianPackage | null> {
  const url = `${DEBIAN_ARCHIVE}/dists/${suite}/main/binary-amd64/Packages.xz`;
  const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const index = execFileSync('xz', ['-dc'], { input: Buffer.from(await response.arrayBuffer()), maxBuffer: 1 << 30 }).toString('utf8');
  const start = index.indexOf(`\nPackage: ${name}\n`);
  if (start < 0) return null;
  const end = index.indexOf('\n\n', start + 1);
  const stanza = index.slice(start + 1, end < 0 ? undefined : end);
  const field = (key: string): string => new RegExp(`^${key}: (.*)$`, 'm').exec(stanza)?.[1]?.trim() ?? '';
  return { name, version: field('Version'), filename: field('Filename'), sha256: field('SHA256') };
}

/** Downloads a package, checks its SHA-256 against the index, and unpacks it into `into`. */
async function unpackPackage(pkg: DebianPackage, into: string): Promise<void> {
  const url = `${DEBIAN_ARCHIVE}/${pkg.filename}`;
  const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== pkg.sha256) throw new Error(`${url}: SHA-256 ${digest} is not the index's ${pkg.sha256}`);
  const deb = path.join(into, path.basename(pkg.filename));
  mkdirSync(into, { recursive: true });
  writeFileSync(deb, bytes);
  execFileSync('dpkg-deb', ['-x', deb, into], { timeout: COMMAND_TIMEOUT_MS });
  rmSync(deb);
}

function versionAtLeast(version: string, minimum: number[]): boolean {
  const parts = version.split(/[^0-9]+/).filter(Boolean).map(Number);
  for (let i = 0; i < minimum.length; i += 1) {
    const have = parts[i] ?? 0;
    const want = minimum[i] ?? 0;
    if (have !== want) return have > want;
  }
  return true;
}

/**
 * A runnable linux.uml (cached): $BERKELEY_LAB_UML when set, else Debian's newest (see above).
 * Throws, saying why, when none can be had.
 */
export async function umlKernel(): Promise<string> {
  const override = process.env.BERKELEY_LAB_UML;
  if (override) {
    if (!existsSync(override)) throw new Error(`BERKELEY_LAB_UML=${override}: no such file`);
    return override;
  }
  const current = path.join(LAB_CACHE_DIR, 'uml', 'current');
  if (existsSync(current)) {
    const kernel = readFileSync(current, 'utf8').trim();
    if (existsSync(kernel)) return kernel;
  }
  let found: { suite: string; pkg: DebianPackage } | null = null;
  for (const suite of UML_SUITES) {
    const pkg = await findPackage(suite, 'user-mode-linux');
    if (pkg && versionAtLeast(pkg.version, UML_VERSION_MIN)) {
      found = { suite, pkg };
      break;
    }
  }
  if (found === null) throw new Error(`no user-mode-linux >= ${UML_VERSION_MIN.join('.')} in Debian ${UML_SUITES.join(' or ')}`);
  const libc = await findPackage(found.suite, 'libc6');
  if (libc === null) throw new Error(`Debian ${found.suite} has no libc6`);
  const dir = path.join(LAB_CACHE_DIR, 'uml', `${found.pkg.version}-libc${libc.version}`.replace(/[^0-9A-Za-z.+-]/g, '_'));
  const staging = `${dir}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  await unpackPackage(found.pkg, staging);
  await unpackPackage(libc, staging);
  const libDir = path.join(dir, 'usr', 'lib', 'x86_64-linux-gnu');
  const kernel = path.join(dir, 'linux.uml');
  copyFileSync(path.join(staging, 'usr', 'bin', 'linux.uml'), path.join(staging, 'linux.uml'));
  // The interpreter and run path name the final directory, which the staging one becomes.
  execFileSync('patchelf', ['--set-interpreter', path.join(libDir, 'ld-linux-x86-64.so.2'), '--set-rpath', libDir, path.join(staging, 'linux.uml')], { timeout: COMMAND_TIMEOUT_MS });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  execFileSync(kernel, ['--version'], { timeout: COMMAND_TIMEOUT_MS, stdio: 'ignore' });
  writeFileSync(`${current}.tmp`, `${kernel}\n`);
  renameSync(`${current}.tmp`, current);
  return kernel;
}

/**
 * A chronyd for the host side of the lab (it serves the host clock with -x, never touching it):
 * the machine's own when installed, else Debian's package unpacked into the cache (never installed:
 * a package install could start the daemon on this machine's clock).
 */
export function hostChronyd(): string {
  for (const candidate of ['/usr/sbin/chronyd', '/sbin/chronyd']) if (existsSync(candidate)) return candidate;
  const dir = path.join(LAB_CACHE_DIR, 'chrony');
  const chronyd = path.join(dir, 'root', 'usr', 'sbin', 'chronyd');
  if (existsSync(chronyd)) return chronyd;
  const staging = `${dir}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  execFileSync('apt-get', ['download', 'chrony'], { cwd: staging, timeout: COMMAND_TIMEOUT_MS, stdio: 'ignore' });
  const deb = execFileSync('sh', ['-c', 'ls chrony_*.deb'], { cwd: staging, encoding: 'utf8' }).trim();
  execFileSync('dpkg-deb', ['-x', deb, path.join(staging, 'root')], { cwd: staging, timeout: COMMAND_TIMEOUT_MS });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return chronyd;
}
