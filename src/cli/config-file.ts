// The configuration file (--config FILE, default /etc/berkeley-agent/config.json when it exists)
// and where each value of a `run` configuration comes from: command line > environment
// (BERKELEY_AGENT_*) > file > defaults, as yargs merges them. `berkeley-agent config` prints it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../daemon/config.ts';

export const CONFIG_FILE_DEFAULT = '/etc/berkeley-agent/config.json';
/** A config file larger than this is not a config file. */
const CONFIG_FILE_BYTES_MAX = 64 * 1024;

export interface LoadedConfigFile {
  path: string;
  /** The option names the file sets. */
  keys: string[];
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
  lastLoaded = { path: configPath, keys: Object.keys(parsed) };
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
