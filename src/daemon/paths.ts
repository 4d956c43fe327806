// Directories the agent is told to write to (--state-dir, install-service --unit-dir) are checked
// before anything is created in them. Under /proc and /sys, Node's mkdirSync({recursive: true})
// spins at 100% CPU forever (every level "exists" and none can be created), and nothing there is
// meant to be written by us anyway.
import { existsSync, statfsSync } from 'node:fs';
import path from 'node:path';

/** statfs f_type of the kernel's pseudo file systems (linux/magic.h). */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x6e736673, 'nsfs'],
  [0xcafe4a11, 'bpf'],
  [0x42494e4d, 'binfmt_misc'],
]);

const PSEUDO_PREFIXES = ['/proc', '/sys', '/dev'];

/** Why `dir` is not a place to write files, or null when it may be. */
export function pseudoFilesystemProblem(dir: string): string | null {
  const absolute = path.resolve(dir);
  for (const prefix of PSEUDO_PREFIXES) {
    if (absolute === prefix || absolute.startsWith(`${prefix}/`)) return `${absolute} is under ${prefix}, a kernel pseudo file system`;
  }
  // A bind mount or symlink elsewhere can still lead into one: ask the nearest existing ancestor.
  let existing = absolute;
  while (!existsSync(existing)) {
    const parent = path.dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  try {
    const type = PSEUDO_FILESYSTEMS.get(Number(statfsSync(existing).type));
    if (type !== undefined) return `${absolute} is on ${type}, a kernel pseudo file system`;
  } catch {
    // statfs refused (permissions): the later mkdir or write reports the real problem.
  }
  return null;
}
