// `chronyd -Q` as a measuring client (tests and benchmarks of the NTP server): it queries one
// server, prints "System clock wrong by X seconds (ignored)" and exits, never touching this
// machine's clock. Asynchronous, so that a server in the calling process keeps answering.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostChronyd } from '../vm/assets.ts';

export interface ChronyMeasurement {
  /** The server's address this sample came from. */
  server: string;
  /** chrony's leap column: N normal, + insert, - delete (a reply with LI 3 is not logged: chrony takes no sample from it). */
  leap: string;
  stratum: number;
  /** Offset of this sample, s (server minus us). */
  offsetS: number;
  rootDelayS: number;
  rootDispersionS: number;
  /** Refid as chrony prints it: 8 hex digits. */
  refid: string;
}

export interface ChronyRun {
  exitCode: number;
  output: string;
  /** chrony's measurements.log: one entry per reply it took as a sample. */
  measurements: ChronyMeasurement[];
  /** "System clock wrong by X seconds" in ns (how far this machine's clock would move to agree with the server); null when none. */
  wrongByNs: number | null;
}

export interface ChronyQOptions {
  /** More servers (all asked at once); the first is `address:port`. */
  moreServers?: { address: string; port: number }[];
  /** Run inside this network namespace (`ip netns exec NS chronyd ...`). */
  netns?: string;
  /** More chrony.conf directives (e.g. `minsources 4`). */
  directives?: string[];
}

/** A chronyd binary that runs here, or why there is none. */
export function findChronyd(): { path: string } | { skip: string } {
  if (process.platform !== 'linux') return { skip: 'chronyd needs Linux' };
  if (process.getuid?.() !== 0) return { skip: 'chronyd -Q runs as root here (-u root: the unpacked package has no _chrony user); run as root, as CI does' };
  try {
    return { path: hostChronyd() };
  } catch (error) {
    return { skip: `no chronyd: not installed and Debian's package could not be fetched (${(error as Error).message.split('\n')[0]})` };
  }
}

/** One `chronyd -Q -t timeoutS` against `address:port` (and any more servers; poll 1/16 s, iburst). */
export function runChronyQ(binary: string, address: string, port: number, timeoutS: number, options: ChronyQOptions = {}): Promise<ChronyRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chrony-q-'));
  const servers = [{ address, port }, ...(options.moreServers ?? [])];
  const args = [
    '-Q', '-t', String(timeoutS), '-u', 'root', '-f', '/dev/null',
    ...servers.map((server) => `server ${server.address} port ${server.port} iburst minpoll -4 maxpoll -4`),
    `pidfile ${path.join(dir, 'chronyd.pid')}`, 'cmdport 0', 'port 0', `logdir ${dir}`, 'log measurements',
    ...(options.directives ?? []),
  ];
  const [command, commandArgs] = options.netns === undefined ? [binary, args] : ['ip', ['netns', 'exec', options.netns, binary, ...args]];
  const read = (name: string) => {
    try {
      return readFileSync(path.join(dir, name), 'utf8').split('\n').filter((line) => /^\d{4}-/.test(line)).map((line) => line.trim().split(/\s+/));
    } catch {
      return []; // Nothing logged: no file.
    }
  };
  return new Promise((resolve) => {
    execFile(command, commandArgs, { timeout: (timeoutS + 15) * 1000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      // Date Time IP L St 123 567 ABCD LP RP Score Offset PeerDel PeerDisp RootDel RootDisp Refid MTxRx
      const measurements = read('measurements.log').map((fields) => ({
        server: fields[2] ?? '', leap: fields[3] ?? '', stratum: Number(fields[4]), offsetS: Number(fields[11]),
        rootDelayS: Number(fields[14]), rootDispersionS: Number(fields[15]), refid: fields[16] ?? '',
      }));
      rmSync(dir, { recursive: true, force: true });
      const output = `${stdout}${stderr}`;
      const match = /System clock wrong by (-?[0-9.]+) seconds/.exec(output);
      const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ exitCode, output, measurements, wrongByNs: match ? Math.round(Number(match[1]) * 1e9) : null });
    });
  });
}
