// Boolean options from every source: the command line, the environment (BERKELEY_AGENT_<NAME>)
// and a config file, each read with every usual spelling (1/0, true/false, yes/no, on/off, any
// case), anything else refused naming the option and the source. yargs alone read only "true"
// (BERKELEY_AGENT_NEVER_MASTER=1 was false, BERKELEY_AGENT_MDNS=yes turned mDNS off,
// {"never-master": "yes"} was false). The matrix runs in-process on resolveBooleans (what the CLI
// runs before every command); real `berkeley-agent config --json` processes check the wiring.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/daemon/config.ts';
import { resolveBooleans, type LoadedConfigFile } from '../src/cli/config-file.ts';
import { describeResult, runCli, stopAllChildren } from '../lab/processes.ts';

afterAll(stopAllChildren);

const TRUE_SPELLINGS = ['1', 'true', 'yes', 'on', 'TRUE', 'Yes', 'On', 'tRuE', 'YES'];
const FALSE_SPELLINGS = ['0', 'false', 'no', 'off', 'FALSE', 'No', 'OFF', 'fAlSe', 'NO'];
const REFUSED = ['maybe', 'y', 'n', '2', '-1', 'enable', 'truee', 'nope'];
const OPTIONS = ['never-master', 'mdns', 'force', 'kernel-timestamps'];

type Source = 'command line' | 'environment' | 'config file';
const SOURCES: Source[] = ['command line', 'environment', 'config file'];

const envName = (option: string) => `BERKELEY_AGENT_${option.toUpperCase().replace(/-/g, '_')}`;

/** Resolves `option` given as `value` from `source`; yargs' own reading (false) is in argv first. */
function resolveFrom(source: Source, option: string, value: unknown): Record<string, unknown> {
  const argv: Record<string, unknown> = { [option]: false };
  const tokens = source === 'command line' ? [`--${option}=${String(value)}`] : [];
  const env = source === 'environment' ? { [envName(option)]: String(value) } : {};
  const file: LoadedConfigFile | null = source === 'config file' ? { path: '/etc/x.json', keys: [option], values: { [option]: value } } : null;
  resolveBooleans(argv, [option], tokens, env, file);
  return argv;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('every spelling from every source', () => {
  for (const source of SOURCES) {
    for (const option of OPTIONS) {
      it(`--${option} from the ${source}`, () => {
        for (const spelling of TRUE_SPELLINGS) expect(resolveFrom(source, option, spelling)[option], spelling).toBe(true);
        for (const spelling of FALSE_SPELLINGS) expect(resolveFrom(source, option, spelling)[option], spelling).toBe(false);
        // The camelCase twin yargs also sets follows.
        const camel = option.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
        expect(resolveFrom(source, option, 'yes')[camel]).toBe(true);
      });
    }
  }

  it('a config file may also give JSON booleans and 0/1', () => {
    for (const [value, expected] of [[true, true], [false, false], [1, true], [0, false]] as const) {
      expect(resolveFrom('config file', 'never-master', value)['never-master']).toBe(expected);
    }
  });

  it('the command line: --flag is true, --no-flag false, --flag true|false as two words', () => {
    const resolve = (tokens: string[]) => {
      const argv: Record<string, unknown> = { mdns: true };
      resolveBooleans(argv, ['mdns'], tokens, {}, null);
      return argv.mdns;
    };
    expect(resolve(['--no-mdns'])).toBe(false);
    expect(resolve(['--mdns'])).toBe(true);
    expect(resolve(['--mdns', 'false'])).toBe(false);
    expect(resolve(['--mdns=off'])).toBe(false);
    expect(resolve(['--mdns=off', '--mdns=ON'])).toBe(true);
    // Not an option after "--".
    expect(resolve(['--', '--mdns=off'])).toBe(true);
    expect(() => resolve(['--no-mdns=yes'])).toThrow(ConfigError);
  });

  it('precedence: command line > environment > config file > default', () => {
    const file: LoadedConfigFile = { path: '/etc/x.json', keys: ['mdns'], values: { mdns: 'off' } };
    const resolve = (tokens: string[], env: NodeJS.ProcessEnv, configFile: LoadedConfigFile | null) => {
      const argv: Record<string, unknown> = { mdns: true };
      resolveBooleans(argv, ['mdns'], tokens, env, configFile);
      return argv.mdns;
    };
    expect(resolve(['--mdns=on'], { BERKELEY_AGENT_MDNS: 'no' }, file)).toBe(true);
    expect(resolve([], { BERKELEY_AGENT_MDNS: 'yes' }, file)).toBe(true);
    expect(resolve([], {}, file)).toBe(false);
    expect(resolve([], {}, null)).toBe(true);
    // A command that does not read the environment (env null) ignores it.
    const argv: Record<string, unknown> = { mdns: true };
    resolveBooleans(argv, ['mdns'], [], null, null);
    expect(argv.mdns).toBe(true);
  });
});

describe('anything else is refused, naming the option and the source', () => {
  const where: Record<Source, RegExp> = {
    'command line': /on the command line\)$/,
    environment: /from BERKELEY_AGENT_NEVER_MASTER\)$/,
    'config file': /in the config file \/etc\/x\.json\)$/,
  };
  for (const source of SOURCES) {
    it(`from the ${source}`, () => {
      for (const value of [...REFUSED, '']) {
        const message = refusal(() => resolveFrom(source, 'never-master', value));
        expect(message, JSON.stringify(value)).toMatch(/^--never-master: must be 1\/0, true\/false, yes\/no or on\/off \(got /);
        expect(message).toContain(JSON.stringify(value));
        expect(message).toMatch(where[source]);
        expect(message).not.toContain('\n');
      }
    });
  }

  it('a config file value of another JSON type', () => {
    for (const value of [2, null, [true], { on: true }]) {
      expect(refusal(() => resolveFrom('config file', 'mdns', value))).toMatch(/^--mdns: must be .* in the config file/);
    }
  });
});

// Real processes: one per source and polarity sets four booleans at once, and `config --json` shows
// what `run` would use.
describe('berkeley-agent config shows the parsed booleans (real processes)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ba-booleans-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fields = { 'never-master': 'neverMaster', mdns: 'mdns', force: 'force', 'kernel-timestamps': 'kernelTimestamps' } as const;
  const sets: Array<{ expected: boolean; spellings: string[] }> = [
    { expected: true, spellings: ['1', 'YES', 'On', 'true'] },
    { expected: false, spellings: ['0', 'no', 'OFF', 'False'] },
  ];

  function invocation(source: Source, values: Record<string, string>, name: string): { args: string[]; env: Record<string, string> } {
    if (source === 'command line') return { args: ['config', '--json', ...Object.entries(values).map(([option, value]) => `--${option}=${value}`)], env: {} };
    if (source === 'environment') return { args: ['config', '--json'], env: Object.fromEntries(Object.entries(values).map(([option, value]) => [envName(option), value])) };
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(values));
    return { args: ['config', '--json', '--config', file], env: {} };
  }

  for (const source of SOURCES) {
    for (const { expected, spellings } of sets) {
      it(`from the ${source}: ${spellings.join(', ')} are all ${expected}`, async () => {
        const values = Object.fromEntries(Object.keys(fields).map((option, index) => [option, spellings[index] as string]));
        const { args, env } = invocation(source, values, `${source.replace(' ', '-')}-${expected}`);
        const result = await runCli(args, { env });
        expect(result.code, describeResult(result)).toBe(0);
        const printed = JSON.parse(result.stdout) as { effective: Record<string, unknown>; options: Record<string, { value: unknown; source: string }> };
        for (const [option, field] of Object.entries(fields)) {
          expect(printed.effective[field], `${option}=${values[option]}`).toBe(expected);
          expect(printed.options[option]?.value, `${option} as shown`).toBe(expected);
          expect(printed.options[option]?.source).toBe(source);
        }
      });
    }

    it(`from the ${source}: "maybe" is refused with one line naming the option and the source, exit 2`, async () => {
      const { args, env } = invocation(source, { 'never-master': 'maybe' }, `${source.replace(' ', '-')}-refused`);
      const result = await runCli(args, { env });
      expect(result.code, describeResult(result)).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      const where = source === 'command line' ? 'on the command line' : source === 'environment' ? 'from BERKELEY_AGENT_NEVER_MASTER' : 'in the config file ';
      expect(result.stderr).toMatch(/^berkeley-agent: --never-master: must be 1\/0, true\/false, yes\/no or on\/off \(got "maybe" /);
      expect(result.stderr).toContain(where);
    });
  }
});
