// chronyd as an upstream NTP server in a network namespace of a NetnsLab (tests and benchmarks of
// the NTP client): `chronyd -x` never touches the clock, and `local stratum 1` makes it serve this
// machine's clock as a stratum-1 server. Its config, pidfile and driftfile live in a directory the
// caller owns; the lab's cleanup kills it with everything else in the namespace.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { sleep, type LabHost, type NetnsLab } from '../netns/netns.ts';

/** How long chronyd gets to print its start line. */
const START_TIMEOUT_MS = 10_000;

export async function startChronydServer(lab: NetnsLab, host: LabHost, options: { binary: string; port: number; dir: string }): Promise<ChildProcess> {
  const base = path.join(options.dir, `chronyd-h${host.index}`);
  writeFileSync(`${base}.conf`, [
    'local stratum 1', 'allow', `port ${options.port}`, 'cmdport 0', `pidfile ${base}.pid`, `driftfile ${base}.drift`, '',
  ].join('\n'));
  // -x: never touch the clock. -d: stay in the foreground (the lab kills it). -u root: the
  // unpacked package made no _chrony user.
  const child = lab.spawn(host, options.binary, ['-x', '-d', '-u', 'root', '-f', `${base}.conf`], { label: `chronyd h${host.index}` });
  const deadlineMs = Date.now() + START_TIMEOUT_MS;
  while (!/chronyd version/.test(lab.outputOf(child))) {
    if (child.exitCode !== null || Date.now() > deadlineMs) throw new Error(`chronyd in h${host.index} did not start:\n${lab.outputOf(child)}`);
    await sleep(50);
  }
  return child;
}
