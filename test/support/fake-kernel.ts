// A fake of the kernel's adjtimex/clock_adjtime for tests: it keeps the NTP state the way
// kernel/time/ntp.c does for the modes our driver uses, and records every call. Nothing here
// reaches a real kernel.
import {
  ADJ_ESTERROR,
  ADJ_FREQUENCY,
  ADJ_MAXERROR,
  ADJ_NANO,
  ADJ_OFFSET,
  ADJ_SETOFFSET,
  ADJ_STATUS,
  STA_NANO,
  STA_PLL,
  STA_RONLY,
  STA_UNSYNC,
  TIME_ERROR,
  TIME_OK,
  emptyTimex,
  errnoResult,
  type Timex,
  type TimexRequest,
  type TimexResult,
  type TimexSyscall,
} from '../../src/clock/timex.ts';

const SCALE = 65_536;

export type Call = { via: 'adjtimex' | 'clockAdjtime'; request: TimexRequest };

/** Kernel NTP state as far as this driver touches it; applies modes like kernel/time/ntp.c does. */
export class FakeKernel implements TimexSyscall {
  timex: Timex;
  calls: Call[] = [];
  /** The next calls with modes != 0 fail with this errno name. */
  failWrites: string | null = null;
  failReads = false;
  stepsNs: number[] = [];

  constructor(initial: Partial<Timex> = {}) {
    this.timex = { ...emptyTimex(), status: STA_UNSYNC, maxerror: 16_000_000, esterror: 16_000_000, tick: 10_000, tolerance: 500 * SCALE, ...initial };
  }

  adjtimex(request: TimexRequest): TimexResult {
    return this.apply('adjtimex', request);
  }

  clockAdjtime(request: TimexRequest): TimexResult {
    return this.apply('clockAdjtime', request);
  }

  /** Only the calls that would have changed something. */
  writes(): Call[] {
    return this.calls.filter((call) => call.request.modes !== 0);
  }

  private apply(via: Call['via'], request: TimexRequest): TimexResult {
    this.calls.push({ via, request: structuredClone(request) });
    const modes = request.modes;
    if (modes === 0 && this.failReads) return errnoResult(22, via);
    if (modes !== 0 && this.failWrites) return { ok: false, errno: 1, code: this.failWrites, message: `${via} failed: ${this.failWrites}` };
    const tx = this.timex;
    if (modes & ADJ_SETOFFSET) {
      this.stepsNs.push(request.time!.tv_sec * 1e9 + request.time!.tv_usec * (modes & ADJ_NANO ? 1 : 1000));
      // ntp_clear()
      tx.status |= STA_UNSYNC;
      tx.maxerror = 16_000_000;
      tx.esterror = 16_000_000;
      tx.offset = 0;
    }
    if (modes & ADJ_STATUS) tx.status = (tx.status & STA_RONLY) | ((request.status ?? 0) & ~STA_RONLY);
    if (modes & ADJ_NANO) tx.status |= STA_NANO;
    if (modes & ADJ_FREQUENCY) tx.freq = request.freq ?? 0;
    if (modes & ADJ_MAXERROR) tx.maxerror = request.maxerror ?? 0;
    if (modes & ADJ_ESTERROR) tx.esterror = request.esterror ?? 0;
    if (modes & ADJ_OFFSET && tx.status & STA_PLL) tx.offset = request.offset ?? 0;
    return { ok: true, state: tx.status & STA_UNSYNC ? TIME_ERROR : TIME_OK, timex: { ...structuredClone(tx), modes } };
  }
}

