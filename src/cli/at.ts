// `at TIME [-- COMMAND ARGS...]` (issue 19): return, or run a command, when the cluster clock (the
// local agent's synchronized clock) reaches TIME. The agent is asked for its clock (GET /status:
// offset from the host clock, synchronized, bound), and again during long waits (a virtual clock
// is slewed: its offset changes by up to the slew rate times the wait).
import type { HostPort } from '../daemon/config.ts';
import type { StatusReport } from '../daemon/status.ts';
import { STATUS_REQUEST_TIMEOUT_MS, SYNC_START_WAIT_NS_MAX } from '../core/limits.ts';
import { ControlRequestError, getJson } from './control-client.ts';
import { commandFor, describeStart, hostRealtime, startCommand, waitForInstant, type CommandStart, type ParticipantClock, type StartReport } from './sync-start.ts';

/** Exit codes of `at` (as `status`'s): the command's own when one runs. */
export const AT_EXIT = { reached: 0, notSynchronized: 1, usage: 2, unreachable: 3 } as const;

export type ParsedTime = { kind: 'absolute'; instantNs: bigint } | { kind: 'relative'; afterNs: bigint };

const NS_PER_S = 1_000_000_000n;
const ISO = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?$/;

/** `1.5` -> 1_500_000_000n: exact, no float rounding. */
function decimalSecondsNs(whole: string, fraction: string | undefined): bigint {
  return BigInt(whole) * NS_PER_S + BigInt((fraction ?? '').padEnd(9, '0'));
}

/** TIME as `at` takes it, or why not (for the one-line error). */
export function parseTime(text: string): ParsedTime | { error: string } {
  const relative = /^\+(\d{1,12})(?:\.(\d{1,9}))?$/.exec(text);
  if (relative) return { kind: 'relative', afterNs: decimalSecondsNs(relative[1] as string, relative[2]) };
  const epoch = /^@(\d{1,12})(?:\.(\d{1,9}))?$/.exec(text);
  if (epoch) return { kind: 'absolute', instantNs: decimalSecondsNs(epoch[1] as string, epoch[2]) };
  const iso = ISO.exec(text);
  if (iso) {
    const [, y, mo, d, h, mi, s, fraction, zone] = iso as unknown as [string, string, string, string, string, string, string | undefined, string | undefined, string | undefined];
    const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0)] as const;
    let ms: number;
    if (zone === undefined) {
      // No zone: local time, as date(1) reads it.
      const local = new Date(...fields);
      const back = [local.getFullYear(), local.getMonth(), local.getDate(), local.getHours(), local.getMinutes(), local.getSeconds()];
      if (back.some((value, index) => value !== fields[index])) return { error: 'has a field out of range' };
      ms = local.getTime();
    } else {
      const utc = new Date(Date.UTC(...fields));
      const back = [utc.getUTCFullYear(), utc.getUTCMonth(), utc.getUTCDate(), utc.getUTCHours(), utc.getUTCMinutes(), utc.getUTCSeconds()];
      if (back.some((value, index) => value !== fields[index])) return { error: 'has a field out of range' };
      let offsetMin = 0;
      if (zone.toUpperCase() !== 'Z') {
        const digits = zone.slice(1).replace(':', '');
        const hours = Number(digits.slice(0, 2));
        const minutes = Number(digits.slice(2) || '0');
        if (hours > 23 || minutes > 59) return { error: 'has a zone offset out of range' };
        offsetMin = (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes);
      }
      ms = utc.getTime() - offsetMin * 60_000;
    }
    if (ms < 0) return { error: 'is before 1970' };
    return { kind: 'absolute', instantNs: BigInt(ms) * 1_000_000n + BigInt((fraction ?? '').padEnd(9, '0')) };
  }
  return { error: 'is not an ISO 8601 instant (2025-01-31T12:00:00.5Z), @EPOCH[.FRACTION] or +SECONDS' };
}

export interface AtCommand {
  time: ParsedTime;
  /** The text given, for messages. */
  timeText: string;
  target: HostPort;
  allowUnsynchronized: boolean;
  command: string[] | null;
}

export type AtReport = StartReport & { synchronized: boolean; mode: string; command?: CommandStart };

export interface AtOutcome {
  exitCode: number;
  /** Lines for stderr (already printed through `print` when a command ran). */
  messages: string[];
  report: AtReport | null;
}

function clockOf(status: StatusReport): ParticipantClock & { synchronized: boolean } {
  const clock = status.clock as StatusReport['clock'] & { errorBoundNs?: number | null; host?: { anchorErrorNs?: number } };
  return {
    mode: clock.mode,
    hostOffsetNs: clock.hostOffsetNs,
    hostAnchorErrorNs: clock.host?.anchorErrorNs ?? 0,
    errorBoundNs: typeof clock.errorBoundNs === 'number' ? clock.errorBoundNs : null,
    synchronized: clock.synchronized,
  };
}

/** `print` writes the report and the messages once the instant is reached (after the command started). */
export async function runAt(command: AtCommand, print: (report: AtReport, messages: string[]) => void): Promise<AtOutcome> {
  const where = `${command.target.host}:${command.target.port}`;
  const ask = async () => clockOf(await getJson<StatusReport>(command.target, '/status', STATUS_REQUEST_TIMEOUT_MS));
  const hostNowNs = hostRealtime();
  // The command is made ready to start at once (start-command.ts) before the wait, not after it.
  const prepared = commandFor(command.command);
  let clock: ParticipantClock & { synchronized: boolean };
  try {
    clock = await ask();
  } catch (error) {
    const code = error instanceof ControlRequestError ? error.code : String(error);
    return { exitCode: AT_EXIT.unreachable, messages: [`at: cannot ask the agent at ${where} for its clock (${code}); is it running, and is --http right?`], report: null };
  }
  if (!clock.synchronized && !command.allowUnsynchronized) {
    return { exitCode: AT_EXIT.notSynchronized, messages: [`at: the agent at ${where} is not synchronized, so its clock is not the cluster's; wait (berkeley-agent waitsync) or pass --allow-unsynchronized`], report: null };
  }
  const clusterNowNs = hostNowNs() + BigInt(Math.round(clock.hostOffsetNs));
  const instantNs = command.time.kind === 'absolute' ? command.time.instantNs : clusterNowNs + command.time.afterNs;
  if (instantNs - clusterNowNs > BigInt(SYNC_START_WAIT_NS_MAX)) {
    return { exitCode: AT_EXIT.usage, messages: [`at: TIME ${JSON.stringify(command.timeText)} is more than ${SYNC_START_WAIT_NS_MAX / 86_400e9} days ahead`], report: null };
  }
  let refreshFailed = false;
  const report = await waitForInstant(instantNs, {
    hostNowNs,
    clock,
    refresh: async () => {
      try {
        clock = await ask();
      } catch {
        // Keep the last offset: a virtual clock moves by at most its slew rate meanwhile.
        refreshFailed = true;
      }
      return clock;
    },
  });
  const messages: string[] = [];
  const line = describeStart(`at ${command.timeText}`, report, clock.mode);
  if (line !== null) messages.push(line);
  if (refreshFailed) messages.push(`at: the agent at ${where} stopped answering while waiting; its last offset was used`);
  if (!clock.synchronized) messages.push('at: ran on an unsynchronized clock (--allow-unsynchronized)');
  const fullReport = { ...report, synchronized: clock.synchronized, mode: clock.mode };
  if (command.command === null) {
    print(fullReport, messages);
    return { exitCode: AT_EXIT.reached, messages, report: fullReport };
  }
  const ran = await startCommand(command.command, report, prepared, hostNowNs, (how) => print({ ...fullReport, command: how }, messages));
  return { exitCode: ran.exitCode, messages: ran.message === null ? [] : [`at: ${ran.message}`], report: fullReport };
}
