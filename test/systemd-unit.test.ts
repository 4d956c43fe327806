// The systemd unit: systemd-analyze verify accepts it (with ExecStart pointed at this checkout's
// bin, since /usr/local/bin/berkeley-agent is where `npm install -g` puts it on a real box), and
// it asks for what the agent needs: Type=notify, the state directory, CAP_SYS_TIME and nothing more.
import { spawnSync } from 'node:child_process';
import { commandRuns } from './support/commands.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const UNIT = fileURLToPath(new URL('../systemd/berkeley-agent.service', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/berkeley-agent', import.meta.url));
const text = readFileSync(UNIT, 'utf8');

const analyze = commandRuns('systemd-analyze', ['--version']);
if (!analyze) console.warn('SKIPPED systemd-analyze verify: systemd-analyze is not installed');

describe('systemd/berkeley-agent.service', () => {
  it.runIf(analyze)('passes systemd-analyze verify', () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'berkeley-unit-'));
    try {
      const unit = path.join(directory, 'berkeley-agent.service');
      expect(text).toMatch(/^ExecStart=\/usr\/local\/bin\/berkeley-agent run /m);
      writeFileSync(unit, text.replace('ExecStart=/usr/local/bin/berkeley-agent', `ExecStart=${BIN}`));
      const result = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      // Warnings (unknown keys, bad values) go to stderr with exit 0: there must be none.
      expect(result.stderr.trim(), result.stderr).toBe('');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it.runIf(analyze)('systemd-analyze security rates its exposure at most 2.5 (the README gives the figure)', () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'berkeley-unit-'));
    try {
      const unit = path.join(directory, 'berkeley-agent.service');
      writeFileSync(unit, text.replace('ExecStart=/usr/local/bin/berkeley-agent', `ExecStart=${BIN}`));
      const result = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', unit], { encoding: 'utf8' });
      const exposure = /Overall exposure level for berkeley-agent\.service: ([\d.]+)/.exec(result.stdout);
      expect(exposure, result.stdout + result.stderr).not.toBeNull();
      expect(Number(exposure![1])).toBeLessThanOrEqual(2.5);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('asks for what the agent needs and no more', () => {
    const settings = new Map<string, string>();
    for (const line of text.split('\n')) {
      const match = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (match) settings.set(match[1] as string, match[2] as string);
    }
    expect(settings.get('Type')).toBe('notify');
    expect(settings.get('NotifyAccess')).toBe('main');
    expect(settings.get('Restart')).toBe('on-failure');
    expect(settings.get('EnvironmentFile')).toBe('-/etc/default/berkeley-agent');
    expect(settings.get('StateDirectory')).toBe('berkeley-agent');
    // CAP_SYS_TIME disciplines the clock; CAP_NET_BIND_SERVICE binds UDP 123 for the NTP server.
    expect(settings.get('CapabilityBoundingSet')).toBe('CAP_SYS_TIME CAP_NET_BIND_SERVICE');
    expect(settings.get('AmbientCapabilities')).toBe('CAP_SYS_TIME CAP_NET_BIND_SERVICE');
    // Like chrony's unit: units ordered After=time-sync.target wait for us.
    expect(text).toMatch(/^Wants=time-sync\.target$/m);
    expect(text).toMatch(/^Before=time-sync\.target$/m);
    // A bad configuration exits 2: not restarted forever.
    expect(settings.get('RestartPreventExitStatus')).toBe('2');
    // Hardening that leaves the agent what it needs (adjtimex through @clock, sockets, notify).
    expect(settings.get('SystemCallFilter')).toBe('@system-service @clock');
    expect(settings.get('UMask')).toBe('0077');
    for (const key of ['ProtectKernelLogs', 'ProtectHostname', 'RestrictRealtime', 'RestrictSUIDSGID', 'PrivateMounts']) expect(settings.get(key), key).toBe('yes');
    expect(settings.get('NoNewPrivileges')).toBe('yes');
    expect(settings.get('ProtectSystem')).toBe('strict');
    expect(settings.get('PrivateTmp')).toBe('yes');
    // AF_UNIX for sd_notify, AF_INET for the protocol and mDNS, AF_NETLINK for interface lookup.
    expect(settings.get('RestrictAddressFamilies')?.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
    // ProtectClock= would forbid the adjtimex writes the agent exists to make.
    expect(settings.has('ProtectClock')).toBe(false);
  });
});
