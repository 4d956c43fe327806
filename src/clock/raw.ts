// CLOCK_MONOTONIC_RAW, the virtual clock's time base. Anyone steering the host clock (chronyd
// following this very agent, an operator's date -s) moves CLOCK_REALTIME and, with every slew and
// frequency change, CLOCK_MONOTONIC (which hrtime reads); the RAW clock counts the oscillator alone
// and no adjtimex call moves it. A virtual clock over it holds still however the host is steered.
// Read through libc's clock_gettime with koffi (Node has no binding); never throws. Also here: a
// sleep until an absolute instant on a clock (clock_nanosleep), for starts at one instant.
import { CLOCK_MONOTONIC_RAW, EINTR, PR_SET_TIMERSLACK, SCHED_FIFO, SCHED_OTHER, TIMER_ABSTIME, loadClockGettime, loadClockNanosleep, type ClockGettime } from '../native/libc.ts';

type LoadClockGettime = () => { clockGettime: ClockGettime } | { error: string };

/** Reads CLOCK_MONOTONIC_RAW in ns, or says why it cannot. `load` is injectable for tests. */
export function openMonotonicRaw(load: LoadClockGettime = loadClockGettime): { nowNs: () => bigint } | { error: string } {
  return openClock(CLOCK_MONOTONIC_RAW, 'CLOCK_MONOTONIC_RAW', load);
}

/** Reads the clock `clockId` (clock_gettime(2)) in ns, or says why it cannot. */
export function openClock(clockId: number, name: string, load: LoadClockGettime = loadClockGettime): { nowNs: () => bigint } | { error: string } {
  const loaded = load();
  if ('error' in loaded) return { error: loaded.error };
  const { clockGettime } = loaded;
  const timespec = new BigInt64Array(2);
  // One trial read: a kernel or libc without the clock (EINVAL) fails here, not mid-run.
  let result: number;
  try {
    result = clockGettime(clockId, timespec);
  } catch (error) {
    return { error: `clock_gettime(${name}) threw: ${(error as Error).message.split('\n')[0]}` };
  }
  if (result !== 0) return { error: `clock_gettime(${name}) returned ${result}` };
  return {
    nowNs(): bigint {
      clockGettime(clockId, timespec);
      return (timespec[0] as bigint) * 1_000_000_000n + (timespec[1] as bigint);
    },
  };
}

type LoadClockNanosleep = typeof loadClockNanosleep;

/**
 * Sleeps in the kernel until the clock `clockId` reads `targetNs` (clock_nanosleep with
 * TIMER_ABSTIME: a step of the clock meanwhile is honoured, and it never returns early), blocking
 * this thread. The thread's timer slack is 1 ns for the sleep (the default 50 µs would let the
 * kernel wake it up to that late), and where permitted (root, CAP_SYS_NICE) it sleeps at real-time
 * priority SCHED_FIFO 1, so that the wake-up runs before the ordinary processes on its core
 * (bench:barrier-sync-wake: 4 waiters on 2 loaded cores, skew p50 525 -> 174 µs; nice -10 did not
 * help). Both are put back right after the wake-up (it has nothing to run at that priority, and a
 * child inherits them). Interrupted by a signal handler, it sleeps again to the same instant. Returns null, or
 * why it could not sleep (the caller then spins). `load` is injectable for tests.
 */
export function openAbsoluteSleep(
  clockId: number,
  name: string,
  load: LoadClockNanosleep = loadClockNanosleep,
  options: { realtimePriority: boolean } = { realtimePriority: true },
): { sleepUntilNs: (targetNs: bigint) => string | null } | { error: string } {
  const loaded = load();
  if ('error' in loaded) return { error: loaded.error };
  const { clockNanosleep, prctl, scheduler } = loaded;
  const timespec = new BigInt64Array(2);
  // One trial sleep to an instant long past (returns at once): a kernel without the clock fails
  // here, not at the instant, and the first call's cost is paid now.
  let trial: number;
  try {
    trial = clockNanosleep(clockId, TIMER_ABSTIME, timespec);
  } catch (error) {
    return { error: `clock_nanosleep(${name}) threw: ${(error as Error).message.split('\n')[0]}` };
  }
  if (trial !== 0) return { error: `clock_nanosleep(${name}) returned error ${trial}` };
  return {
    sleepUntilNs(targetNs: bigint): string | null {
      timespec[0] = targetNs / 1_000_000_000n;
      timespec[1] = targetNs % 1_000_000_000n;
      prctl?.(PR_SET_TIMERSLACK, 1);
      // Only from the ordinary policy: a caller already real-time (chrt) is left as it is.
      const raised = options.realtimePriority && scheduler !== null && scheduler.get() === SCHED_OTHER && scheduler.set(SCHED_FIFO, 1) === 0;
      try {
        for (;;) {
          const result = clockNanosleep(clockId, TIMER_ABSTIME, timespec);
          if (result === 0) return null;
          if (result !== EINTR) return `clock_nanosleep(${name}) returned error ${result}`;
        }
      } catch (error) {
        return `clock_nanosleep(${name}) threw: ${(error as Error).message.split('\n')[0]}`;
      } finally {
        if (raised) scheduler.set(SCHED_OTHER, 0);
        prctl?.(PR_SET_TIMERSLACK, 0);
      }
    },
  };
}
