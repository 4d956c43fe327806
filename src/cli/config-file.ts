// The configuration file (--config FILE, default /etc/berkeley-agent/config.json when it exists)
// and where each value of a `run` configuration comes from: command line > environment
// (BERKELEY_AGENT_*) > file > defaults, as yargs merges them. `berkeley-agent config` prints it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BOOLEAN_SPELLINGS, ConfigError, parseBoolean } from '../daemon/config.ts';
import { CONFIG_FILE_BYTES_MAX } from '../core/limits.ts';

export const CONFIG_FILE_DEFAULT = '/etc/berkeley-agent/config.json';

export interface LoadedConfigFile {
  path: string;
  /** The option names the file sets. */
  keys: string[];
  /** The values as written (yargs has turned booleans it does not know the spelling of into false). */
  values: Record<string, unknown>;
}

let lastLoaded: LoadedConfigFile | null = null;

/** The file the last readConfigFile() loaded (null: none, e.g. the default path does not exist). */
export function loadedConfigFile(): LoadedConfigFile | null {
  return lastLoaded;
}

/** yargs' config parser: a JSON object of options. A missing default file is no file. */
export function readConfigFile(configPath: string): Record<string, unknown> {
  lastLoaded = null;
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT' && path.resolve(configPath) === CONFIG_FILE_DEFAULT) return {};
    throw new ConfigError(`--config: cannot read ${configPath} (${code})`);
  }
  if (text.length > CONFIG_FILE_BYTES_MAX) throw new ConfigError(`--config: ${configPath} is larger than ${CONFIG_FILE_BYTES_MAX} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`--config: ${configPath} is not JSON (${(error as Error).message.split('\n')[0]})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`--config: ${configPath} must hold one JSON object of options`);
  lastLoaded = { path: configPath, keys: Object.keys(parsed), values: parsed as Record<string, unknown> };
  return parsed as Record<string, unknown>;
}

export type ValueSource = 'command line' | 'environment' | 'config file' | 'default';

/** Where yargs took `option` from, by the same precedence it applies. */
export function sourceOf(option: string, argvTokens: readonly string[], env: NodeJS.ProcessEnv, fileKeys: ReadonlySet<string>): ValueSource {
  const given = argvTokens.some((token) => token === `--${option}` || token.startsWith(`--${option}=`) || token === `--no-${option}`);
  if (given) return 'command line';
  if (env[`BERKELEY_AGENT_${option.toUpperCase().replace(/-/g, '_')}`] !== undefined) return 'environment';
  if (fileKeys.has(option)) return 'config file';
  return 'default';
}

/** The environment variable that sets `option` (for `run` and `config`). */
export function envName(option: string): string {
  return `BERKELEY_AGENT_${option.toUpperCase().replace(/-/g, '_')}`;
}

const camel = (option: string) => option.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** Where a value came from, in words for an error message ("" for a default). */
export function describeSource(option: string, argvTokens: readonly string[], env: NodeJS.ProcessEnv, file: LoadedConfigFile | null): string {
  switch (sourceOf(option, argvTokens, env, new Set(file?.keys ?? []))) {
    case 'command line':
      return 'on the command line';
    case 'environment':
      return `from ${envName(option)}`;
    case 'config file':
      return `in the config file ${file?.path ?? ''}`;
    case 'default':
      return '';
  }
}

/** A boolean as given, before yargs read it: its text (or JSON value) and where it came from. */
interface GivenBoolean {
  value: unknown;
  where: string;
}

/** The last spelling of a boolean option on the command line, as yargs would take it. */
function givenOnCommandLine(option: string, argvTokens: readonly string[]): GivenBoolean | null {
  const names = new Set([option, camel(option)]);
  let given: GivenBoolean | null = null;
  for (let index = 0; index < argvTokens.length; index += 1) {
    const token = argvTokens[index] as string;
    if (token === '--') break;
    if (!token.startsWith('--')) continue;
    const [name = '', ...rest] = token.slice(2).split('=');
    const value = rest.length > 0 ? rest.join('=') : undefined;
    if (names.has(name)) {
      // yargs takes a following "true" or "false" as the value of a boolean flag.
      const next = argvTokens[index + 1];
      if (value !== undefined) given = { value, where: 'on the command line' };
      else if (next === 'true' || next === 'false') given = { value: next, where: 'on the command line' };
      else given = { value: true, where: 'on the command line' };
    } else if (name.startsWith('no-') && names.has(name.slice(3))) {
      given = { value: value === undefined ? false : token, where: 'on the command line' };
    }
  }
  return given;
}

/**
 * yargs reads a boolean only as "true" (anything else is false: BERKELEY_AGENT_NEVER_MASTER=1 and
 * {"never-master": "yes"} were false). Read each boolean option of the command again from where
 * it was given (command line > environment > config file, yargs' precedence) with every usual
 * spelling, and refuse any other value naming the option and where it came from.
 */
export function resolveBooleans(argv: Record<string, unknown>, options: readonly string[], argvTokens: readonly string[], env: NodeJS.ProcessEnv | null, file: LoadedConfigFile | null): void {
  for (const option of options) {
    let given = givenOnCommandLine(option, argvTokens);
    if (given === null && env !== null && env[envName(option)] !== undefined) given = { value: env[envName(option)], where: `from ${envName(option)}` };
    if (given === null && file !== null) {
      const key = [option, camel(option)].find((name) => Object.hasOwn(file.values, name));
      if (key !== undefined) given = { value: file.values[key], where: `in the config file ${file.path}` };
    }
    if (given === null) continue;
    const parsed = parseBoolean(given.value);
    if (parsed === null) {
      const shown = typeof given.value === 'string' ? JSON.stringify(given.value) : JSON.stringify(given.value) ?? String(given.value);
      const problem = `must be ${BOOLEAN_SPELLINGS}`;
      throw new ConfigError(`--${option}: ${problem} (got ${shown} ${given.where})`, null);
    }
    argv[option] = parsed;
    argv[camel(option)] = parsed;
  }
}
