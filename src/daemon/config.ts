// Run configuration: raw option values (command line, environment, config file, all merged by
// yargs) in, a validated configuration out. Every error names the option and what is wrong.
import os from 'node:os';
import { KeyFileError, keyFilePath, loadKeyFile, type LoadedKeys } from './keys.ts';
import { isIPv4 } from 'node:net';
import {
  CLUSTER_BYTES_MAX,
  CLUSTER_DEFAULT,
  CORRECTION_NS_MAX,
  TIMESTAMP_NS_MAX,
  CORRECTION_NS_MAX_DEFAULT,
  DISCOVERY_WINDOW_MS_DEFAULT,
  HTTP_PORT_DEFAULT,
  MASTER_TIMEOUT_POLLS_DEFAULT,
  NTP_PORT_DEFAULT,
  NODE_ID_BYTES_MAX,
  OUTLIER_THRESHOLD_MS_DEFAULT,
  PEERS_MAX_DEFAULT,
  POLL_INTERVAL_MS_DEFAULT,
  POLL_INTERVAL_MS_MAX,
  POLL_INTERVAL_MS_MIN,
  PRIORITY_DEFAULT,
  PRIORITY_MAX,
  PROBE_SPACING_MS_DEFAULT,
  PROBES_MIN_DEFAULT,
  PROBES_PER_ROUND_DEFAULT,
  PROBES_PER_ROUND_MAX,
  SLEW_PPM_MAX_DEFAULT,
  STATIC_ENDPOINTS_MAX,
  STEP_THRESHOLD_NS_DEFAULT,
  UDP_PORT_DEFAULT,
  UPSTREAM_POLL_INTERVAL_MS_DEFAULT,
  UPSTREAM_POLL_INTERVAL_MS_MAX,
  UPSTREAM_POLL_INTERVAL_MS_MIN,
  UPSTREAMS_MAX,
  VIRTUAL_DRIFT_PPM_MAX,
} from '../core/limits.ts';
import { parseUpstream, type UpstreamAddress } from '../ntp/upstream-address.ts';
import type { LogFormat } from './logger.ts';
import { LOG_LEVELS } from './logger.ts';
import type { LevelWithSilent } from 'pino';

/** A configuration error: the CLI prints the message (and where the value came from) and exits 2. */
export class ConfigError extends Error {
  readonly code = 'ECONFIG';
  /** The option the message names, so the CLI can add where its value came from. */
  readonly option: string | null;
  /** What is wrong and the value as shown, for a message that also says where the value came from. */
  readonly detail: { problem: string; shown: string } | null;
  constructor(message: string, option: string | null = null, detail: { problem: string; shown: string } | null = null) {
    super(message);
    this.option = option;
    this.detail = detail;
  }
}

export interface HostPort {
  host: string;
  port: number;
}

export type ClockChoice = 'auto' | 'system' | 'virtual';

export interface RunConfig {
  nodeId: string;
  cluster: string;
  priority: number;
  neverMaster: boolean;
  electionAlgorithm: 'ring' | 'bully';
  interfaceName: string | null;
  bindAddress: string | null;
  port: number;
  peers: HostPort[];
  mdns: boolean;
  pollIntervalMs: number;
  masterTimeoutMs: number;
  discoveryWindowMs: number;
  outlierThresholdNs: number;
  clock: ClockChoice;
  virtualOffsetNs: number;
  virtualDriftPpm: number;
  stepThresholdNs: number;
  slewPpmMax: number;
  /** Corrections larger than this after synchronization are refused (panic threshold); Infinity = never. */
  correctionNsMax: number;
  /** Run the kernel clock even when another time daemon is running. */
  force: boolean;
  probesPerRound: number;
  probesMin: number;
  probeSpacingMs: number;
  /** Receive timestamps from the kernel (SIOCGSTAMPNS) when available. */
  kernelTimestamps: boolean;
  peersMax: number;
  http: HostPort | null;
  /** UDP port of the NTP server (--ntp-port; default 123); 0: no NTP server. */
  ntpPort: number;
  /** NTP servers to follow (--upstream, issue 18); empty: none, the cluster keeps its own time. */
  upstreams: UpstreamAddress[];
  /** Steady poll interval of each upstream (--upstream-poll), ms. */
  upstreamPollIntervalMs: number;
  /** Where state survives restarts (the term); null keeps nothing. */
  stateDir: string | null;
  /** The cluster keys (--key-file, or systemd's credential `keys`); null: frames are not authenticated. */
  keys: LoadedKeys | null;
  logLevel: LevelWithSilent;
  logFormat: LogFormat;
}

/** Raw values as yargs hands them over (strings from the environment, numbers from argv...). */
export type RawRunOptions = Record<string, unknown>;

const IDENTIFIER = /^[\x21-\x7e]+$/;

function fail(option: string, message: string, value: unknown): never {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw new ConfigError(`--${option}: ${message} (got ${shown})`, option, { problem: message, shown });
}

/**
 * The numbers options take as text (command line, environment, strings in a config file): plain
 * decimal, an optional sign and fraction, blanks around it ignored. No hexadecimal, octal or
 * binary, no exponent, no Infinity: `--port 0x1f` is a typo far more often than a wish for port 31.
 * A config file may also give JSON numbers.
 */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/** Text (or a JSON number) as a number, or NaN when it is not a plain decimal. */
export function parseDecimal(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string' || !DECIMAL.test(value.trim())) return Number.NaN;
  return Number(value.trim());
}

/**
 * A numeric option (text from argv or the environment, a number from a config file), validated.
 * Absent (undefined) takes the default; an empty value is refused, never read as "the default".
 */
export function numberOption(raw: RawRunOptions, option: string, fallback: number, check: { min: number; max: number; integer?: boolean; minExclusive?: boolean }): number {
  const value = raw[option];
  if (value === undefined) return fallback;
  if (Array.isArray(value)) fail(option, 'given more than once', value.join(', '));
  if (value === null || (typeof value === 'string' && value.trim() === '')) fail(option, 'must not be empty: give a number, or leave the option out for its default', value);
  const parsed = parseDecimal(value);
  if (!Number.isFinite(parsed)) fail(option, 'must be a plain decimal number', value);
  if (check.integer && !Number.isInteger(parsed)) fail(option, 'must be a whole number', value);
  if (check.minExclusive ? parsed <= check.min : parsed < check.min) fail(option, `must be ${check.minExclusive ? 'greater than' : 'at least'} ${check.min}`, value);
  if (parsed > check.max) fail(option, `must be at most ${check.max}`, value);
  return parsed;
}

function string(raw: RawRunOptions, option: string): string | undefined {
  const value = raw[option];
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) fail(option, 'given more than once', value.join(', '));
  if (typeof value !== 'string' && typeof value !== 'number') fail(option, 'must be text', value);
  return String(value);
}

function identifier(raw: RawRunOptions, option: string, fallback: string, maxBytes: number): string {
  const value = string(raw, option) ?? fallback;
  if (value.length === 0) fail(option, 'must not be empty', value);
  if (!IDENTIFIER.test(value)) fail(option, 'may contain only printable ASCII characters without spaces', value);
  if (value.length > maxBytes) fail(option, `must be at most ${maxBytes} bytes`, value);
  return value;
}

/** The spellings of a boolean, from every source, in any case. */
const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];
export const BOOLEAN_SPELLINGS = '1/0, true/false, yes/no or on/off';

/** A boolean given as text (or a JSON boolean, or 0/1): null when it is none of the spellings. */
export function parseBoolean(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1) return value === 1;
  if (typeof value !== 'string') return null;
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  return null;
}

/** A boolean option's value, or the refusal naming it. */
export function booleanOption(raw: RawRunOptions, option: string, fallback: boolean): boolean {
  const value = raw[option];
  if (value === undefined) return fallback;
  if (Array.isArray(value)) fail(option, 'given more than once', value.join(', '));
  const parsed = parseBoolean(value);
  if (parsed === null) fail(option, `must be ${BOOLEAN_SPELLINGS}`, value);
  return parsed;
}

/** Parses HOST:PORT (IPv4 address or host name). `[v6]:port` is refused: the transport is IPv4. */
export function parseHostPort(text: string, option: string, options: { allowPortZero: boolean }): HostPort {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(text.trim());
  if (!match) fail(option, 'must be HOST:PORT', text);
  const host = match[1] as string;
  const port = Number(match[2]);
  if (port > 65535 || (port === 0 && !options.allowPortZero)) fail(option, `port must be ${options.allowPortZero ? 0 : 1}..65535`, text);
  if (!isIPv4(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
    fail(option, 'host must be an IPv4 address or a host name', text);
  }
  return { host, port };
}

export function parseHttp(value: unknown): HostPort | null {
  if (value === undefined) return { host: '127.0.0.1', port: HTTP_PORT_DEFAULT };
  if (value === null || value === '') fail('http', "must not be empty: give HOST:PORT or 'none', or leave the option out for its default", value);
  if (Array.isArray(value)) fail('http', 'given more than once', value.join(', '));
  if (typeof value !== 'string') fail('http', 'must be HOST:PORT or none', value);
  if (value === 'none') return null;
  return parseHostPort(value, 'http', { allowPortZero: true });
}

function electionChoice(raw: RawRunOptions): 'ring' | 'bully' {
  const value = string(raw, 'election') ?? 'ring';
  if (value !== 'ring' && value !== 'bully') fail('election', 'must be ring or bully', value);
  return value;
}

/** --key-file (or systemd's credential), loaded and checked now: a bad key file is a bad option. */
function clusterKeys(raw: RawRunOptions): LoadedKeys | null {
  const given = string(raw, 'key-file');
  if (given !== undefined && (given.trim() === '' || given.includes('\0'))) fail('key-file', 'must be a file path', given);
  const path = keyFilePath(given ?? null);
  if (path === null) return null;
  try {
    return loadKeyFile(path);
  } catch (error) {
    if (error instanceof KeyFileError) throw new ConfigError(error.message, 'key-file');
    throw error;
  }
}

/** --state-dir, else systemd's $STATE_DIRECTORY (StateDirectory=), else none. */
function stateDirectory(raw: RawRunOptions): string | null {
  const given = string(raw, 'state-dir');
  if (given !== undefined) {
    if (given.trim() === '' || given.includes('\0')) fail('state-dir', 'must be a directory path', given);
    return given;
  }
  const fromSystemd = process.env.STATE_DIRECTORY?.split(':')[0];
  return fromSystemd ? fromSystemd : null;
}

function defaultNodeId(port: number): string {
  const host = os.hostname().replace(/[^\x21-\x7e]/g, '-').slice(0, NODE_ID_BYTES_MAX - 8) || 'node';
  if (port === UDP_PORT_DEFAULT) return host;
  // Several agents on one host need distinct ids.
  return `${host}-${port === 0 ? process.pid : port}`;
}

function maxCorrectionNs(raw: RawRunOptions): number {
  const seconds = numberOption(raw, 'max-correction', CORRECTION_NS_MAX_DEFAULT / 1e9, { min: 0, max: CORRECTION_NS_MAX / 1e9 });
  return seconds === 0 ? Number.POSITIVE_INFINITY : seconds * 1e9;
}

/**
 * --upstream HOST[:PORT], repeatable; the environment (and a config file string) may list several
 * separated by commas or blanks, as --peer. The first bad value, a duplicate, or more than
 * UPSTREAMS_MAX are refused naming the option.
 */
export function upstreamServers(raw: RawRunOptions): UpstreamAddress[] {
  const value = raw.upstream;
  const values = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
  for (const each of values) if (typeof each !== 'string') fail('upstream', 'must be HOST[:PORT] text', each);
  const texts = (values as string[]).flatMap((text) => text.split(/[\s,]+/)).filter((text) => text !== '');
  if (texts.length > UPSTREAMS_MAX) fail('upstream', `at most ${UPSTREAMS_MAX} servers`, texts.length);
  const upstreams: UpstreamAddress[] = [];
  const seen = new Set<string>();
  for (const text of texts) {
    const parsed = parseUpstream(text);
    if (!parsed.ok) {
      // parseUpstream says `--upstream "TEXT": problem`; keep the problem, in this file's form.
      const prefix = `--upstream ${JSON.stringify(text)}: `;
      fail('upstream', parsed.message.startsWith(prefix) ? parsed.message.slice(prefix.length) : parsed.message, text);
    }
    const key = `${parsed.upstream.host.toLowerCase().replace(/\.$/, '')}:${parsed.upstream.port}`;
    if (seen.has(key)) fail('upstream', 'names the same server twice (one server counts once in selection)', text);
    seen.add(key);
    upstreams.push(parsed.upstream);
  }
  return upstreams;
}

/** A Linux network interface name (IFNAMSIZ: at most 15 bytes). */
export function isInterfaceName(name: string): boolean {
  return /^[A-Za-z0-9_.:@-]{1,15}$/.test(name);
}

/**
 * --virtual-offset: any offset that keeps the virtual clock's start a valid timestamp, from
 * 1970-01-01 (a box whose RTC battery died: minus the host's epoch seconds) to the end of the
 * 64-bit range (2262). Checked against the host's time now; the clock starts a moment later.
 */
function virtualOffsetNs(raw: RawRunOptions, hostNowMs: number): number {
  const seconds = numberOption(raw, 'virtual-offset', 0, { min: Number.NEGATIVE_INFINITY, max: Number.POSITIVE_INFINITY });
  const hostNowS = hostNowMs / 1000;
  const minS = -hostNowS;
  const maxS = Number(TIMESTAMP_NS_MAX / 1_000_000_000n) - hostNowS;
  if (seconds < minS || seconds >= maxS) {
    fail('virtual-offset', `must keep the virtual clock between 1970-01-01 and ${TIMESTAMP_END_TEXT} (from ${Math.ceil(minS)} to ${Math.floor(maxS)} seconds now)`, raw['virtual-offset']);
  }
  return seconds * 1e9;
}

/** The last second a 64-bit nanosecond timestamp holds (2^63 - 1 ns after the epoch). */
const TIMESTAMP_END_TEXT = new Date(Number(TIMESTAMP_NS_MAX / 1_000_000n)).toISOString().replace(/\.\d+Z$/, 'Z');

/** `hostNowMs`: the host's time (for the range of --virtual-offset), the system clock unless a test says otherwise. */
export function buildRunConfig(raw: RawRunOptions, hostNowMs: number = Date.now()): RunConfig {
  const port = numberOption(raw, 'port', UDP_PORT_DEFAULT, { min: 0, max: 65535, integer: true });
  const pollIntervalMs = numberOption(raw, 'poll-interval', POLL_INTERVAL_MS_DEFAULT / 1000, { min: POLL_INTERVAL_MS_MIN / 1000, max: POLL_INTERVAL_MS_MAX / 1000 }) * 1000;
  const probesPerRound = numberOption(raw, 'probes', PROBES_PER_ROUND_DEFAULT, { min: 1, max: PROBES_PER_ROUND_MAX, integer: true });
  const masterTimeoutMs =
    numberOption(raw, 'master-timeout', (pollIntervalMs * MASTER_TIMEOUT_POLLS_DEFAULT) / 1000, { min: 0, max: (POLL_INTERVAL_MS_MAX * 10) / 1000, minExclusive: true }) * 1000;
  if (masterTimeoutMs <= pollIntervalMs) fail('master-timeout', `must be longer than --poll-interval (${pollIntervalMs / 1000} s)`, masterTimeoutMs / 1000);

  const clock = string(raw, 'clock') ?? 'auto';
  if (clock !== 'auto' && clock !== 'system' && clock !== 'virtual') fail('clock', 'must be auto, system or virtual', clock);

  const peerValues = raw.peer === undefined || raw.peer === null ? [] : Array.isArray(raw.peer) ? raw.peer : [raw.peer];
  // The environment gives one string; allow a comma- or space-separated list there.
  const peerTexts = peerValues.flatMap((value) => String(value).split(/[\s,]+/)).filter((text) => text !== '');
  if (peerTexts.length > STATIC_ENDPOINTS_MAX) fail('peer', `at most ${STATIC_ENDPOINTS_MAX} static peers`, peerTexts.length);
  const peers = peerTexts.map((text) => parseHostPort(text, 'peer', { allowPortZero: false }));

  const bindAddress = string(raw, 'bind') ?? null;
  if (bindAddress !== null && !isIPv4(bindAddress)) fail('bind', 'must be an IPv4 address', bindAddress);

  const logLevel = string(raw, 'log-level') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as LevelWithSilent)) fail('log-level', `must be one of ${LOG_LEVELS.join(', ')}`, logLevel);
  const logFormat = string(raw, 'log-format') ?? 'auto';
  if (logFormat !== 'json' && logFormat !== 'pretty' && logFormat !== 'auto') fail('log-format', 'must be json, pretty or auto', logFormat);

  const interfaceName = string(raw, 'interface') ?? null;
  if (interfaceName !== null && !isInterfaceName(interfaceName)) fail('interface', 'must be a network interface name', interfaceName);

  return {
    nodeId: identifier(raw, 'node-id', defaultNodeId(port), NODE_ID_BYTES_MAX),
    cluster: identifier(raw, 'cluster', CLUSTER_DEFAULT, CLUSTER_BYTES_MAX),
    priority: numberOption(raw, 'priority', PRIORITY_DEFAULT, { min: 0, max: PRIORITY_MAX, integer: true }),
    neverMaster: booleanOption(raw, 'never-master', false),
    electionAlgorithm: electionChoice(raw),
    interfaceName,
    bindAddress,
    port,
    peers,
    mdns: booleanOption(raw, 'mdns', true),
    pollIntervalMs,
    masterTimeoutMs,
    discoveryWindowMs: numberOption(raw, 'discovery-window', DISCOVERY_WINDOW_MS_DEFAULT / 1000, { min: 0, max: 600 }) * 1000,
    outlierThresholdNs: numberOption(raw, 'outlier-threshold', OUTLIER_THRESHOLD_MS_DEFAULT / 1000, { min: 0, max: 3600, minExclusive: true }) * 1e9,
    clock,
    virtualOffsetNs: virtualOffsetNs(raw, hostNowMs),
    // Within what the discipline can take back (its frequency stays within +-500 ppm).
    virtualDriftPpm: numberOption(raw, 'virtual-drift', 0, { min: -VIRTUAL_DRIFT_PPM_MAX, max: VIRTUAL_DRIFT_PPM_MAX }),
    stepThresholdNs: numberOption(raw, 'step-threshold', STEP_THRESHOLD_NS_DEFAULT / 1e9, { min: 0, max: 1e6 }) * 1e9,
    slewPpmMax: numberOption(raw, 'max-slew-ppm', SLEW_PPM_MAX_DEFAULT, { min: 1, max: 100_000 }),
    // 0 turns the panic threshold off (like ntpd's -g forever); that is allowed but not advised.
    correctionNsMax: maxCorrectionNs(raw),
    force: booleanOption(raw, 'force', false),
    kernelTimestamps: booleanOption(raw, 'kernel-timestamps', true),
    probesPerRound,
    probesMin: numberOption(raw, 'min-probes', Math.min(PROBES_MIN_DEFAULT, probesPerRound), { min: 1, max: probesPerRound, integer: true }),
    probeSpacingMs: numberOption(raw, 'probe-spacing', PROBE_SPACING_MS_DEFAULT / 1000, { min: 0, max: 0.1 }) * 1000,
    peersMax: numberOption(raw, 'max-peers', PEERS_MAX_DEFAULT, { min: 1, max: 65_536, integer: true }),
    http: parseHttp(raw.http),
    ntpPort: numberOption(raw, 'ntp-port', NTP_PORT_DEFAULT, { min: 0, max: 65535, integer: true }),
    upstreams: upstreamServers(raw),
    upstreamPollIntervalMs: numberOption(raw, 'upstream-poll', UPSTREAM_POLL_INTERVAL_MS_DEFAULT / 1000, { min: UPSTREAM_POLL_INTERVAL_MS_MIN / 1000, max: UPSTREAM_POLL_INTERVAL_MS_MAX / 1000 }) * 1000,
    stateDir: stateDirectory(raw),
    keys: clusterKeys(raw),
    logLevel: logLevel as LevelWithSilent,
    logFormat,
  };
}
