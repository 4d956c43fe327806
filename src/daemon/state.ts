// The state directory (--state-dir): what an agent keeps across restarts, so that a restarted
// agent never goes back to an older term, and starts from the frequency it had learned (like
// chrony's drift file). Written atomically (temp file + rename).
//
// At start the directory is checked (a directory, writable, not under /proc or /sys) and locked
// (one agent per directory: two would overwrite each other's term and frequency). Loading
// validates every field on its own and keeps what is valid (a bad term does not cost a good
// frequency); a file that cannot be used as it is, is copied aside (state.json.bad-<time>) before
// the agent's first save replaces it, so nothing on disk is lost by mistake.
import { copyFileSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { COUNTER_MAX, FREQUENCY_PPM_MAX, TERM_ADOPT_MAX } from '../core/limits.ts';
import type { ClockMode } from '../clock/driver.ts';
import type { PersistedNodeState } from '../core/node.ts';
import { pseudoFilesystemProblem } from './paths.ts';

export const STATE_FILE = 'state.json';
export const LOCK_FILE = 'agent.lock';

/** The learned frequency per kind of clock: a virtual clock's says nothing about the kernel's. */
export type SavedFrequencies = Partial<Record<ClockMode, number>>;

const frequencyPpm = z.number().min(-FREQUENCY_PPM_MAX).max(FREQUENCY_PPM_MAX);
// A term above what peers adopt from frames (TERM_ADOPT_MAX) would make this agent claim terms
// every peer ignores, for good.
const term = z.number().int().min(0).max(TERM_ADOPT_MAX);

export type LoadResult = {
  state: PersistedNodeState | null;
  frequencies: SavedFrequencies;
  /** One line for the log: what was wrong and what was kept; null when the file was fine. */
  warning: string | null;
  bootId?: number;
  /** Where the unusable original was copied (null: nothing needed keeping). */
  keptCopy?: string | null;
};

/** Copies a state file aside (state.json.bad-<ISO time>); returns the copy's path or null. */
function keepCopy(file: string, now: Date): string | null {
  const copy = `${file}.bad-${now.toISOString().replace(/[:.]/g, '-')}`;
  try {
    copyFileSync(file, copy);
    return copy;
  } catch {
    return null;
  }
}

export async function loadState(stateDir: string, nodeId: string, now: Date = new Date()): Promise<LoadResult> {
  const file = path.join(stateDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') return { state: null, frequencies: {}, warning: null };
    // Unreadable (EACCES, a directory in its place): move it aside, which needs only the directory,
    // so that the first save neither replaces it nor fails forever. If even that fails, refuse.
    const aside = `${file}.bad-${now.toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(file, aside);
    } catch (renameError) {
      throw new StateDirError('ESTATEDIR', `--state-dir ${stateDir}: cannot read ${file} (${code}) nor move it aside (${(renameError as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return { state: null, frequencies: {}, warning: `cannot read ${file} (${code}); ignoring it (moved aside as ${aside})`, keptCopy: aside };
  }
  const unusable = (why: string): LoadResult => {
    const copy = keepCopy(file, now);
    return { state: null, frequencies: {}, warning: `${file} ${why}; ignoring it (${copy === null ? 'could not keep a copy' : `kept as ${copy}`})`, keptCopy: copy };
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return unusable('is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return unusable('has an unexpected shape (not a JSON object)');
  const fields = parsed as Record<string, unknown>;
  // The state of another node id (a renamed agent) says nothing about this one.
  if (typeof fields.nodeId !== 'string') return unusable('has an unexpected shape (no nodeId)');
  if (fields.nodeId !== nodeId) return unusable(`belongs to node ${fields.nodeId}`);

  // Every field on its own: what is valid is kept.
  const dropped: string[] = [];
  const field = <T>(name: string, schema: z.ZodType<T>, value: unknown): T | undefined => {
    if (value === undefined) return undefined;
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    dropped.push(`${name} ${JSON.stringify(value)?.slice(0, 40) ?? String(value)}`);
    return undefined;
  };
  const savedTerm = field('term', term, fields.term);
  let lastMasterTerm = field('lastMasterTerm', term, fields.lastMasterTerm);
  if (savedTerm !== undefined && lastMasterTerm !== undefined && lastMasterTerm > savedTerm) {
    dropped.push(`lastMasterTerm ${lastMasterTerm} (above term ${savedTerm})`);
    lastMasterTerm = undefined;
  }
  const bootId = field('bootId', z.number().int().min(0).max(COUNTER_MAX), fields.bootId);
  const frequencies: SavedFrequencies = {};
  if (fields.frequencyPpm !== undefined) {
    if (typeof fields.frequencyPpm !== 'object' || fields.frequencyPpm === null || Array.isArray(fields.frequencyPpm)) {
      dropped.push(`frequencyPpm ${JSON.stringify(fields.frequencyPpm)?.slice(0, 40)}`);
    } else {
      const entries = fields.frequencyPpm as Record<string, unknown>;
      for (const mode of ['virtual', 'system'] as const) {
        const value = field(`frequencyPpm.${mode}`, frequencyPpm, entries[mode]);
        if (value !== undefined) frequencies[mode] = value;
      }
    }
  }
  if (savedTerm === undefined && fields.term === undefined) dropped.push('term (missing)');

  const loaded: LoadResult = {
    // Without a valid term there is no term guarantee to restore; a valid lastMasterTerm alone
    // still keeps this node from claiming that term again.
    state: savedTerm === undefined ? (lastMasterTerm === undefined ? null : { term: lastMasterTerm, lastMasterTerm }) : { term: savedTerm, lastMasterTerm: lastMasterTerm ?? 0 },
    frequencies,
    warning: null,
  };
  if (bootId !== undefined) loaded.bootId = bootId;
  if (dropped.length > 0) {
    const copy = keepCopy(file, now);
    loaded.keptCopy = copy;
    loaded.warning = `${file}: ignored invalid ${dropped.join(', ')}; kept the rest (${copy === null ? 'could not keep a copy' : `original kept as ${copy}`})`;
  }
  return loaded;
}

/** A state directory that cannot be used: the agent refuses to start (exit 2). */
export class StateDirError extends Error {
  constructor(
    readonly code: 'ESTATEDIR' | 'ESTATELOCKED',
    message: string,
  ) {
    super(message);
    this.name = 'StateDirError';
  }
}

/** The holder of a state directory's lock. */
export interface LockHolder {
  pid: number;
  /** The holder's start time in clock ticks since boot (/proc/PID/stat): tells a reused pid apart. */
  startTicks: number | null;
  nodeId: string | null;
  since: string | null;
}

/** The agent's hold on its state directory; release() at stop (also done at process exit). */
export interface StateDirLock {
  file: string;
  release(): void;
}

/** Lock files this process holds: its own pid in a lock means "alive" only for these. */
const locksHeld = new Set<string>();

/** A process's start time (field 22 of /proc/PID/stat, after the ')' that closes comm), or null. */
export function processStartTicks(pid: number | 'self', procDir = '/proc'): number | null {
  try {
    const stat = readFileSync(`${procDir}/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isSafeInteger(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/**
 * Whether the lock's holder still runs: its pid is alive and is the same process (same start
 * time), not one that took a dead agent's pid. Our own pid counts only for a lock we hold (a lock
 * left by a killed agent whose pid we happen to have, as pid 1 in a container, is stale).
 */
function holderAlive(holder: LockHolder, file: string, procDir = '/proc'): boolean {
  if (holder.pid === process.pid) return locksHeld.has(file);
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (holder.startTicks === null) {
    // A lock without a start time (an older agent's): judge by the command line.
    try {
      return readFileSync(`${procDir}/${holder.pid}/cmdline`, 'utf8').includes('berkeley-agent');
    } catch {
      return true;
    }
  }
  const startTicks = processStartTicks(holder.pid, procDir);
  // Alive but hidden (another user, hidepid): assume it is the agent.
  return startTicks === null || startTicks === holder.startTicks;
}

function readHolder(file: string): LockHolder | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0) return null;
    return {
      pid: parsed.pid,
      startTicks: typeof parsed.startTicks === 'number' && Number.isSafeInteger(parsed.startTicks) ? parsed.startTicks : null,
      nodeId: typeof parsed.nodeId === 'string' ? parsed.nodeId : null,
      since: typeof parsed.since === 'string' ? parsed.since : null,
    };
  } catch {
    return null;
  }
}

/**
 * Checks the state directory (creating it if needed) and takes its lock: a lock file holding this
 * process's pid and start time, which appears whole or not at all (written aside, then hard-linked
 * into place: link(2) fails when the name exists). A lock whose holder is gone is stale: it is
 * renamed aside, checked to be the one judged stale, and removed. Throws StateDirError with one
 * line naming the problem or the holder.
 */
export function openStateDir(stateDir: string, nodeId: string): StateDirLock {
  const where = `--state-dir ${stateDir}`;
  const pseudo = pseudoFilesystemProblem(stateDir);
  if (pseudo !== null) throw new StateDirError('ESTATEDIR', `${where}: ${pseudo}; choose a directory on a real file system`);
  try {
    mkdirSync(stateDir, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way (it must be a directory)' : `cannot create it (${code})`;
    throw new StateDirError('ESTATEDIR', `${where}: ${why}`);
  }
  if (!statSync(stateDir).isDirectory()) throw new StateDirError('ESTATEDIR', `${where}: not a directory`);
  const file = path.join(stateDir, LOCK_FILE);
  const record = `${JSON.stringify({ pid: process.pid, startTicks: processStartTicks('self'), nodeId, since: new Date().toISOString() })}\n`;
  // The write test: the state file goes next to the lock, so this proves the directory writable
  // (also for root on a read-only file system, which access(2) would not show).
  const staged = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(staged, record, { mode: 0o644 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new StateDirError('ESTATEDIR', `${where}: not writable (${code}); the agent keeps its term and frequency there`);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        linkSync(staged, file);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        if (code !== 'EEXIST') throw new StateDirError('ESTATEDIR', `${where}: cannot create the lock ${file} (${code})`);
        const text = readTextOrNull(file);
        const holder = text === null ? null : readHolder(file);
        if (holder !== null && holderAlive(holder, file)) {
          const who = `pid ${holder.pid}${holder.nodeId === null ? '' : `, node ${holder.nodeId}`}${holder.since === null ? '' : `, since ${holder.since}`}`;
          throw new StateDirError('ESTATELOCKED', `${where}: in use by another agent (${who}); give each agent its own --state-dir (lock file ${file})`);
        }
        // Stale. Move it aside first, so that a lock another agent took meanwhile is never deleted.
        const aside = `${file}.stale.${process.pid}.${attempt}`;
        try {
          renameSync(file, aside);
        } catch {
          continue; // gone already: the next attempt decides
        }
        if (readTextOrNull(aside) === text) unlinkSync(aside);
        else {
          // Not the lock judged stale: put it back (unless one is there again) and look again.
          try {
            linkSync(aside, file);
          } catch {
            // someone holds the name now; the next attempt reads who
          }
          unlinkSync(aside);
        }
        continue;
      }
      locksHeld.add(file);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        locksHeld.delete(file);
        process.removeListener('exit', release);
        try {
          if (readHolder(file)?.pid === process.pid) unlinkSync(file);
        } catch {
          // Already gone.
        }
      };
      process.once('exit', release);
      return { file, release };
    }
  } finally {
    try {
      unlinkSync(staged);
    } catch {
      // gone
    }
  }
  throw new StateDirError('ESTATELOCKED', `${where}: could not take the lock ${file} (another agent is starting?)`);
}

function readTextOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Saves state synchronously, before the frames that announce it are sent (as Raft persists its
 * term before answering): a crash can then never restart the node below a term it announced.
 * It writes only when the state changed, which is at elections and when the agent decides the
 * frequency moved enough to be worth keeping (at most once a minute), so the cost (a small file and
 * a rename) is rare.
 */
export class StateWriter {
  private lastSaved: string | null = null;

  constructor(
    private readonly stateDir: string,
    private readonly nodeId: string,
    private readonly onError: (error: Error) => void,
    /** This run's boot id, kept so that the next run takes a larger one. */
    private readonly bootId: number | null = null,
  ) {}

  save(state: PersistedNodeState, frequencies: SavedFrequencies = {}): void {
    const key = JSON.stringify([state, frequencies]);
    if (key === this.lastSaved) return;
    try {
      mkdirSync(this.stateDir, { recursive: true });
      const file = path.join(this.stateDir, STATE_FILE);
      const temporary = `${file}.${process.pid}.tmp`;
      const boot = this.bootId === null ? {} : { bootId: this.bootId };
      writeFileSync(temporary, `${JSON.stringify({ nodeId: this.nodeId, ...state, ...boot, frequencyPpm: frequencies, savedAt: new Date().toISOString() })}\n`);
      renameSync(temporary, file);
      this.lastSaved = key;
    } catch (error) {
      this.onError(error as Error);
    }
  }
}
