// The command of a synchronized start (`barrier --synchronized -- CMD`, `at TIME -- CMD`, issue 19),
// started right at the instant. child_process.spawn forks this Node process (copying the page
// tables of a few hundred MB of mappings) and then execs. glibc's posix_spawnp starts the child
// with CLONE_VM | CLONE_VFORK instead (no copy; the call returns once the child has exec'd): in a
// fresh process at load 10 on this 2-core host, 1.3 ms p50 from the instant to the call's return
// against 4.6 ms for spawn (bench:barrier-sync-wake; about 90 µs in a long-lived process). So the
// command is prepared while we wait (the binding, its environment, stdio made inheritable) and
// started with posix_spawnp through koffi the moment the wait ends, no shell; it is reaped by
// waitpid on a koffi worker thread, so that the event loop stays free to forward signals. Undone
// for the command what Node did to this process: SIGPIPE and SIGXFSZ ignored (posix_spawnattr
// resets them), stdio close-on-exec and non-blocking (cleared on fds 0-2 here, as libuv's own
// spawn does in its child). Where the binding cannot be had, the caller spawns with child_process.
//
// A pre-started launcher (a second Node process that execs the command at the instant) was tried:
// Node cannot fork without exec, and the exec of a Node process tears down its threads and heap,
// so the command started 3.7-6 ms after the instant at load 4, no better than a spawn.
import { constants as osConstants } from 'node:os';
import { SCHED_FIFO, SCHED_OTHER, loadClockNanosleep, loadSpawn, type Scheduler, type SpawnBinding } from '../native/libc.ts';

/** fcntl(2) commands and flags (Linux). */
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

export interface PreparedCommand {
  /** Starts the command now: its pid, or the errno name (ENOENT...) of why it could not run. */
  startNow(): { pid: number } | { error: string };
  /** Waits for the started command; its exit status (code, or the signal that ended it). */
  wait(pid: number): Promise<{ code: number } | { signal: number }>;
}

/** Gets `command` ready to start without a shell, or says why it cannot be (the caller spawns). Never throws. */
export function prepareCommand(
  command: readonly string[],
  load: () => SpawnBinding | { error: string } = loadSpawn,
  scheduler: Scheduler | null = schedulerOf(loadClockNanosleep()),
): PreparedCommand | { error: string } {
  const binding = load();
  if ('error' in binding) return binding;
  const [file] = command as [string, ...string[]];
  const argv = [...command, null];
  const envp = [...Object.entries(process.env).map(([name, value]) => `${name}=${value ?? ''}`), null];
  // Node opens stdio close-on-exec and (pipes, terminals) non-blocking; the command needs neither.
  for (const fd of [0, 1, 2]) {
    binding.fcntl(fd, F_SETFD, 0);
    const flags = binding.fcntl(fd, F_GETFL, 0);
    if (flags >= 0 && (flags & O_NONBLOCK) !== 0) binding.fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  const pidOut = new Int32Array(1);
  return {
    startNow() {
      // At SCHED_FIFO where permitted (only from the ordinary policy), so that the child runs at once
      // and execs rather than queueing behind busy processes (bench:barrier-sync-wake); the child is
      // put back at SCHED_OTHER before its exec (POSIX_SPAWN_SETSCHEDULER), and so are we after.
      const raised = scheduler !== null && scheduler.get() === SCHED_OTHER && scheduler.set(SCHED_FIFO, 1) === 0;
      let result: number;
      try {
        result = binding.posixSpawnp(pidOut, file, raised ? binding.attrOrdinary : binding.attr, argv, envp);
      } finally {
        if (raised) scheduler.set(SCHED_OTHER, 0);
      }
      if (result === 0) return { pid: pidOut[0] as number };
      return { error: Object.entries(osConstants.errno).find(([, value]) => value === result)?.[0] ?? `errno ${result}` };
    },
    wait(pid) {
      const status = new Int32Array(1);
      let errors = 0;
      return new Promise((resolve) => {
        const waitOnce = (): void =>
          binding.waitpidAsync(pid, status, (error, result) => {
            // EINTR (a signal reached the worker thread): wait again.
            if (error !== null && error !== undefined) return waitOnce();
            if (result !== pid) {
              // -1 (ECHILD): someone else reaped it, nothing left to wait for; else try again.
              if (result === -1 && ++errors >= 3) return resolve({ code: 0 });
              return waitOnce();
            }
            const raw = status[0] as number;
            const signal = raw & 0x7f;
            resolve(signal === 0 ? { code: (raw >> 8) & 0xff } : { signal });
          });
        waitOnce();
      });
    },
  };
}

function schedulerOf(loaded: ReturnType<typeof loadClockNanosleep>): Scheduler | null {
  return 'error' in loaded ? null : loaded.scheduler;
}
