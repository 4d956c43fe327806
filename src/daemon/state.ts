// The state directory (--state-dir): what an agent keeps across restarts, so that a restarted
// agent never goes back to an older term, and starts from the frequency it had learned (like
// chrony's drift file). Written atomically (temp file + rename); a missing,
// unreadable or malformed file is reported and ignored, never fatal.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { COUNTER_MAX, FREQUENCY_PPM_MAX } from '../core/limits.ts';
import type { ClockMode } from '../clock/driver.ts';
import type { PersistedNodeState } from '../core/node.ts';

const STATE_FILE = 'state.json';

/** The learned frequency per kind of clock: a virtual clock's says nothing about the kernel's. */
export type SavedFrequencies = Partial<Record<ClockMode, number>>;

const frequencyPpm = z.number().min(-FREQUENCY_PPM_MAX).max(FREQUENCY_PPM_MAX);

const stateSchema = z
  .object({
    nodeId: z.string(),
    term: z.number().int().min(0).max(COUNTER_MAX),
    lastMasterTerm: z.number().int().min(0).max(COUNTER_MAX).default(0),
    // The last boot id (see NodeConfig.bootId): the next start takes a larger one.
    bootId: z.number().int().min(0).max(COUNTER_MAX).optional().catch(undefined),
    // A bad drift entry alone must not cost the term: drop just it.
    frequencyPpm: z.object({ virtual: frequencyPpm.optional(), system: frequencyPpm.optional() }).optional().catch(undefined),
  })
  .loose();

export type LoadResult = { state: PersistedNodeState | null; frequencies: SavedFrequencies; warning: string | null; bootId?: number };

export async function loadState(stateDir: string, nodeId: string): Promise<LoadResult> {
  const file = path.join(stateDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: null, frequencies: {}, warning: null };
    return { state: null, frequencies: {}, warning: `cannot read ${file}: ${(error as Error).message}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { state: null, frequencies: {}, warning: `${file} is not JSON; ignoring it` };
  }
  const result = stateSchema.safeParse(parsed);
  if (!result.success) return { state: null, frequencies: {}, warning: `${file} has an unexpected shape; ignoring it` };
  // The state of another node id (a renamed agent) says nothing about this one.
  if (result.data.nodeId !== nodeId) return { state: null, frequencies: {}, warning: `${file} belongs to node ${result.data.nodeId}; ignoring it` };
  const loaded: LoadResult = { state: { term: result.data.term, lastMasterTerm: result.data.lastMasterTerm }, frequencies: result.data.frequencyPpm ?? {}, warning: null };
  if (result.data.bootId !== undefined) loaded.bootId = result.data.bootId;
  return loaded;
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
