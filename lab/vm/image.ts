// The lab's guest image: a Debian root filesystem built with debootstrap, made into an ext4 image
// that every guest boots through a copy-on-write overlay. Built once and cached under a key of
// everything that goes into it (the recipe below, the guest files, the node binary), so a change
// to any of them builds a new one.
//
// The guest has systemd, ssh (root, by the lab's key only), chrony (disabled: only the tests start
// it, or run `chronyd -Q` to measure), adjtimex (to detune its tick) and the host's node binary.
// The product is not in the image: each lab installs the freshly packed tarball (see lab.ts).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_CACHE_DIR } from './assets.ts';

const GUEST_FILES_DIR = fileURLToPath(new URL('./guest/', import.meta.url));
const DEBIAN_SUITE = 'bookworm';
const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'procps', 'kmod', 'openssh-server', 'chrony', 'adjtimex', 'libstdc++6'];
/** Raise to rebuild every cached image when the steps below change. */
const RECIPE_VERSION = 2;
const IMAGE_SIZE = '1G';
const DEBOOTSTRAP_TIMEOUT_MS = 15 * 60_000;
const COMMAND_TIMEOUT_MS = 120_000;
/** Units a lab guest does not need (timers that wake the disk, consoles nobody logs into). */
const UNITS_MASKED = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'fstrim.timer', 'man-db.timer',
  'getty@tty1.service', 'serial-getty@ttyS0.service', 'console-getty.service', 'systemd-timesyncd.service'];

export interface GuestImage {
  /** The ext4 image guests boot (never written: each guest has its own overlay). */
  imagePath: string;
  /** Private key that logs into every guest as root. */
  sshKeyPath: string;
}

function imageKey(): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ RECIPE_VERSION, DEBIAN_SUITE, PACKAGES, UNITS_MASKED, IMAGE_SIZE, node: process.version }));
  for (const name of readdirSync(GUEST_FILES_DIR).sort()) hash.update(name).update(readFileSync(path.join(GUEST_FILES_DIR, name)));
  return hash.digest('hex').slice(0, 16);
}

function run(command: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): void {
  execFileSync(command, args, { timeout: timeoutMs, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Runs the guest's own `systemctl ARGS` in the unbooted root (in a chroot it works offline). */
function systemctlIn(root: string, args: string[]): void {
  run('chroot', [root, 'systemctl', ...args]);
}

/**
 * The cached image, built first when missing (about a minute: debootstrap, then mkfs.ext4 -d).
 * `log` hears what takes time.
 */
export function guestImage(log: (line: string) => void = () => {}): GuestImage {
  const dir = path.join(LAB_CACHE_DIR, 'images', imageKey());
  const image: GuestImage = { imagePath: path.join(dir, 'rootfs.img'), sshKeyPath: path.join(dir, 'lab_ed25519') };
  if (existsSync(image.imagePath) && existsSync(image.sshKeyPath)) return image;
  const staging = `${dir}.${process.pid}.tmp`;
  const root = path.join(staging, 'root');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    log(`building the guest image (debootstrap ${DEBIAN_SUITE}) in ${staging}`);
    run('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, DEBIAN_SUITE, root, DEBIAN_MIRROR], DEBOOTSTRAP_TIMEOUT_MS);

    // Network, name and the host share from the kernel command line.
    copyFileSync(path.join(GUEST_FILES_DIR, 'lab-setup.sh'), path.join(root, 'usr/local/sbin/lab-setup'));
    chmodSync(path.join(root, 'usr/local/sbin/lab-setup'), 0o755);
    copyFileSync(path.join(GUEST_FILES_DIR, 'lab-setup.service'), path.join(root, 'etc/systemd/system/lab-setup.service'));
    systemctlIn(root, ['enable', 'lab-setup.service']);
    // chrony stays installed for the tests that measure with it or run beside it, but off.
    systemctlIn(root, ['disable', 'chrony.service']);
    systemctlIn(root, ['mask', ...UNITS_MASKED]);
    // No pool: a guest's chronyd reaches only what a test names.
    const chronyConf = path.join(root, 'etc/chrony/chrony.conf');
    writeFileSync(chronyConf, readFileSync(chronyConf, 'utf8').replace(/^(pool|server|sourcedir) /gm, '#$1 '));
    writeFileSync(path.join(root, 'etc/fstab'), '/dev/ubda / ext4 defaults 0 1\n');
    // Empty: each guest makes its own machine id on first boot (its overlay keeps it).
    writeFileSync(path.join(root, 'etc/machine-id'), '');
    // The same node the host runs (guests cannot reach the registry; the product's bundle needs only node).
    copyFileSync(process.execPath, path.join(root, 'usr/local/bin/node'));
    chmodSync(path.join(root, 'usr/local/bin/node'), 0o755);
    mkdirSync(path.join(root, 'usr/local/lib/node_modules'), { recursive: true });

    // Root logs in over ssh with the lab's key only.
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'berkeley-agent-lab', '-f', path.join(staging, 'lab_ed25519')]);
    mkdirSync(path.join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
    copyFileSync(path.join(staging, 'lab_ed25519.pub'), path.join(root, 'root/.ssh/authorized_keys'));
    const sshd = path.join(root, 'etc/ssh/sshd_config');
    writeFileSync(sshd, `${readFileSync(sshd, 'utf8')}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n`);

    log(`making ${IMAGE_SIZE} ext4 image`);
    run('mkfs.ext4', ['-q', '-F', '-L', 'labroot', '-d', root, path.join(staging, 'rootfs.img'), IMAGE_SIZE]);
    rmSync(root, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    // Images of other recipes are a gigabyte each: keep only this one (a guest still running on an
    // old one keeps its open file).
    for (const other of readdirSync(path.dirname(dir))) {
      if (other !== path.basename(dir) && !other.endsWith('.tmp')) rmSync(path.join(path.dirname(dir), other), { recursive: true, force: true });
    }
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`building the lab's guest image failed: ${(error as Error).message}${stderr ? `\n${stderr.slice(-2000)}` : ''}`);
  }
  return image;
}
