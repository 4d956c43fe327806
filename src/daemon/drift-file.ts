// The drift file rule: which frequencies the state directory keeps. A learned frequency is
// written when it moved by more than FREQUENCY_SAVE_PPM, at most once per
// FREQUENCY_SAVE_INTERVAL_MS, and always at stop; only while synchronized (an unsynchronized
// clock's frequency is not worth keeping). Every kind of clock has its own entry; only ours moves.
import type { ClockMode } from '../clock/driver.ts';
import { FREQUENCY_SAVE_INTERVAL_MS, FREQUENCY_SAVE_PPM } from '../core/limits.ts';
import type { SavedFrequencies } from './state.ts';

export class DriftFile {
  private saved: SavedFrequencies;
  private savedAtMs = Number.NEGATIVE_INFINITY;

  /** `loaded`: the drift file as read at start. */
  constructor(
    private readonly mode: ClockMode,
    loaded: SavedFrequencies | undefined,
  ) {
    this.saved = { ...loaded };
  }

  /** The frequencies to write now (the same object as last time when nothing is to change). */
  toSave(discipline: { isSynchronized: boolean; frequencyPpm: number }, nowMs: number, force = false): SavedFrequencies {
    if (!discipline.isSynchronized) return this.saved;
    const frequencyPpm = Math.round(discipline.frequencyPpm * 1000) / 1000;
    const saved = this.saved[this.mode];
    const moved = saved === undefined || Math.abs(saved - frequencyPpm) > FREQUENCY_SAVE_PPM;
    if (force || (moved && nowMs - this.savedAtMs >= FREQUENCY_SAVE_INTERVAL_MS)) {
      this.saved = { ...this.saved, [this.mode]: frequencyPpm };
      this.savedAtMs = nowMs;
    }
    return this.saved;
  }
}
