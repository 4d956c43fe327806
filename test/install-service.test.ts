// install-service writes a unit that can start: ExecStart is the real path of the binary (symlinks
// resolved), never a path the unit's sandbox hides (ProtectHome=yes hides npx's cache in a home
// directory, PrivateTmp=yes a checkout under /tmp); node is found on systemd's PATH or named
// explicitly; the interface exists; /proc and /sys are refused as unit directories (Node's
// recursive mkdir used to spin there forever).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/daemon/config.ts';
import { planInstall, type InstallOptions } from '../src/cli/install-service.ts';
import { BIN, describeResult, runCli } from '../lab/processes.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'berkeley-install-svc-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// allowHiddenPath: this checkout may itself lie where the unit's sandbox hides it (CI may clone it
// under /tmp); the refusal tests below turn it off.
const base: InstallOptions = { binPath: BIN, interfaceName: null, unitDir: path.join(scratch, 'units'), envFile: path.join(scratch, 'env'), dryRun: true, systemdPath: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', allowHiddenPath: true };

function refusal(options: Partial<InstallOptions>): string {
  try {
    planInstall({ ...base, ...options });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('planInstall accepted it');
}

describe('install-service', () => {
  it('resolves symlinks: ExecStart is the real binary', () => {
    const link = path.join(scratch, 'berkeley-agent-link');
    symlinkSync(BIN, link);
    const plan = planInstall({ ...base, binPath: link, systemdPath: path.dirname(process.execPath) });
    expect(plan.execStart).toBe(BIN);
    expect(plan.unitText).toContain(`ExecStart=${BIN} run --log-format json`);
  });

  it('refuses a binary the sandbox hides: a home directory (npx cache), /root, /run/user, /tmp, /var/tmp', () => {
    for (const [binPath, setting] of [
      ['/home/ada/.npm/_npx/1234/node_modules/.bin/berkeley-agent', 'ProtectHome=yes'],
      ['/root/lab/bin/berkeley-agent', 'ProtectHome=yes'],
      ['/run/user/1000/berkeley-agent', 'ProtectHome=yes'],
      ['/tmp/checkout/bin/berkeley-agent', 'PrivateTmp=yes'],
      ['/var/tmp/checkout/bin/berkeley-agent', 'PrivateTmp=yes'],
    ] as const) {
      const message = refusal({ binPath, allowHiddenPath: false });
      expect(message).toContain(binPath);
      expect(message).toContain(setting);
      expect(message).toMatch(/sudo npm install -g/);
    }
    // A real file under /tmp (this scratch directory) is refused too, after resolving it.
    const copy = path.join(scratch, 'bin', 'berkeley-agent');
    mkdirSync(path.dirname(copy), { recursive: true });
    writeFileSync(copy, '#!/usr/bin/env -S node --optimize-for-size\n');
    if (scratch.startsWith('/tmp/')) expect(refusal({ binPath: copy, allowHiddenPath: false })).toMatch(/PrivateTmp=yes/);
    // --force writes it anyway (the operator relaxes the sandbox with a drop-in).
    expect(planInstall({ ...base, binPath: copy, allowHiddenPath: true, systemdPath: path.dirname(process.execPath) }).execStart).toBe(copy);
  });

  it('names node explicitly (with the shebang flags) when systemd PATH has none; refuses a node the sandbox hides', () => {
    const empty = path.join(scratch, 'empty-path');
    mkdirSync(empty, { recursive: true });
    const plan = planInstall({ ...base, systemdPath: empty, nodePath: '/usr/bin/node' });
    expect(plan.execStart).toBe(`/usr/bin/node --max-semi-space-size=1 --optimize-for-size ${BIN}`);
    expect(plan.unitText).toMatch(new RegExp(`^ExecStart=/usr/bin/node --max-semi-space-size=1 --optimize-for-size ${BIN} run --log-format json$`, 'm'));
    expect(refusal({ systemdPath: empty, nodePath: '/home/ada/.nvm/versions/node/v20.19.0/bin/node' })).toMatch(/systemd's PATH .* has no node, and this node .*\/home/);
    // With node on the PATH, the shebang finds it: ExecStart is the binary alone.
    const withNode = path.join(scratch, 'with-node');
    mkdirSync(withNode, { recursive: true });
    writeFileSync(path.join(withNode, 'node'), '#!/bin/sh\n');
    chmodSync(path.join(withNode, 'node'), 0o755);
    expect(planInstall({ ...base, systemdPath: withNode }).execStart).toBe(BIN);
  });

  it('checks that the interface exists, unless told not to (units for another machine)', () => {
    expect(refusal({ interfaceName: 'nosuch0' })).toMatch(/--interface: nosuch0 does not exist on this machine \(it has .*lo/);
    expect(planInstall({ ...base, interfaceName: 'nosuch0', checkInterface: false }).envText).toMatch(/^BERKELEY_AGENT_INTERFACE=nosuch0$/m);
    expect(planInstall({ ...base, interfaceName: 'lo' }).envText).toMatch(/^BERKELEY_AGENT_INTERFACE=lo$/m);
  });

  it('refuses pseudo file systems for the unit and the environment file', () => {
    expect(refusal({ unitDir: '/proc/x' })).toMatch(/^--unit-dir: \/proc\/x is under \/proc/);
    expect(refusal({ envFile: '/sys/x/env' })).toMatch(/^--environment-file: \/sys\/x is under \/sys/);
  });

  it('the command: /proc/x as --unit-dir (it used to hang) and a missing interface are one line, exit 2', async () => {
    for (const args of [
      ['install-service', '--unit-dir', '/proc/x', '--environment-file', path.join(scratch, 'env')],
      ['install-service', '--dry-run', '--interface', 'nosuch0'],
      ['install-service', '--interface', 'nosuch0', '--skip-interface-check', '--unit-dir', path.join(scratch, 'u'), '--environment-file', path.join(scratch, 'env')],
    ]) {
      const result = await runCli(args, { timeoutMs: 20_000 });
      expect(result.timedOut, describeResult(result)).toBe(false);
      expect(result.code, describeResult(result)).toBe(2);
      expect(result.stderr).toMatch(/^berkeley-agent: (--unit-dir: \/proc\/x is under \/proc|--interface: nosuch0 does not exist|--skip-interface-check: only with --dry-run)/);
    }
    // --force: this checkout may itself lie where the sandbox hides it (CI clones under /tmp).
    const dry = await runCli(['install-service', '--force', '--dry-run', '--interface', 'nosuch0', '--skip-interface-check'], { timeoutMs: 20_000 });
    expect(dry.code, describeResult(dry)).toBe(0);
    expect(dry.stdout).toMatch(/^BERKELEY_AGENT_INTERFACE=nosuch0$/m);
  }, 60_000);
});
