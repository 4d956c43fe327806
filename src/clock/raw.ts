// CLOCK_MONOTONIC_RAW, the virtual clock's time base. Anyone steering the host clock (chronyd
// following this very agent, an operator's date -s) moves CLOCK_REALTIME and, with every slew and
// frequency change, CLOCK_MONOTONIC (which hrtime reads); the RAW clock counts the oscillator alone
// and no adjtimex call moves it. A virtual clock over it holds still however the host is steered.
// Read through libc's clock_gettime with koffi (Node has no binding); never throws.
import { CLOCK_MONOTONIC_RAW, loadClockGettime, type ClockGettime } from '../native/libc.ts';

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
