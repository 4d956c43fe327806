// The berkeley-agent command line (yargs). `run` is the default command.
// Exit codes: 0 ok, 1 runtime failure (cannot bind, demo not converged), 2 bad option or value
// (the message names it). `status` and `waitsync`: 0 synchronized, 1 not (yet), 2 bad option, 3 the
// agent cannot be reached. `now`: 0 synchronized (the time comes with a bound), 1 not, 2 bad
// option, 3 the agent cannot be reached. `barrier` has emulab-sync's: 0 released (or the barrier's error code),
// 124 timed out, 64 usage error, 76 the agent or cluster unreachable. `at`: 0 reached, 1 the agent is
// not synchronized, 2 bad TIME or option, 3 the agent cannot be reached. With `-- COMMAND`, `barrier`
// and `at` exit with the command's code (126/127: it could not be run). Every failure is one line.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { buildRunConfig, ConfigError, numberOption, parseHostPort, parseHttp, type HostPort } from '../daemon/config.ts';
import { startDaemon, StartupError } from '../daemon/daemon.ts';
import { createLogger } from '../daemon/logger.ts';
import { LOG_LEVELS } from '../daemon/logger.ts';
import { verdictOf, VERDICTS, type StatusReport, type Verdict } from '../daemon/status.ts';
import { CORRECTION_NS_MAX_DEFAULT, HTTP_PORT_DEFAULT, NTP_PORT_DEFAULT, PROBES_PER_ROUND_DEFAULT, PROBE_SPACING_MS_DEFAULT, SLEW_PPM_MAX_DEFAULT, STATUS_REQUEST_TIMEOUT_MS, UDP_PORT_DEFAULT, UPSTREAM_POLL_INTERVAL_MS_DEFAULT, UPSTREAM_POLL_INTERVAL_MS_MAX, UPSTREAM_POLL_INTERVAL_MS_MIN, UPSTREAMS_MAX } from '../core/limits.ts';
import { formatStatus, formatOffsetNs, formatDurationNs, formatTime, type MasterView } from './format.ts';
import { trustworthy, type TimeReport } from '../daemon/time-report.ts';
import { ControlRequestError, getJson } from './control-client.ts';
import { queryAgent, QueryError } from './query.ts';
import { formatDemoSummary, runDemo } from './demo.ts';
import { PACKAGE_VERSION } from '../daemon/version.ts';
import { sdNotify } from '../daemon/notify.ts';
import { installLifecycle } from '../daemon/lifecycle.ts';
import { CONFIG_FILE_DEFAULT, describeSource, loadedConfigFile, readConfigFile, resolveBooleans, sourceOf } from './config-file.ts';
import { ENV_FILE_DEFAULT, install, InstallError, UNIT_DIR_DEFAULT } from './install-service.ts';
import path from 'node:path';
import { BARRIER_EXIT, runBarrier, startAtRelease } from './barrier.ts';
import { parseTime, runAt } from './at.ts';
import { commandFor, hostRealtime, splitCommand, startCommand, type CommandStart } from './sync-start.ts';
import { generateKeyLine, KeyFileError, loadKeyFile } from '../daemon/keys.ts';
import { FrameAuth, KEY_ID_MAX } from '../wire/auth.ts';
import { barrierNameProblem } from '../core/barrier/frames.ts';
import { BARRIER_ERROR_CODE_MAX, BARRIER_TIMEOUT_MS_MAX, BARRIER_WAITERS_MAX, STATUS_VIEW_WAIT_MS_MAX, WAITSYNC_INTERVAL_S_DEFAULT } from '../core/limits.ts';

const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;
/** The barrier command reports usage errors with emulab-sync's code instead. */
let usageExitCode: number = EXIT_USAGE;
/** The command line being run, and whether its command reads BERKELEY_AGENT_* (run and config do). */
let commandTokens: readonly string[] = [];
let envApplies = false;
/** The current command's long options (recorded before validation), for "did you mean". */
let knownOptionNames: string[] = [];
/** The commands, for "did you mean" on a mistyped one (which `run`, the default, would take as an argument). */
const COMMANDS = ['run', 'config', 'install-service', 'status', 'waitsync', 'now', 'keygen', 'barrier', 'at', 'query', 'demo'];
/** `barrier ... -- COMMAND ARGS...` and `at TIME -- COMMAND ARGS...`: what follows the first `--`. */
let trailingCommand: string[] | null = null;

/** Every failure ends with one line on stderr: "berkeley-agent: what is wrong". */
function usageError(message: string): never {
  process.stderr.write(`berkeley-agent: ${message}\n`);
  process.exit(usageExitCode);
}

function runtimeError(message: string): never {
  process.stderr.write(`berkeley-agent: ${message}\n`);
  process.exit(EXIT_RUNTIME);
}

/** A bad value's message, saying where the value came from (command line, which variable, which file). */
function configErrorMessage(error: ConfigError): string {
  if (error.option === null || error.detail === null) return error.message;
  const where = describeSource(error.option, commandTokens, envApplies ? process.env : {}, loadedConfigFile());
  return where === '' ? error.message : `--${error.option}: ${error.detail.problem} (got ${error.detail.shown} ${where})`;
}

/**
 * The end of every failure: an operator mistake is one line and exit 2, a runtime failure one
 * line and exit 1, and a bug one line too (where it happened, not the whole stack) and exit 1.
 */
function reportError(error: unknown): never {
  if (error instanceof ConfigError) usageError(configErrorMessage(error));
  if (error instanceof KeyFileError) usageError(error.message);
  if (error instanceof StartupError) runtimeError(error.message);
  const problem = error instanceof Error ? error : new Error(String(error));
  // yargs throws a YError for a --config file it cannot read or parse: an operator mistake.
  if (problem.name === 'YError') usageError(/config file/i.test(problem.message) ? `--config: ${problem.message}` : oneLine(problem.message));
  const where = problem.stack?.split('\n').find((line) => /^\s+at /.test(line))?.trim().replace(/^at /, '') ?? 'unknown place';
  runtimeError(`internal error (a bug, please report it): ${oneLine(problem.message)} (${where})`);
}

/** Levenshtein distance, for "did you mean" on a mistyped option. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The known name closest to a mistyped one, if it is close enough to be the one meant. */
export function closestName(typed: string, known: readonly string[]): string | null {
  let best: { name: string; distance: number } | null = null;
  for (const name of known) {
    const distance = editDistance(typed, name);
    if (best === null || distance < best.distance) best = { name, distance };
  }
  if (best === null || best.distance === 0 || best.distance > Math.max(2, Math.floor(typed.length / 4))) return null;
  return best.name;
}

/** "--pol-interval" -> "--poll-interval"; "stauts" (first word) -> "status". */
function suggestion(typed: string): string | null {
  if (typed.startsWith('-')) {
    const negated = typed.startsWith('--no-');
    const option = closestName(typed.replace(/^--?(no-)?/, '').split('=')[0] ?? '', knownOptionNames);
    return option === null ? null : `--${negated ? 'no-' : ''}${option}`;
  }
  return typed === commandTokens[0] ? closestName(typed, COMMANDS) : null;
}

/**
 * yargs reports a value outside an option's `choices` over several lines ("Invalid values:\n
 * Argument: clock, Given: ..."); the contract is one line that names the option, so rewrite it
 * as `--clock: must be one of ...`, and join any other multi-line message into one line.
 * A mistyped option or command gets a suggestion.
 */
function oneLine(message: string): string {
  const invalid = [...message.matchAll(/Argument: ([\w-]+), Given: (.*?), Choices: (.*)$/gm)].map(
    ([, name, given, choices]) => `--${name}: must be one of ${choices} (got ${given})`,
  );
  if (invalid.length > 0) return invalid.join('; ');
  // yargs names unknown options without their dashes; put them back when that is what was typed.
  const unknown = /^Unknown arguments?: (.*)$/.exec(message.trim());
  if (unknown) {
    const typed = (name: string) => commandTokens.find((arg) => arg === `--${name}` || arg === `--no-${name}` || arg.startsWith(`--${name}=`))?.split('=')[0];
    // yargs also names the camelCase twin of a dashed option (--pol-interval, polInterval).
    const listed = (unknown[1] ?? '').split(', ');
    const dashed = new Set(listed.map((name) => name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())).filter((name, index) => name !== listed[index]));
    const names = listed.filter((name) => !dashed.has(name)).map((name) => typed(name) ?? name);
    const suggestions = [...new Set(names.map(suggestion).filter((name): name is string => name !== null))];
    return `unknown option or argument: ${names.join(', ')}${suggestions.length > 0 ? `. Did you mean ${suggestions.join(', ')}?` : ''}`;
  }
  if (/^Not enough non-option arguments/.test(message.trim())) {
    const what = commandTokens[0] === 'at' ? 'TIME' : commandTokens[0] === 'query' ? 'HOST:PORT' : commandTokens[0] === 'barrier' ? 'NAME' : "the command's argument";
    return `missing argument: ${what} (see --help)`;
  }
  const missing = /^Not enough arguments following: (.*)$/.exec(message.trim());
  if (missing) return `--${missing[1]}: needs a value`;
  return message.trim().replace(/\s*\n\s*/g, ' ');
}

/**
 * Runs before every command's handler: booleans are read again from where they were given, with
 * every usual spelling (see resolveBooleans).
 */
function booleanMiddleware(argv: Record<string, unknown>, instance: unknown): void {
  const options = (instance as { getOptions(): { boolean: string[]; envPrefix?: string; key: Record<string, unknown> } }).getOptions();
  envApplies = options.envPrefix === 'BERKELEY_AGENT';
  knownOptionNames = Object.keys(options.key).filter((name) => !/[A-Z]/.test(name) && name.length > 1);
  const booleans = options.boolean.filter((name) => name !== 'help' && name !== 'version');
  resolveBooleans(argv, booleans, commandTokens, envApplies ? process.env : null, loadedConfigFile());
}

/**
 * Numeric options are parsed as text and converted by our own validation (plain decimals only, see
 * parseDecimal), so an error can quote what was typed ("got \"abc\"") instead of yargs' NaN, and
 * "0x1f" or "" is refused instead of read as 31 or 0. Each command also lists them with .number()
 * so that help says [number]: yargs shows that tag but leaves a value that is also a string as text.
 */
const NUMBER = { type: 'string', requiresArg: true } as const;
const RUN_NUMBERS = ['port', 'priority', 'poll-interval', 'master-timeout', 'discovery-window', 'outlier-threshold', 'virtual-offset', 'virtual-drift', 'step-threshold', 'max-slew-ppm', 'max-correction', 'probes', 'min-probes', 'probe-spacing', 'max-peers', 'ntp-port', 'upstream-poll'];

function runOptions(argv: Argv): Argv {
  return argv
    .option('interface', { type: 'string', describe: 'Network interface for mDNS and the UDP socket (e.g. eth0)' })
    .option('port', { ...NUMBER, describe: 'UDP port (0 = any free port, advertised over mDNS)', default: UDP_PORT_DEFAULT })
    .option('bind', { type: 'string', describe: 'IPv4 address to bind the UDP socket to (default: the --interface address, else 0.0.0.0)' })
    .option('cluster', { type: 'string', describe: 'Cluster name; agents of other clusters are ignored', default: 'default' })
    .option('node-id', { type: 'string', describe: 'Unique node id (default: the host name, plus the port when not 7412)' })
    .option('priority', { ...NUMBER, describe: 'Election priority; the highest (priority, node id) becomes master', default: 100 })
    .option('election', { type: 'string', choices: ['ring', 'bully'], describe: 'Algorithm elections start with (ring falls back to bully when it stalls)', default: 'ring' })
    .option('never-master', { type: 'boolean', describe: 'Take part in elections but never become master (still synchronized)', default: false })
    .option('peer', { type: 'string', array: true, requiresArg: true, describe: 'Static peer HOST:PORT (repeatable)' })
    .option('mdns', { type: 'boolean', describe: 'Discover peers with mDNS (--no-mdns to use static peers only)', default: true })
    .option('poll-interval', { ...NUMBER, describe: 'Seconds between Berkeley rounds', default: 1 })
    .option('master-timeout', { ...NUMBER, describe: 'Seconds without the master before a new election (default 3 poll intervals)' })
    .option('discovery-window', { ...NUMBER, describe: 'Seconds to listen for peers and a master before the first election', default: 2.5 })
    .option('outlier-threshold', { ...NUMBER, describe: 'Seconds from the median beyond which a clock is left out of the average', default: 0.02 })
    .option('clock', { type: 'string', choices: ['auto', 'system', 'virtual'], describe: 'Clock to discipline', default: 'auto' })
    .option('virtual-offset', { ...NUMBER, describe: 'Start the virtual clock this many seconds off (demos, tests)', default: 0 })
    .option('virtual-drift', { ...NUMBER, describe: 'Make the virtual clock run this many ppm fast (demos, tests)', default: 0 })
    .option('step-threshold', { ...NUMBER, describe: 'Corrections of at least this many seconds are stepped, smaller ones slewed', default: 0.128 })
    .option('max-slew-ppm', { ...NUMBER, describe: 'Largest slew rate in ppm (the kernel clock allows at most 500 with the frequency)', default: SLEW_PPM_MAX_DEFAULT })
    .option('max-correction', { ...NUMBER, describe: 'Once synchronized, refuse corrections larger than this many seconds (panic threshold; 0 = never refuse)', default: CORRECTION_NS_MAX_DEFAULT / 1e9 })
    .option('force', { type: 'boolean', describe: 'Discipline the kernel clock even when another time daemon (chronyd, ntpd, systemd-timesyncd) runs', default: false })
    .option('kernel-timestamps', { type: 'boolean', describe: 'Take receive timestamps from the kernel when it can (--no-kernel-timestamps: user-space stamps)', default: true })
    .option('probes', { ...NUMBER, describe: 'Probes per member per round; the lowest-delay one is used', default: PROBES_PER_ROUND_DEFAULT })
    .option('min-probes', { ...NUMBER, describe: 'Probes per member before a round may stop early on a sample near its recent minimum delay (default 4, at most --probes; equal to --probes turns the early stop off)' })
    .option('probe-spacing', { ...NUMBER, describe: 'Seconds between the probes of a round', default: PROBE_SPACING_MS_DEFAULT / 1000 })
    .option('max-peers', { ...NUMBER, describe: 'Most peers tracked', default: 1024 })
    .option('http', { type: 'string', describe: "Control server HOST:PORT, or 'none'", default: `127.0.0.1:${HTTP_PORT_DEFAULT}` })
    .option('ntp-port', { ...NUMBER, describe: "Serve the cluster's time over NTP on this UDP port, on the --bind/--interface address and 127.0.0.1 (0 = no NTP server; a port that cannot be bound is a warning)", default: NTP_PORT_DEFAULT })
    .option('upstream', { type: 'string', array: true, requiresArg: true, describe: `NTP server HOST[:PORT] to follow (repeatable, at most ${UPSTREAMS_MAX}; port 123 by default): an agent with a healthy upstream is preferred as master and steers the cluster to it` })
    .option('upstream-poll', { ...NUMBER, describe: `Seconds between requests to each upstream once it answers (${UPSTREAM_POLL_INTERVAL_MS_MIN / 1000}..${UPSTREAM_POLL_INTERVAL_MS_MAX / 1000})`, default: UPSTREAM_POLL_INTERVAL_MS_DEFAULT / 1000 })
    .option('key-file', { type: 'string', requiresArg: true, describe: 'Cluster keys ("ID hex:SECRET" lines; see keygen): authenticate every frame (default: systemd credential "keys", else none: an open cluster)' })
    .option('state-dir', { type: 'string', requiresArg: true, describe: 'Directory for state kept across restarts (default: $STATE_DIRECTORY from systemd, else none)' })
    .option('log-level', { type: 'string', choices: LOG_LEVELS as string[], describe: 'Log level', default: 'info' })
    .option('log-format', { type: 'string', choices: ['auto', 'json', 'pretty'], describe: 'json lines, pretty, or auto (pretty on a terminal)', default: 'auto' })
    .number(RUN_NUMBERS);
}

async function commandRun(raw: Record<string, unknown>): Promise<void> {
  // A ConfigError reaches the .fail() handler, which prints it and exits 2.
  const config = buildRunConfig(raw);
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: config.nodeId });
  let daemon;
  try {
    daemon = await startDaemon(config, logger);
  } catch (error) {
    if (error instanceof StartupError) {
      process.stderr.write(`berkeley-agent: ${error.message}\n`);
      process.exit(error.exitCode);
    }
    throw error;
  }
  // systemd (Type=notify): the agent is listening now, so the service is ready.
  // The clock actually chosen (`--clock auto` may have fallen back to a virtual one), not the option.
  const clockChosen = daemon.agent.status().clock.mode === 'system' ? 'kernel clock' : 'virtual clock';
  const notReady = sdNotify(`READY=1\nSTATUS=listening on UDP ${daemon.listen.address}:${daemon.listen.port}, ${clockChosen}\nMAINPID=${process.pid}`);
  if (notReady !== null) logger.warn({ why: notReady }, 'could not tell systemd the agent is ready');
  // Every signal that would kill the agent stops it gracefully; a crash still saves the state and
  // ends a kernel slew (see lifecycle.ts).
  installLifecycle({ daemon, logger, onStopping: () => sdNotify('STOPPING=1') });
}

/** `config`: every run option with its value and source (command line > environment > file > default). */
function commandConfig(raw: Record<string, unknown>): void {
  // Validates like `run` does: a bad value exits 2 naming it.
  const effective = buildRunConfig(raw);
  // getOptions() is public yargs API the type definitions lack.
  const declared = (runOptions(yargs([])) as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions();
  const names = Object.keys(declared.key).filter((name) => name !== 'help' && name !== 'version');
  const file = loadedConfigFile();
  const fileKeys = new Set(file?.keys ?? []);
  const tokens = hideBin(process.argv);
  const options = Object.fromEntries(names.map((name) => [name, { value: raw[name] ?? null, source: sourceOf(name, tokens, process.env, fileKeys) }]));
  const configFile = file === null ? { path: String(raw.config ?? CONFIG_FILE_DEFAULT), loaded: false } : { path: file.path, loaded: true };
  if (raw.json) {
    process.stdout.write(`${JSON.stringify({ configFile, options, effective: { ...effective, correctionNsMax: Number.isFinite(effective.correctionNsMax) ? effective.correctionNsMax : null } })}\n`);
    return;
  }
  const rows = [['OPTION', 'VALUE', 'SOURCE'], ...Object.entries(options).map(([name, entry]) => [`--${name}`, entry.value === null ? '-' : Array.isArray(entry.value) ? entry.value.join(' ') : String(entry.value), entry.source])];
  const widths = [0, 1].map((column) => Math.max(...rows.map((row) => (row[column] as string).length)));
  process.stdout.write(`config file: ${configFile.path}${configFile.loaded ? '' : ' (not found: none used)'}\n`);
  process.stdout.write(`node id: ${effective.nodeId}, clock: ${effective.clock}, state directory: ${effective.stateDir ?? 'none'}\n\n`);
  for (const row of rows) process.stdout.write(`${(row[0] as string).padEnd(widths[0] as number)}  ${(row[1] as string).padEnd(widths[1] as number)}  ${row[2]}\n`);
}

/** Exit codes of `status` and `waitsync`, for scripts (README "Status for scripts"). */
export const STATUS_EXIT = { synchronized: 0, notSynchronized: 1, usage: 2, unreachable: 3 } as const;

function controlTarget(httpOption: unknown): HostPort {
  const target = parseHttp(httpOption);
  if (target === null) usageError("--http: 'none' leaves nothing to ask; give the agent's control server HOST:PORT");
  return target;
}

function unreachableMessage(target: HostPort, error: unknown): string {
  const code = error instanceof ControlRequestError ? error.code : String(error);
  if (error instanceof ControlRequestError && error.phase === 'response') return `the agent's control server at ${target.host}:${target.port} answered badly (${code}: ${error.message})`;
  return `cannot reach the agent's control server at ${target.host}:${target.port} (${code}); is the agent running, and is --http right?`;
}

/** The status, or null when the agent cannot be reached (`why` says how). */
async function tryStatus(target: HostPort): Promise<{ status: StatusReport } | { why: string }> {
  try {
    return { status: await getJson<StatusReport>(target, '/status', STATUS_REQUEST_TIMEOUT_MS) };
  } catch (error) {
    return { why: unreachableMessage(target, error) };
  }
}

function verdictFor(status: StatusReport): { verdict: Verdict; verdictReason: string } {
  return VERDICTS.includes(status.verdict) ? { verdict: status.verdict, verdictReason: status.verdictReason } : verdictOf(status);
}

/**
 * On a member, the master's view of the cluster: asking for it makes the member pull it from the
 * master, so wait a little for a fresh one (null: none came, or an agent without a dashboard).
 */
async function masterView(target: HostPort, status: StatusReport): Promise<MasterView | null> {
  if (status.role !== 'slave' || status.masterId === null) return null;
  const freshMs = 3 * status.pollIntervalMs;
  const deadline = Date.now() + Math.min(STATUS_VIEW_WAIT_MS_MAX, 2.5 * status.pollIntervalMs);
  for (;;) {
    let view: MasterView | null = null;
    try {
      // `since` far ahead: no history, no events, only the view.
      view = (await getJson<{ view: MasterView | null }>(target, `/api/cluster?since=${Number.MAX_SAFE_INTEGER}`, STATUS_REQUEST_TIMEOUT_MS)).view;
    } catch {
      return null;
    }
    if (view !== null && view.masterId === status.masterId && view.term === status.term && view.ageMs <= freshMs) return view;
    if (Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A bound on how far this clock may be from the cluster's time, for waitsync --max-error. */
function errorBoundNs(status: StatusReport): number {
  const reported = (status.clock as { errorBoundNs?: number | null }).errorBoundNs;
  if (typeof reported === 'number') return reported;
  return Math.abs(status.tracking.lastOffsetNs ?? Number.POSITIVE_INFINITY) + Math.abs(status.clock.slewRemainingNs);
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'barrier') usageExitCode = BARRIER_EXIT.usage;
  if (argv[0] === 'barrier' || argv[0] === 'at') {
    // The command after `--` is run as given: yargs must not parse its options.
    const split = splitCommand(argv);
    argv = split.own;
    trailingCommand = split.command;
    if (trailingCommand !== null && trailingCommand.length === 0) usageError('--: give the COMMAND to run after it');
  }
  commandTokens = argv;
  await yargs(argv)
    .scriptName('berkeley-agent')
    .usage('$0 [run] [options]   start an agent (default)\n$0 <command> [options]')
    .config('config', 'JSON file of options, keys as the long option names', readConfigFile)
    .default('config', CONFIG_FILE_DEFAULT, `${CONFIG_FILE_DEFAULT}, if it exists`)
    // @types/yargs (17) does not declare the yargs instance yargs passes as a middleware's second argument.
    .middleware(((args: Record<string, unknown>, instance: unknown) => booleanMiddleware(args, instance)) as unknown as (args: Record<string, unknown>) => void, true)
    .command(
      ['run', '$0'],
      'Start an agent: discover peers, elect a master, synchronize clocks',
      // The environment configures the agent only: BERKELEY_AGENT_* set for the service (an
      // EnvironmentFile) must not break `status` or `query` run in the same shell.
      (command) => runOptions(command).env('BERKELEY_AGENT'),
      async (args) => commandRun(args as Record<string, unknown>),
    )
    .command(
      'config',
      'Print the configuration `run` would use with these options, and where each value comes from',
      (command) => runOptions(command).env('BERKELEY_AGENT').option('json', { type: 'boolean', describe: 'Print it as one JSON object', default: false }),
      async (args) => commandConfig(args as Record<string, unknown>),
    )
    .command(
      'install-service',
      'Write the systemd unit (for this binary) and /etc/default/berkeley-agent, or print them with --dry-run',
      (command) =>
        command
          .option('interface', { type: 'string', requiresArg: true, describe: 'Set BERKELEY_AGENT_INTERFACE in the environment file' })
          .option('dry-run', { type: 'boolean', describe: 'Print the files instead of writing them', default: false })
          .option('unit-dir', { type: 'string', requiresArg: true, describe: 'Where to write berkeley-agent.service', default: UNIT_DIR_DEFAULT })
          .option('environment-file', { type: 'string', requiresArg: true, describe: 'The environment file the unit reads', default: ENV_FILE_DEFAULT })
          .option('skip-interface-check', { type: 'boolean', describe: 'With --dry-run: accept an --interface this machine does not have (a unit for another machine)', default: false })
          .option('force', { type: 'boolean', describe: "Write the unit even when its sandbox hides this binary (under /home, /root, /tmp, ...; relax the sandbox with a drop-in)", default: false }),
      async (args) => {
        const binPath = path.resolve(process.argv[1] ?? 'berkeley-agent');
        if (args['skip-interface-check'] && !args['dry-run']) usageError('--skip-interface-check: only with --dry-run (a unit written here must name an interface this machine has)');
        try {
          process.stdout.write(
            install({
              binPath,
              interfaceName: (args.interface as string | undefined) ?? null,
              unitDir: String(args['unit-dir']),
              envFile: String(args['environment-file']),
              dryRun: Boolean(args['dry-run']),
              checkInterface: !args['skip-interface-check'],
              allowHiddenPath: Boolean(args.force),
            }),
          );
        } catch (error) {
          if (error instanceof InstallError) runtimeError(error.message);
          throw error;
        }
      },
    )
    .command(
      'status',
      "Show a running agent's status: a verdict, then a table (exit 0 only when synchronized)",
      (command) =>
        command
          .option('http', { type: 'string', describe: "The agent's control server HOST:PORT", default: `127.0.0.1:${HTTP_PORT_DEFAULT}` })
          .option('json', { type: 'boolean', describe: 'Print the status as one JSON object', default: false })
          .option('verdict', { type: 'boolean', describe: `Print only the one-word verdict (${VERDICTS.join(', ')})`, default: false })
          .epilogue('Exit status: 0 synchronized, 1 not synchronized (any other verdict), 2 bad option, 3 cannot reach the agent.'),
      async (args) => {
        const target = controlTarget(args.http);
        const answer = await tryStatus(target);
        if (!('status' in answer)) {
          process.stderr.write(`berkeley-agent: ${answer.why}\n`);
          process.exit(STATUS_EXIT.unreachable);
        }
        const status = answer.status;
        const { verdict } = verdictFor(status);
        if (args.json) process.stdout.write(`${JSON.stringify(status)}\n`);
        else if (args.verdict) process.stdout.write(`${verdict}\n`);
        else process.stdout.write(`${formatStatus(status, await masterView(target, status))}\n`);
        process.exitCode = verdict === 'synchronized' ? STATUS_EXIT.synchronized : STATUS_EXIT.notSynchronized;
      },
    )
    .command(
      'waitsync',
      'Wait until the agent is synchronized (like chronyc waitsync); exit 0 then, 1 on --timeout',
      (command) =>
        command
          .option('timeout', { ...NUMBER, describe: 'Give up after this many seconds (exit 1; default: wait for ever)' })
          .option('max-error', { ...NUMBER, describe: "Also wait until the clock is within this many seconds of the cluster's time (last offset plus slew left)" })
          .option('interval', { ...NUMBER, describe: 'Seconds between two questions to the agent', default: WAITSYNC_INTERVAL_S_DEFAULT })
          .option('http', { type: 'string', describe: "The agent's control server HOST:PORT", default: `127.0.0.1:${HTTP_PORT_DEFAULT}` })
          .number(['timeout', 'max-error', 'interval'])
          .epilogue('Exit status: 0 synchronized, 1 timed out, 2 bad option, 3 timed out without ever reaching the agent. An agent not answering yet (starting) is asked again until the timeout.'),
      async (args) => {
        const timeoutS = args.timeout === undefined ? null : numberOption(args, 'timeout', 0, { min: 0, max: 31_536_000 });
        const maxErrorS = args['max-error'] === undefined ? null : numberOption(args, 'max-error', 0, { min: 0, max: 3600, minExclusive: true });
        const intervalS = numberOption(args, 'interval', WAITSYNC_INTERVAL_S_DEFAULT, { min: 0.05, max: 3600 });
        const target = controlTarget(args.http);
        const startedMs = Date.now();
        const elapsedS = () => ((Date.now() - startedMs) / 1000).toFixed(1);
        let last: string | null = null;
        let reached = false;
        for (;;) {
          const answer = await tryStatus(target);
          if ('status' in answer) {
            reached = true;
            const status = answer.status;
            const { verdict, verdictReason } = verdictFor(status);
            const boundNs = errorBoundNs(status);
            const withinBound = maxErrorS === null || boundNs <= maxErrorS * 1e9;
            if (verdict === 'synchronized' && withinBound) {
              process.stdout.write(`synchronized after ${elapsedS()} s (${verdictReason}; error bound ${formatDurationNs(boundNs)})\n`);
              process.exit(STATUS_EXIT.synchronized);
            }
            last = verdict === 'synchronized' ? `synchronized, but the error bound ${formatDurationNs(boundNs)} is above --max-error ${maxErrorS} s` : `${verdict} (${verdictReason})`;
          } else {
            last = answer.why;
          }
          if (timeoutS !== null && Date.now() - startedMs + intervalS * 1000 > timeoutS * 1000) {
            process.stderr.write(`berkeley-agent: waitsync: not synchronized after ${elapsedS()} s: ${last}\n`);
            process.exit(reached ? STATUS_EXIT.notSynchronized : STATUS_EXIT.unreachable);
          }
          await new Promise((resolve) => setTimeout(resolve, intervalS * 1000));
        }
      },
    )
    .command(
      'now',
      "Print the cluster's time as the local agent's clock reads it (GET /time), its error bound and whether it is synchronized",
      (command) =>
        command
          .option('http', { type: 'string', describe: "The agent's control server HOST:PORT", default: `127.0.0.1:${HTTP_PORT_DEFAULT}` })
          .option('json', { type: 'boolean', describe: "Print the agent's answer as one JSON object", default: false })
          .epilogue('Exit status: 0 synchronized (the time comes with a bound), 1 not synchronized (the time is only this clock\'s), 2 bad option, 3 cannot reach the agent.'),
      async (args) => {
        const target = controlTarget(args.http);
        let time: TimeReport;
        try {
          time = await getJson<TimeReport>(target, '/time', STATUS_REQUEST_TIMEOUT_MS);
        } catch (error) {
          process.stderr.write(`berkeley-agent: ${unreachableMessage(target, error)}\n`);
          process.exit(STATUS_EXIT.unreachable);
        }
        if (args.json) process.stdout.write(`${JSON.stringify(time)}\n`);
        else process.stdout.write(`${formatTime(time)}\n`);
        process.exitCode = trustworthy(time) ? STATUS_EXIT.synchronized : STATUS_EXIT.notSynchronized;
      },
    )
    .command(
      'keygen',
      'Print a new cluster key line ("ID hex:SECRET", 32 random bytes) for --key-file',
      (command) => command.option('id', { ...NUMBER, describe: `Key id (1..${KEY_ID_MAX})`, default: 1 }).number('id'),
      (args) => {
        const id = numberOption(args, 'id', 1, { min: 1, max: KEY_ID_MAX, integer: true });
        process.stdout.write(`${generateKeyLine(id)}\n`);
      },
    )
    .command(
      'barrier <name>',
      'Wait at a named barrier served by the elected master (emulab-sync semantics)',
      (command) =>
        command
          .positional('name', { type: 'string', describe: 'Barrier name: printable ASCII, no spaces, up to 64 bytes', demandOption: true })
          .option('count', { ...NUMBER, describe: `Be the initializer: release once N waiters (not counting this one) are present (0..${BARRIER_WAITERS_MAX})` })
          .option('wait', { type: 'boolean', describe: 'The initializer blocks too (--no-wait: return once registered)', default: true })
          .option('error', { ...NUMBER, describe: `Report this error code (0..${BARRIER_ERROR_CODE_MAX}); everyone exits with the largest reported`, default: 0 })
          .option('timeout', { ...NUMBER, describe: 'Give up after this many seconds (exit 124) and leave the barrier' })
          .option('http', { type: 'string', describe: "The local agent's control server HOST:PORT", default: `127.0.0.1:${HTTP_PORT_DEFAULT}` })
          .option('json', { type: 'boolean', describe: "Print the agent's answer as JSON", default: false })
          .option('synchronized', {
            type: 'boolean',
            describe: "Start at the master's release instant on the cluster clock (everyone at once), not when the release arrives",
            default: false,
          })
          .usage('$0 barrier <name> [options] [-- COMMAND ARGS...]\n\nWith -- COMMAND, run COMMAND (no shell) when released (at the release instant with --synchronized) and exit with its code.')
          .number(['count', 'error', 'timeout']),
      async (args) => {
        const name = String(args.name);
        const problem = barrierNameProblem(name);
        if (problem !== null) usageError(`NAME ${JSON.stringify(name.slice(0, 80))}: ${problem}`);
        const count = args.count === undefined ? null : numberOption(args, 'count', 0, { min: 0, max: BARRIER_WAITERS_MAX, integer: true });
        if (!args.wait && count === null) usageError('--no-wait: only the initializer (--count N) may leave without waiting');
        if (!args.wait && (args.synchronized || trailingCommand !== null)) usageError('--no-wait: returns before the release; it cannot go with --synchronized or -- COMMAND');
        const errorCode = numberOption(args, 'error', 0, { min: 0, max: BARRIER_ERROR_CODE_MAX, integer: true });
        const timeoutS = args.timeout === undefined ? null : numberOption(args, 'timeout', 0, { min: 0, minExclusive: true, max: BARRIER_TIMEOUT_MS_MAX / 1000 });
        const target = parseHttp(args.http);
        if (target === null) usageError("--http: 'none' leaves nothing to ask; give the agent's control server HOST:PORT");
        // Bound before asking: loading it after the release would eat into the margin.
        const hostNowNs = args.synchronized ? hostRealtime() : null;
        // The command is made ready to start at once (start-command.ts) before the wait, not after the release.
        const prepared = commandFor(trailingCommand);
        const outcome = await runBarrier({
          name,
          count,
          wait: Boolean(args.wait),
          errorCode,
          timeoutMs: timeoutS === null ? null : Math.max(1, Math.round(timeoutS * 1000)),
          host: target.host,
          port: target.port,
          synchronized: Boolean(args.synchronized),
        });
        const released = outcome.exitCode === 0 && outcome.result?.result === 'released';
        const started =
          released && hostNowNs !== null
            ? await startAtRelease(outcome, { name, count, wait: true, errorCode, timeoutMs: null, host: target.host, port: target.port }, hostNowNs)
            : { start: null, messages: [] };
        const print = (how?: CommandStart) => {
          const start = started.start === null ? null : how === undefined ? started.start : { ...started.start, command: how };
          if (args.json && outcome.result !== null) process.stdout.write(`${JSON.stringify(start === null ? outcome.result : { ...outcome.result, start })}\n`);
          for (const line of started.messages) process.stderr.write(`berkeley-agent: ${line}\n`);
          if (outcome.message !== null) process.stderr.write(`berkeley-agent: ${outcome.message}\n`);
        };
        // The command runs only after a clean release (a barrier error code or a failure is passed on instead).
        if (trailingCommand === null || outcome.exitCode !== 0) {
          print();
          process.exitCode = outcome.exitCode;
          return;
        }
        const ran = await startCommand(trailingCommand, started.start, prepared, hostNowNs, print);
        if (ran.message !== null) process.stderr.write(`berkeley-agent: barrier ${name}: ${ran.message}\n`);
        process.exitCode = ran.exitCode;
      },
    )
    .command(
      'at <time>',
      'Return, or run a command, when the cluster clock (the local agent\'s) reaches TIME',
      (command) =>
        command
          .positional('time', { type: 'string', describe: 'ISO 8601 instant (2025-01-31T12:00:00.250Z; local time without a zone), @EPOCH[.FRACTION] or +SECONDS from now', demandOption: true })
          .option('http', { type: 'string', describe: "The local agent's control server HOST:PORT", default: `127.0.0.1:${HTTP_PORT_DEFAULT}` })
          .option('allow-unsynchronized', { type: 'boolean', describe: "Go ahead when the agent is not synchronized (its own clock then)", default: false })
          .option('json', { type: 'boolean', describe: 'Print what happened as JSON (the instant, when the wait ended, how late)', default: false })
          .usage('$0 at <time> [options] [-- COMMAND ARGS...]\n\nWith -- COMMAND, run COMMAND (no shell) at TIME and exit with its code.'),
      async (args) => {
        const timeText = String(args.time);
        const time = parseTime(timeText);
        if ('error' in time) usageError(`TIME ${JSON.stringify(timeText.slice(0, 80))} ${time.error}`);
        const target = parseHttp(args.http);
        if (target === null) usageError("--http: 'none' leaves nothing to ask; give the agent's control server HOST:PORT");
        const outcome = await runAt({ time, timeText, target, allowUnsynchronized: Boolean(args['allow-unsynchronized']), command: trailingCommand }, (report, messages) => {
          if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
          for (const line of messages) process.stderr.write(`berkeley-agent: ${line}\n`);
        });
        // Without a report nothing was printed yet; with a command, these are about the command itself.
        if (outcome.report === null || trailingCommand !== null) for (const line of outcome.messages) process.stderr.write(`berkeley-agent: ${line}\n`);
        process.exitCode = outcome.exitCode;
      },
    )
    .command(
      'query <target>',
      "Measure a remote agent's clock against this host (Cristian's algorithm)",
      (command) =>
        command
          .positional('target', { type: 'string', describe: 'The agent HOST:PORT (UDP)', demandOption: true })
          .option('samples', { ...NUMBER, describe: 'Queries to send; the lowest round trip is kept', default: 8 })
          .option('timeout', { ...NUMBER, describe: 'Seconds to wait for answers after the last query', default: 1 })
          .option('key-file', { type: 'string', requiresArg: true, describe: "The cluster's key file, for an agent that authenticates frames" })
          .option('json', { type: 'boolean', describe: 'Print the result as JSON', default: false })
          .number(['samples', 'timeout']),
      async (args) => {
        let auth: FrameAuth | null = null;
        if (args['key-file'] !== undefined) {
          try {
            auth = new FrameAuth(loadKeyFile(String(args['key-file'])).keys);
          } catch (error) {
            if (error instanceof KeyFileError) usageError(error.message);
            throw error;
          }
        }
        let target;
        try {
          target = parseHostPort(String(args.target), 'target', { allowPortZero: false });
        } catch (error) {
          if (error instanceof ConfigError) usageError(error.message.replace('--target', 'HOST:PORT'));
          throw error;
        }
        const samples = numberOption(args, 'samples', 8, { min: 1, max: 1000, integer: true });
        const timeoutS = numberOption(args, 'timeout', 1, { min: 0, max: 60 });
        const { lookup } = await import('node:dns/promises');
        let address: string;
        try {
          address = (await lookup(target.host, { family: 4 })).address;
        } catch {
          runtimeError(`cannot resolve ${target.host}`);
        }
        try {
          const result = await queryAgent({ address, port: target.port }, { samples, intervalMs: 20, timeoutMs: timeoutS * 1000, auth });
          if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
          else {
            process.stdout.write(
              `${result.remoteNodeId} at ${result.target} (term ${result.remoteTerm}): offset ${formatOffsetNs(result.offsetNs)} ± ${formatDurationNs(result.errorBoundNs)} against this host, ` +
                `round trip ${formatDurationNs(result.rttNs)} (best of ${result.samplesReceived}/${result.samplesSent} answers)\n`,
            );
          }
        } catch (error) {
          if (error instanceof QueryError) runtimeError(error.message);
          throw error;
        }
      },
    )
    .command(
      'demo',
      'Run a local demo cluster on loopback (no root, no network)',
      (command) =>
        command
          .option('nodes', { ...NUMBER, describe: 'Number of agents (2..32)', default: 5 })
          .option('duration', { ...NUMBER, describe: 'Seconds to run (5..3600)', default: 20 })
          .option('poll-interval', { ...NUMBER, describe: 'Seconds between rounds', default: 1 })
          .option('failover', { type: 'boolean', describe: 'Stop the master half-way (--no-failover to keep it)', default: true })
          .option('json', { type: 'boolean', describe: 'Print only the summary, as JSON', default: false })
          .option('dashboard-port', { ...NUMBER, describe: 'Serve the agents\' dashboards on 127.0.0.1:PORT, PORT+1, ... (0 = any free ports)' })
          .number(['nodes', 'duration', 'poll-interval', 'dashboard-port']),
      async (args) => {
        const nodes = numberOption(args, 'nodes', 5, { min: 2, max: 32, integer: true });
        const durationS = numberOption(args, 'duration', 20, { min: 5, max: 3600 });
        const pollIntervalS = numberOption(args, 'poll-interval', 1, { min: 0.1, max: 60 });
        // A failover needs the cluster converged first (~3 s), then the master timeout (3 polls)
        // and an election before the end: refuse a run too short to show it.
        const failoverDurationMinS = 4 + 4 * pollIntervalS;
        if (args.failover && durationS < failoverDurationMinS) {
          usageError(`--duration: a demo with a failover needs at least ${failoverDurationMinS} s at --poll-interval ${pollIntervalS} (got ${durationS}); run longer or add --no-failover`);
        }
        const dashboardPort = args['dashboard-port'] === undefined ? null : numberOption(args, 'dashboard-port', 0, { min: 0, max: 65_535 - nodes + 1, integer: true });
        const summary = await runDemo({ nodes, durationS, pollIntervalS, failover: Boolean(args.failover), json: Boolean(args.json), dashboardPort, out: process.stdout });
        process.stdout.write(args.json ? `${JSON.stringify(summary)}\n` : `${formatDemoSummary(summary)}\n`);
        process.exitCode = summary.ok ? 0 : EXIT_RUNTIME;
      },
    )
    .strict()
    .recommendCommands()
    .version(PACKAGE_VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((message, error) => {
      if (error) reportError(error);
      usageError(oneLine(message ?? 'invalid command line'));
    })
    .parseAsync();
}

// A closed stdout (`berkeley-agent config | head -1`) is the reader being done, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  reportError(error);
});

try {
  await main(hideBin(process.argv));
} catch (error) {
  // A synchronous handler's error (keygen, config) leaves parseAsync without passing .fail().
  reportError(error);
}
