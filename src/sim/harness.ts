// The one discrete-event loop every simulation here runs on: the seeded simulator
// (simulation.ts), the perfect-network node pump of the election tests (pump.ts) and the barrier
// simulation. Time jumps to the earliest queued event or polled deadline (never backwards); each
// instant hands every event due by then to the caller in order (ties by insertion), then lets it
// act on what is due (timers, flushing outputs). Only simulated time exists here: no wall clock.
import { EventQueue } from './queue.ts';

export interface RunOptions<E> {
  /** Stop before an instant later than this (then time is moved to it, when finite). */
  endMs?: number;
  /** The earliest polled deadline (nodes that are asked instead of queueing their timers). */
  nextDeadlineMs?: () => number;
  /** One due event. */
  onEvent: (event: E, nowMs: number) => void;
  /** After the instant's events: act on what is due now. */
  afterEvents?: (nowMs: number) => void;
  /** Checked before every instant: true ends the run. */
  stop?: () => boolean;
  /**
   * A run that comes back to one instant more often than this throws: a deadline that its tick
   * does not clear would otherwise spin forever.
   */
  repeatsMax?: number;
}

export class EventLoop<E> {
  nowMs = 0;
  private readonly queue = new EventQueue<E>();

  /** Queues `event` for `atMs` (an event in the past is handed over at the next instant). */
  at(atMs: number, event: E): void {
    this.queue.push(atMs, event);
  }

  /** When the next queued event is due (Infinity: none). */
  peekMs(): number {
    return this.queue.peekMs();
  }

  get queued(): number {
    return this.queue.size;
  }

  run(options: RunOptions<E>): void {
    const endMs = options.endMs ?? Number.POSITIVE_INFINITY;
    let repeats = 0;
    let lastMs = Number.NaN;
    while (!(options.stop?.() ?? false)) {
      const nextMs = Math.max(this.nowMs, Math.min(this.queue.peekMs(), options.nextDeadlineMs?.() ?? Number.POSITIVE_INFINITY));
      if (nextMs > endMs || nextMs === Number.POSITIVE_INFINITY) break;
      repeats = nextMs === lastMs ? repeats + 1 : 0;
      lastMs = nextMs;
      if (options.repeatsMax !== undefined && repeats > options.repeatsMax) throw new Error(`simulation stuck at ${nextMs} ms (a deadline that tick() does not clear)`);
      this.nowMs = nextMs;
      while (this.queue.peekMs() <= this.nowMs) {
        const event = this.queue.pop();
        if (event === undefined) break;
        options.onEvent(event.item, this.nowMs);
      }
      options.afterEvents?.(this.nowMs);
    }
    if (Number.isFinite(endMs)) this.nowMs = Math.max(this.nowMs, endMs);
  }
}
