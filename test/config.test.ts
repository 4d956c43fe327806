// Unit tests of the run configuration: buildRunConfig, parseHostPort and parseHttp. Raw values
// arrive as yargs hands them over: numbers from the command line, strings from the environment
// (BERKELEY_AGENT_*) or a config file. Every error is a ConfigError whose message starts with the
// option's name, which is what the CLI prints before exiting 2.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { buildRunConfig, ConfigError, parseBoolean, parseDecimal, parseHostPort, parseHttp, type RawRunOptions, type RunConfig } from '../src/daemon/config.ts';
import {
  CLUSTER_BYTES_MAX,
  CORRECTION_NS_MAX,
  DISCOVERY_WINDOW_MS_DEFAULT,
  HTTP_PORT_DEFAULT,
  NODE_ID_BYTES_MAX,
  OUTLIER_THRESHOLD_MS_DEFAULT,
  PEERS_MAX_DEFAULT,
  POLL_INTERVAL_MS_DEFAULT,
  PRIORITY_DEFAULT,
  PRIORITY_MAX,
  SLEW_PPM_MAX_DEFAULT,
  STATIC_ENDPOINTS_MAX,
  STEP_THRESHOLD_NS_DEFAULT,
  UDP_PORT_DEFAULT,
  UPSTREAM_POLL_INTERVAL_MS_DEFAULT,
  UPSTREAMS_MAX,
} from '../src/core/limits.ts';

/** Runs fn, which must throw a ConfigError whose message starts with `--option:`. Returns the message. */
function configError(fn: () => unknown, option: string): string {
  let thrown: unknown = null;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected a ConfigError for --${option}`).toBeInstanceOf(ConfigError);
  const message = (thrown as ConfigError).message;
  expect(message.startsWith(`--${option}: `), message).toBe(true);
  expect((thrown as ConfigError).code).toBe('ECONFIG');
  // One line: the CLI prints it as is.
  expect(message).not.toContain('\n');
  return message;
}

function rejects(raw: RawRunOptions, option: string): string {
  return configError(() => buildRunConfig(raw), option);
}

function build(raw: RawRunOptions): RunConfig {
  return buildRunConfig(raw);
}

describe('buildRunConfig defaults', () => {
  const config = build({});

  it('uses the documented defaults when nothing is given', () => {
    expect(config.port).toBe(UDP_PORT_DEFAULT);
    expect(config.port).toBe(7412);
    expect(config.cluster).toBe('default');
    expect(config.priority).toBe(PRIORITY_DEFAULT);
    expect(config.interfaceName).toBeNull();
    expect(config.bindAddress).toBeNull();
    expect(config.peers).toEqual([]);
    expect(config.mdns).toBe(true);
    expect(config.pollIntervalMs).toBe(POLL_INTERVAL_MS_DEFAULT);
    expect(config.masterTimeoutMs).toBe(3 * POLL_INTERVAL_MS_DEFAULT);
    expect(config.discoveryWindowMs).toBe(DISCOVERY_WINDOW_MS_DEFAULT);
    expect(config.outlierThresholdNs).toBeCloseTo(OUTLIER_THRESHOLD_MS_DEFAULT * 1e6, 0);
    expect(config.clock).toBe('auto');
    expect(config.virtualOffsetNs).toBe(0);
    expect(config.virtualDriftPpm).toBe(0);
    expect(config.stepThresholdNs).toBeCloseTo(STEP_THRESHOLD_NS_DEFAULT, 0);
    expect(config.slewPpmMax).toBe(SLEW_PPM_MAX_DEFAULT);
    expect(config.peersMax).toBe(PEERS_MAX_DEFAULT);
    expect(config.http).toEqual({ host: '127.0.0.1', port: HTTP_PORT_DEFAULT });
    expect(config.http).toEqual({ host: '127.0.0.1', port: 7413 });
    expect(config.logLevel).toBe('info');
    expect(config.logFormat).toBe('auto');
  });

  it('defaults the node id to the host name on the default port, host-port otherwise', () => {
    const host = os.hostname().replace(/[^\x21-\x7e]/g, '-').slice(0, NODE_ID_BYTES_MAX - 8) || 'node';
    expect(config.nodeId).toBe(host);
    expect(build({ port: 7500 }).nodeId).toBe(`${host}-7500`);
    expect(build({ port: 0 }).nodeId).toBe(`${host}-${process.pid}`);
    expect(build({ port: 7500, 'node-id': 'explicit' }).nodeId).toBe('explicit');
  });

  it('takes the default only for an option not given (undefined); an empty value is refused', () => {
    const unset = build({ port: undefined, 'poll-interval': undefined });
    expect(unset.port).toBe(UDP_PORT_DEFAULT);
    expect(unset.pollIntervalMs).toBe(POLL_INTERVAL_MS_DEFAULT);
    expect(build({}).priority).toBe(PRIORITY_DEFAULT);
    for (const option of ['port', 'priority', 'poll-interval', 'virtual-offset', 'max-peers']) {
      for (const value of ['', '   ', null]) expect(rejects({ [option]: value }, option), `${option}=${JSON.stringify(value)}`).toMatch(/must not be empty/);
    }
    expect(configError(() => parseHttp(''), 'http')).toMatch(/must not be empty/);
  });
});

describe('numbers as text: plain decimals', () => {
  it('reads an optional sign, digits and an optional fraction, blanks around ignored', () => {
    expect(parseDecimal('42')).toBe(42);
    expect(parseDecimal('+42')).toBe(42);
    expect(parseDecimal('-0.5')).toBe(-0.5);
    expect(parseDecimal('.25')).toBe(0.25);
    expect(parseDecimal('7.')).toBe(7);
    expect(parseDecimal(' 0080 ')).toBe(80);
    expect(parseDecimal(12.5)).toBe(12.5);
  });

  it('refuses every other form', () => {
    for (const text of ['', ' ', '0x1f', '0X1F', '0o17', '0b101', '1e3', '1E-3', 'Infinity', 'NaN', '1_000', '1,5', '1.2.3', '--1', '+', '.', '12abc', '٣']) {
      expect(parseDecimal(text), JSON.stringify(text)).toBeNaN();
    }
    expect(parseDecimal(true)).toBeNaN();
    expect(parseDecimal(null)).toBeNaN();
  });

  it('--port 0x1f is refused, not port 31', () => {
    expect(rejects({ port: '0x1f' }, 'port')).toBe('--port: must be a plain decimal number (got "0x1f")');
    expect(build({ port: '31' }).port).toBe(31);
  });
});

describe('booleans: 1/0, true/false, yes/no, on/off in any case', () => {
  const spellings: Array<[unknown, boolean]> = [
    ['1', true], ['true', true], ['yes', true], ['on', true], ['TRUE', true], ['Yes', true], ['ON', true], [' on ', true], [true, true], [1, true],
    ['0', false], ['false', false], ['no', false], ['off', false], ['FALSE', false], ['No', false], ['Off', false], [false, false], [0, false],
  ];
  it('reads every spelling for every boolean option', () => {
    const fields = { 'never-master': 'neverMaster', mdns: 'mdns', force: 'force', 'kernel-timestamps': 'kernelTimestamps' } as const;
    for (const [option, field] of Object.entries(fields)) {
      for (const [value, expected] of spellings) expect(build({ [option]: value })[field], `${option}=${JSON.stringify(value)}`).toBe(expected);
    }
  });

  it('refuses anything else, naming the option', () => {
    for (const value of ['maybe', '', 'y', 'n', '2', 'enable', 'truee', 2, -1, null, 'nein']) {
      expect(rejects({ 'never-master': value }, 'never-master'), JSON.stringify(value)).toMatch(/^--never-master: must be 1\/0, true\/false, yes\/no or on\/off \(got .*\)$/);
      expect(parseBoolean(value)).toBeNull();
    }
  });
});

describe('buildRunConfig numeric options', () => {
  it('accepts numbers and numeric strings and converts seconds to the internal units', () => {
    const config = build({
      port: '7500',
      priority: 250,
      'poll-interval': '0.5',
      'master-timeout': 2,
      'discovery-window': '1',
      'outlier-threshold': 0.005,
      'virtual-offset': '-1.5',
      'virtual-drift': '42.5',
      'step-threshold': 0.25,
      'max-slew-ppm': '1000',
      'max-peers': '64',
    });
    expect(config.port).toBe(7500);
    expect(config.priority).toBe(250);
    expect(config.pollIntervalMs).toBe(500);
    expect(config.masterTimeoutMs).toBe(2000);
    expect(config.discoveryWindowMs).toBe(1000);
    expect(config.outlierThresholdNs).toBeCloseTo(5e6, 0);
    expect(config.virtualOffsetNs).toBe(-1.5e9);
    expect(config.virtualDriftPpm).toBe(42.5);
    expect(config.stepThresholdNs).toBeCloseTo(2.5e8, 0);
    expect(config.slewPpmMax).toBe(1000);
    expect(config.peersMax).toBe(64);
  });

  it('derives the master timeout from the poll interval (3 intervals) unless given', () => {
    expect(build({ 'poll-interval': 0.5 }).masterTimeoutMs).toBe(1500);
    expect(build({ 'poll-interval': 2 }).masterTimeoutMs).toBe(6000);
    expect(build({ 'poll-interval': 2, 'master-timeout': 10 }).masterTimeoutMs).toBe(10_000);
  });

  // Every numeric option: values that are not numbers, out of range, or (for whole-number options)
  // fractional. Each must be refused with a message naming the option.
  const cases: Array<{ option: string; valid: unknown[]; invalid: unknown[]; fractionRefused: boolean }> = [
    { option: 'port', valid: [0, 1, '65535'], invalid: [-1, 65536, 70000], fractionRefused: true },
    { option: 'priority', valid: [0, PRIORITY_MAX, '7'], invalid: [-1, PRIORITY_MAX + 1], fractionRefused: true },
    { option: 'max-peers', valid: [1, 65_536], invalid: [0, 65_537], fractionRefused: true },
    { option: 'poll-interval', valid: [0.1, 3600, '2.5'], invalid: [0, 0.05, -1, 3601], fractionRefused: false },
    { option: 'discovery-window', valid: [0, 600, '0.25'], invalid: [-0.1, 601], fractionRefused: false },
    { option: 'outlier-threshold', valid: [0.001, 3600], invalid: [0, -1, 3601], fractionRefused: false },
    { option: 'virtual-drift', valid: [-250, 250, '12.5'], invalid: [-251, 251, 1000], fractionRefused: false },
    { option: 'step-threshold', valid: [0, 1e6], invalid: [-0.001, 1e6 + 1], fractionRefused: false },
    { option: 'max-slew-ppm', valid: [1, 100_000], invalid: [0, 0.5, 100_001], fractionRefused: false },
    // Up to any difference of two timestamps (CORRECTION_NS_MAX, ~292 years).
    { option: 'max-correction', valid: [0, 31_536_000, '3600', 1_767_225_600, CORRECTION_NS_MAX / 1e9], invalid: [-1, (CORRECTION_NS_MAX / 1e9) * 1.01], fractionRefused: false },
    { option: 'probes', valid: [1, 32, '16'], invalid: [0, 33], fractionRefused: true },
  ];
  // Text must be a plain decimal: no hexadecimal, octal, binary, exponent or Infinity.
  const notNumbers: unknown[] = ['abc', '12abc', '0x1f', '0o7', '0b1', '1e3', '1_000', '1,5', '--1', 'Infinity', '-Infinity', Number.NaN, Number.POSITIVE_INFINITY, true, { value: 1 }];

  for (const { option, valid, invalid, fractionRefused } of cases) {
    describe(`--${option}`, () => {
      it('accepts values at the edges of its range', () => {
        for (const value of valid) {
          // The master timeout must exceed the poll interval; give it room when testing the latter.
          const extra: RawRunOptions = option === 'poll-interval' ? { 'master-timeout': 36_000 } : {};
          expect(() => build({ [option]: value, ...extra }), `${option}=${String(value)}`).not.toThrow();
        }
      });

      it('refuses values that are not numbers', () => {
        for (const value of notNumbers) expect(rejects({ [option]: value }, option), String(value)).toMatch(/must be a plain decimal number/);
      });

      it('refuses values out of range', () => {
        for (const value of invalid) expect(rejects({ [option]: value }, option)).toMatch(/must be (at least|at most|greater than)/);
      });

      if (fractionRefused) {
        it('refuses fractions', () => {
          expect(rejects({ [option]: 1.5 }, option)).toMatch(/whole number/);
          expect(rejects({ [option]: '2.25' }, option)).toMatch(/whole number/);
        });
      } else {
        it('accepts fractions', () => {
          // 1.25 lies inside every fractional option's range.
          expect(() => build({ [option]: 1.25, 'master-timeout': 36_000 })).not.toThrow();
          expect(() => build({ [option]: '1.25', 'master-timeout': 36_000 })).not.toThrow();
        });
      }

      it('refuses being given more than once', () => {
        expect(rejects({ [option]: [valid[0], valid[1]] }, option)).toMatch(/more than once/);
      });
    });
  }

  it('--max-correction: 600 s by default, 0 turns the panic threshold off; --force is off by default', () => {
    expect(build({}).correctionNsMax).toBe(600e9);
    expect(build({ 'max-correction': 0 }).correctionNsMax).toBe(Number.POSITIVE_INFINITY);
    expect(build({ 'max-correction': '2.5' }).correctionNsMax).toBe(2.5e9);
    expect(build({}).force).toBe(false);
    expect(build({ force: true }).force).toBe(true);
  });

  it('--probes and --probe-spacing: defaults 16 and 2 ms, spacing within 0..0.1 s', () => {
    expect(build({}).probesPerRound).toBe(16);
    expect(build({}).probeSpacingMs).toBe(2);
    expect(build({ 'probe-spacing': '0.0005' }).probeSpacingMs).toBeCloseTo(0.5, 9);
    expect(build({ 'probe-spacing': 0 }).probeSpacingMs).toBe(0);
    expect(rejects({ 'probe-spacing': 0.2 }, 'probe-spacing')).toMatch(/at most/);
    expect(rejects({ 'probe-spacing': -0.001 }, 'probe-spacing')).toMatch(/at least/);
    expect(rejects({ 'probe-spacing': 'soon' }, 'probe-spacing')).toMatch(/must be a plain decimal number/);
  });

  it('--min-probes: default 4, or --probes when that is lower; at most --probes', () => {
    expect(build({}).probesMin).toBe(4);
    expect(build({ probes: 2 }).probesMin).toBe(2);
    expect(build({ probes: 8, 'min-probes': 8 }).probesMin).toBe(8);
    expect(build({ 'min-probes': '1' }).probesMin).toBe(1);
    expect(rejects({ probes: 8, 'min-probes': 9 }, 'min-probes')).toMatch(/at most 8/);
    expect(rejects({ 'min-probes': 0 }, 'min-probes')).toMatch(/at least 1/);
    expect(rejects({ 'min-probes': 2.5 }, 'min-probes')).toMatch(/whole|integer/);
  });

  it('reports the value it got', () => {
    expect(rejects({ port: 70000 }, 'port')).toContain('70000');
    expect(rejects({ 'poll-interval': 'soon' }, 'poll-interval')).toContain('"soon"');
  });
});

describe('--master-timeout', () => {
  it('must be longer than --poll-interval', () => {
    expect(rejects({ 'poll-interval': 1, 'master-timeout': 1 }, 'master-timeout')).toMatch(/longer than --poll-interval/);
    expect(rejects({ 'poll-interval': 2, 'master-timeout': 1.5 }, 'master-timeout')).toMatch(/longer than --poll-interval/);
    expect(build({ 'poll-interval': 1, 'master-timeout': 1.001 }).masterTimeoutMs).toBeCloseTo(1001, 6);
  });

  it('must be a positive number', () => {
    expect(rejects({ 'master-timeout': 0 }, 'master-timeout')).toMatch(/greater than 0/);
    expect(rejects({ 'master-timeout': -3 }, 'master-timeout')).toMatch(/greater than 0/);
    expect(rejects({ 'master-timeout': 'later' }, 'master-timeout')).toMatch(/must be a plain decimal number/);
    expect(rejects({ 'master-timeout': 36_001 }, 'master-timeout')).toMatch(/at most/);
  });
});

describe('--peer', () => {
  it('is repeatable', () => {
    expect(build({ peer: ['10.0.0.1:7412', 'node-b.local:7500'] }).peers).toEqual([
      { host: '10.0.0.1', port: 7412 },
      { host: 'node-b.local', port: 7500 },
    ]);
  });

  it('accepts a single string', () => {
    expect(build({ peer: '127.0.0.1:9000' }).peers).toEqual([{ host: '127.0.0.1', port: 9000 }]);
  });

  it('splits comma- and space-separated lists (as from the environment)', () => {
    expect(build({ peer: '10.0.0.1:1, 10.0.0.2:2 10.0.0.3:3,,10.0.0.4:4' }).peers).toEqual([
      { host: '10.0.0.1', port: 1 },
      { host: '10.0.0.2', port: 2 },
      { host: '10.0.0.3', port: 3 },
      { host: '10.0.0.4', port: 4 },
    ]);
    expect(build({ peer: ['a:1', 'b:2,c:3'] }).peers.map((peer) => peer.host)).toEqual(['a', 'b', 'c']);
    expect(build({ peer: '' }).peers).toEqual([]);
    expect(build({ peer: [] }).peers).toEqual([]);
  });

  it('refuses a missing port, a bad host, port 0 and ports above 65535', () => {
    expect(rejects({ peer: 'nohost' }, 'peer')).toMatch(/HOST:PORT/);
    expect(rejects({ peer: '10.0.0.1' }, 'peer')).toMatch(/HOST:PORT/);
    expect(rejects({ peer: '10.0.0.1:' }, 'peer')).toMatch(/HOST:PORT/);
    expect(rejects({ peer: ':7412' }, 'peer')).toMatch(/HOST:PORT/);
    expect(rejects({ peer: '10.0.0.1:abc' }, 'peer')).toMatch(/HOST:PORT/);
    expect(rejects({ peer: 'bad_host:7412' }, 'peer')).toMatch(/host must be/);
    expect(rejects({ peer: '-bad:7412' }, 'peer')).toMatch(/host must be/);
    expect(rejects({ peer: 'bad..host:7412' }, 'peer')).toMatch(/host must be/);
    expect(rejects({ peer: '[::1]:7412' }, 'peer')).toMatch(/HOST:PORT/);
    expect(rejects({ peer: '10.0.0.1:0' }, 'peer')).toMatch(/port must be 1\.\.65535/);
    expect(rejects({ peer: '10.0.0.1:65536' }, 'peer')).toMatch(/port must be 1\.\.65535/);
    // One bad entry in a list spoils it, and the message shows which.
    expect(rejects({ peer: ['10.0.0.1:1', '10.0.0.2:2,oops'] }, 'peer')).toContain('"oops"');
  });

  it(`accepts at most ${STATIC_ENDPOINTS_MAX} static peers`, () => {
    const peers = (count: number) => Array.from({ length: count }, (_, index) => `10.0.${index >> 8}.${index & 255}:7412`);
    expect(build({ peer: peers(STATIC_ENDPOINTS_MAX) }).peers).toHaveLength(STATIC_ENDPOINTS_MAX);
    expect(rejects({ peer: peers(STATIC_ENDPOINTS_MAX + 1) }, 'peer')).toMatch(/at most/);
  });
});

describe('--upstream and --upstream-poll', () => {
  it('are off by default: no servers, the default poll interval', () => {
    const config = build({});
    expect(config.upstreams).toEqual([]);
    expect(config.upstreamPollIntervalMs).toBe(UPSTREAM_POLL_INTERVAL_MS_DEFAULT);
  });

  it('is repeatable, port 123 unless given, and splits lists as from the environment', () => {
    expect(build({ upstream: ['192.0.2.1', 'ntp.example.org:1123'] }).upstreams).toEqual([
      { host: '192.0.2.1', port: 123 },
      { host: 'ntp.example.org', port: 1123 },
    ]);
    expect(build({ upstream: '192.0.2.1, 192.0.2.2:124 192.0.2.3' }).upstreams.map((server) => `${server.host}:${server.port}`)).toEqual(['192.0.2.1:123', '192.0.2.2:124', '192.0.2.3:123']);
    expect(build({ upstream: '' }).upstreams).toEqual([]);
  });

  it('refuses bad servers, duplicates, non-text and too many, naming the option and the value', () => {
    expect(rejects({ upstream: '[2001:db8::1]:123' }, 'upstream')).toMatch(/IPv6 upstreams are not supported.*\(got "\[2001:db8::1\]:123"\)$/);
    expect(rejects({ upstream: '192.0.2.1:0' }, 'upstream')).toMatch(/the port must be 1\.\.65535/);
    expect(rejects({ upstream: 'bad_host' }, 'upstream')).toMatch(/host must be an IPv4 address or a host name/);
    expect(rejects({ upstream: '300.1.1.1' }, 'upstream')).toMatch(/not a valid IPv4 address/);
    expect(rejects({ upstream: ['192.0.2.1', 'ok.example', '192.0.2.1:123'] }, 'upstream')).toMatch(/same server twice.*"192\.0\.2\.1:123"/);
    expect(rejects({ upstream: [5] }, 'upstream')).toMatch(/must be HOST\[:PORT\] text \(got 5\)/);
    const servers = (count: number) => Array.from({ length: count }, (_, index) => `192.0.2.${index + 1}`);
    expect(build({ upstream: servers(UPSTREAMS_MAX) }).upstreams).toHaveLength(UPSTREAMS_MAX);
    expect(rejects({ upstream: servers(UPSTREAMS_MAX + 1).join(',') }, 'upstream')).toMatch(new RegExp(`at most ${UPSTREAMS_MAX} servers`));
  });

  it('--upstream-poll is in seconds, within the client\'s bounds', () => {
    expect(build({ 'upstream-poll': '64' }).upstreamPollIntervalMs).toBe(64_000);
    expect(build({ 'upstream-poll': 1 }).upstreamPollIntervalMs).toBe(1_000);
    expect(build({ 'upstream-poll': 1024 }).upstreamPollIntervalMs).toBe(1_024_000);
    expect(rejects({ 'upstream-poll': 0.5 }, 'upstream-poll')).toMatch(/at least 1/);
    expect(rejects({ 'upstream-poll': 1025 }, 'upstream-poll')).toMatch(/at most 1024/);
    expect(rejects({ 'upstream-poll': 'often' }, 'upstream-poll')).toMatch(/plain decimal/);
  });
});

describe('parseHostPort', () => {
  it('parses IPv4 addresses and host names, trimming blanks', () => {
    expect(parseHostPort('192.0.2.1:80', 'peer', { allowPortZero: false })).toEqual({ host: '192.0.2.1', port: 80 });
    expect(parseHostPort(' host-1.example.org:65535 ', 'peer', { allowPortZero: false })).toEqual({ host: 'host-1.example.org', port: 65535 });
  });

  it('allows port 0 only when asked to', () => {
    expect(parseHostPort('127.0.0.1:0', 'http', { allowPortZero: true })).toEqual({ host: '127.0.0.1', port: 0 });
    expect(configError(() => parseHostPort('127.0.0.1:0', 'peer', { allowPortZero: false }), 'peer')).toMatch(/1\.\.65535/);
  });

  it('names the option it was given', () => {
    expect(configError(() => parseHostPort('nope', 'target', { allowPortZero: false }), 'target')).toMatch(/HOST:PORT/);
    expect(configError(() => parseHostPort('x:123456', 'http', { allowPortZero: true }), 'http')).toMatch(/HOST:PORT/);
    expect(configError(() => parseHostPort('a b:1', 'peer', { allowPortZero: true }), 'peer')).toMatch(/HOST:PORT/);
  });
});

describe('--http', () => {
  it('defaults to the loopback control port', () => {
    expect(parseHttp(undefined)).toEqual({ host: '127.0.0.1', port: 7413 });
  });

  it("'none' disables the control server", () => {
    expect(parseHttp('none')).toBeNull();
    expect(build({ http: 'none' }).http).toBeNull();
  });

  it('accepts HOST:PORT, port 0 included', () => {
    expect(parseHttp('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseHttp('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseHttp('localhost:9999')).toEqual({ host: 'localhost', port: 9999 });
    expect(build({ http: '127.0.0.1:0' }).http).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it('refuses anything else', () => {
    expect(configError(() => parseHttp('off'), 'http')).toMatch(/HOST:PORT/);
    expect(configError(() => parseHttp('None'), 'http')).toMatch(/HOST:PORT/);
    expect(configError(() => parseHttp('127.0.0.1'), 'http')).toMatch(/HOST:PORT/);
    expect(configError(() => parseHttp('127.0.0.1:70000'), 'http')).toMatch(/65535/);
    expect(configError(() => parseHttp('[::1]:7413'), 'http')).toMatch(/HOST:PORT/);
    expect(configError(() => parseHttp(7413), 'http')).toMatch(/HOST:PORT or none/);
    expect(configError(() => parseHttp(['127.0.0.1:1', 'none']), 'http')).toMatch(/given more than once/);
    expect(rejects({ http: 'nowhere' }, 'http')).toMatch(/HOST:PORT/);
  });
});

describe('--node-id and --cluster', () => {
  for (const [option, max] of [
    ['node-id', NODE_ID_BYTES_MAX],
    ['cluster', CLUSTER_BYTES_MAX],
  ] as const) {
    const field = option === 'node-id' ? 'nodeId' : 'cluster';

    it(`--${option} accepts printable ASCII without spaces, up to ${max} bytes`, () => {
      expect(build({ [option]: 'a' })[field]).toBe('a');
      expect(build({ [option]: 'Node_1.example:7412/x~!' })[field]).toBe('Node_1.example:7412/x~!');
      expect(build({ [option]: 'x'.repeat(max) })[field]).toBe('x'.repeat(max));
      // A number from a config file is taken as its text.
      expect(build({ [option]: 42 })[field]).toBe('42');
    });

    it(`--${option} refuses empty, too long, spaces, control and non-ASCII characters`, () => {
      expect(rejects({ [option]: '' }, option)).toMatch(/empty/);
      expect(rejects({ [option]: 'x'.repeat(max + 1) }, option)).toMatch(new RegExp(`at most ${max} bytes`));
      expect(rejects({ [option]: 'has space' }, option)).toMatch(/printable ASCII/);
      expect(rejects({ [option]: 'tab\there' }, option)).toMatch(/printable ASCII/);
      expect(rejects({ [option]: 'new\nline' }, option)).toMatch(/printable ASCII/);
      expect(rejects({ [option]: 'héllo' }, option)).toMatch(/printable ASCII/);
      expect(rejects({ [option]: '\u0000' }, option)).toMatch(/printable ASCII/);
      expect(rejects({ [option]: ['a', 'b'] }, option)).toMatch(/more than once/);
      expect(rejects({ [option]: true }, option)).toMatch(/text/);
    });
  }
});

describe('--clock', () => {
  it('accepts auto, system and virtual', () => {
    expect(build({ clock: 'auto' }).clock).toBe('auto');
    expect(build({ clock: 'system' }).clock).toBe('system');
    expect(build({ clock: 'virtual' }).clock).toBe('virtual');
  });

  it('refuses anything else', () => {
    expect(rejects({ clock: 'bogus' }, 'clock')).toMatch(/auto, system or virtual/);
    expect(rejects({ clock: 'AUTO' }, 'clock')).toMatch(/auto, system or virtual/);
    expect(rejects({ clock: '' }, 'clock')).toMatch(/auto, system or virtual/);
  });
});

describe('--log-level and --log-format', () => {
  it('accept the pino levels and the three formats', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) expect(build({ 'log-level': level }).logLevel).toBe(level);
    for (const format of ['auto', 'json', 'pretty']) expect(build({ 'log-format': format }).logFormat).toBe(format);
  });

  it('refuse anything else', () => {
    expect(rejects({ 'log-level': 'verbose' }, 'log-level')).toMatch(/must be one of/);
    expect(rejects({ 'log-level': 'INFO' }, 'log-level')).toMatch(/must be one of/);
    expect(rejects({ 'log-format': 'xml' }, 'log-format')).toMatch(/json, pretty or auto/);
  });
});

describe('--bind', () => {
  it('accepts an IPv4 address', () => {
    expect(build({ bind: '127.0.0.1' }).bindAddress).toBe('127.0.0.1');
    expect(build({ bind: '0.0.0.0' }).bindAddress).toBe('0.0.0.0');
  });

  it('refuses IPv6, host names and malformed addresses', () => {
    for (const value of ['::1', '::', 'localhost', '256.0.0.1', '10.0.0', '10.0.0.1:80', '']) {
      expect(rejects({ bind: value }, 'bind'), value).toMatch(/IPv4/);
    }
  });
});

describe('--mdns and --interface', () => {
  it('--mdns takes booleans and their spellings from the environment', () => {
    expect(build({ mdns: false }).mdns).toBe(false);
    expect(build({ mdns: 'false' }).mdns).toBe(false);
    expect(build({ mdns: '0' }).mdns).toBe(false);
    expect(build({ mdns: 'true' }).mdns).toBe(true);
    expect(build({ mdns: '1' }).mdns).toBe(true);
    expect(rejects({ mdns: 'maybe' }, 'mdns')).toMatch(/must be 1\/0, true\/false, yes\/no or on\/off/);
  });

  it('--interface takes a network interface name', () => {
    expect(build({ interface: 'eth0' }).interfaceName).toBe('eth0');
    expect(build({ interface: 'br-lan.10' }).interfaceName).toBe('br-lan.10');
    expect(rejects({ interface: 'eth 0' }, 'interface')).toMatch(/interface name/);
    expect(rejects({ interface: 'a'.repeat(16) }, 'interface')).toMatch(/interface name/);
    expect(rejects({ interface: '' }, 'interface')).toMatch(/interface name/);
  });
});

describe('--virtual-offset: any start from 1970-01-01 to the end of the 64-bit range (2262)', () => {
  // The host's time, fixed: 2026-01-01T00:00:00Z.
  const hostNowMs = 1_767_225_600_000;
  const hostNowS = hostNowMs / 1000;
  /** The last whole second a 64-bit ns timestamp holds, minus the host's time. */
  const maxS = 9_223_372_036 - hostNowS;

  it('accepts a box at the epoch (minus the host\'s epoch seconds), a little after it, and far ahead, from every source', () => {
    expect(buildRunConfig({ 'virtual-offset': -hostNowS }, hostNowMs).virtualOffsetNs).toBe(-hostNowS * 1e9);
    expect(buildRunConfig({ 'virtual-offset': String(-hostNowS + 5) }, hostNowMs).virtualOffsetNs).toBe((-hostNowS + 5) * 1e9);
    expect(buildRunConfig({ 'virtual-offset': '-0.5' }, hostNowMs).virtualOffsetNs).toBe(-0.5e9);
    expect(buildRunConfig({ 'virtual-offset': 40 * 365 * 86400 }, hostNowMs).virtualOffsetNs).toBe(40 * 365 * 86400 * 1e9);
    expect(buildRunConfig({ 'virtual-offset': maxS - 1 }, hostNowMs).virtualOffsetNs).toBe((maxS - 1) * 1e9);
    // The old bound (1e6 s) is no bound any more; the default is the host's time.
    expect(buildRunConfig({ 'virtual-offset': -1e6 - 1 }, hostNowMs).virtualOffsetNs).toBe((-1e6 - 1) * 1e9);
    expect(buildRunConfig({}, hostNowMs).virtualOffsetNs).toBe(0);
  });

  it('refuses a start before 1970 or past the 64-bit range with one line naming the option and the range', () => {
    for (const value of [-hostNowS - 1, -hostNowS - 0.001, '-1e10'.replace('e10', '0000000000'), maxS + 1, 1e12]) {
      const message = configError(() => buildRunConfig({ 'virtual-offset': value }, hostNowMs), 'virtual-offset');
      expect(message).toMatch(/must keep the virtual clock between 1970-01-01 and 2262-04-11T23:47:16Z \(from -1767225600 to 7456146436 seconds now\)/);
    }
  });

  it('refuses values that are not plain decimals', () => {
    for (const value of ['abc', '1e3', 'Infinity', Number.NaN, Number.NEGATIVE_INFINITY, '']) {
      configError(() => buildRunConfig({ 'virtual-offset': value }, hostNowMs), 'virtual-offset');
    }
  });
});
