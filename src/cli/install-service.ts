// `berkeley-agent install-service`: writes the systemd unit (ExecStart pointing at this installed
// binary) and the environment file the unit reads, or prints them with --dry-run. It does not run
// systemctl: the operator reloads and enables the service (the command says how).
import { accessSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, isInterfaceName } from '../daemon/config.ts';
import { pseudoFilesystemProblem } from '../daemon/paths.ts';

/** systemd's PATH for services (systemd.exec(5), "Environment variables in spawned processes"). */
export const SYSTEMD_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** What the unit's sandbox hides from the service: ProtectHome=yes and PrivateTmp=yes. */
export const SANDBOX_HIDDEN_DIRS = ['/home', '/root', '/run/user', '/tmp', '/var/tmp'];

export const UNIT_DIR_DEFAULT = '/etc/systemd/system';
export const ENV_FILE_DEFAULT = '/etc/default/berkeley-agent';
const UNIT_NAME = 'berkeley-agent.service';
const UNIT_TEMPLATE = fileURLToPath(new URL('../../systemd/berkeley-agent.service', import.meta.url));
/** The ExecStart path in the shipped unit, replaced by the real one. */
const TEMPLATE_BIN = '/usr/local/bin/berkeley-agent';

export interface InstallOptions {
  /** Absolute path of the berkeley-agent executable the unit should run (symlinks are resolved). */
  binPath: string;
  /** The node running this command (used in ExecStart when systemd's PATH has no node). */
  nodePath?: string;
  /** Check that --interface exists on this machine (skipping is allowed only with --dry-run). */
  checkInterface?: boolean;
  /** Where to look for `node` as systemd would (tests). */
  systemdPath?: string;
  /**
   * Write a unit whose ExecStart the unit's sandbox hides (--force): the operator relaxes the
   * sandbox with a drop-in, or the unit is for inspection (and the tests, whose checkout may be
   * anywhere).
   */
  allowHiddenPath?: boolean;
  interfaceName: string | null;
  unitDir: string;
  envFile: string;
  dryRun: boolean;
}

export interface InstallPlan {
  unitPath: string;
  unitText: string;
  envFile: string;
  envText: string;
  /** An existing environment file is kept (only --interface is set in it). */
  envFileExisted: boolean;
  /** The command the unit runs (this binary, resolved; with an explicit node when needed). */
  execStart: string;
}

/** The sandbox directory that hides `file` from the service, or null. */
export function hiddenBySandbox(file: string): string | null {
  return SANDBOX_HIDDEN_DIRS.find((dir) => file === dir || file.startsWith(`${dir}/`)) ?? null;
}

function realPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/** The first executable `node` on a PATH, as systemd would find it, or null. */
export function findOnPath(name: string, searchPath: string): string | null {
  for (const dir of searchPath.split(':')) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The node flags of the executable's `#!/usr/bin/env -S node FLAGS` line (kept when node is named explicitly). */
function shebangNodeFlags(binPath: string): string[] {
  try {
    const first = readFileSync(binPath, 'utf8').split('\n', 1)[0] ?? '';
    const match = /^#!.*\bnode((?:\s+--[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
    return match?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
  } catch {
    return [];
  }
}

export function planInstall(options: InstallOptions): InstallPlan {
  if (options.interfaceName !== null && !isInterfaceName(options.interfaceName)) {
    throw new ConfigError(`--interface: must be a network interface name (got ${JSON.stringify(options.interfaceName)})`);
  }
  if (options.interfaceName !== null && options.checkInterface !== false) {
    const names = Object.keys(networkInterfaces());
    if (!names.includes(options.interfaceName)) {
      throw new ConfigError(`--interface: ${options.interfaceName} does not exist on this machine (it has ${names.join(', ')}); to prepare a unit for another machine use --dry-run --skip-interface-check`);
    }
  }
  for (const [option, dir] of [
    ['--unit-dir', options.unitDir],
    ['--environment-file', path.dirname(options.envFile)],
  ] as const) {
    const pseudo = pseudoFilesystemProblem(dir);
    if (pseudo !== null) throw new ConfigError(`${option}: ${pseudo}`);
  }
  // The unit must run a file the service can see: npx's cache in a home directory is hidden by
  // ProtectHome=yes, a checkout under /tmp by PrivateTmp=yes.
  const binPath = realPath(options.binPath);
  if (!path.isAbsolute(binPath) || /\s/.test(binPath)) throw new ConfigError(`cannot use ${JSON.stringify(binPath)} as ExecStart: not an absolute path without spaces`);
  const hidden = hiddenBySandbox(binPath);
  if (hidden !== null && options.allowHiddenPath !== true) {
    throw new ConfigError(
      `this berkeley-agent is ${binPath}, under ${hidden}, which the unit's sandbox hides (${hidden === '/tmp' || hidden === '/var/tmp' ? 'PrivateTmp=yes' : 'ProtectHome=yes'}): install it system-wide (sudo npm install -g berkeley-agent) and run that copy's install-service, or --force to write it anyway`,
    );
  }
  // The shebang runs `node` from systemd's PATH; when that has none, name this node explicitly.
  let execStart = binPath;
  if (findOnPath('node', options.systemdPath ?? SYSTEMD_DEFAULT_PATH) === null) {
    const nodePath = realPath(options.nodePath ?? process.execPath);
    const nodeHidden = hiddenBySandbox(nodePath);
    if (nodeHidden !== null || /\s/.test(nodePath)) {
      throw new ConfigError(`systemd's PATH (${SYSTEMD_DEFAULT_PATH}) has no node, and this node (${nodePath}) is under ${nodeHidden ?? 'a path with spaces'}, which the unit cannot use: install Node.js system-wide (e.g. /usr/bin/node or /usr/local/bin/node)`);
    }
    execStart = [nodePath, ...shebangNodeFlags(binPath), binPath].join(' ');
  }
  const template = readFileSync(UNIT_TEMPLATE, 'utf8');
  if (!template.includes(`ExecStart=${TEMPLATE_BIN} `)) throw new Error(`${UNIT_TEMPLATE} has no ExecStart=${TEMPLATE_BIN}`);
  const unitText = template.replace(`ExecStart=${TEMPLATE_BIN} `, `ExecStart=${execStart} `);
  const envFileExisted = existsSync(options.envFile);
  const existing = envFileExisted ? readFileSync(options.envFile, 'utf8') : null;
  const interfaceLine = options.interfaceName === null ? null : `BERKELEY_AGENT_INTERFACE=${options.interfaceName}`;
  let envText: string;
  if (existing !== null) {
    // Keep the operator's settings; only --interface replaces its line.
    envText = interfaceLine === null ? existing : /^BERKELEY_AGENT_INTERFACE=.*$/m.test(existing) ? existing.replace(/^BERKELEY_AGENT_INTERFACE=.*$/m, interfaceLine) : `${existing.replace(/\n?$/, '\n')}${interfaceLine}\n`;
  } else {
    envText = [
      '# Options for berkeley-agent (systemd unit berkeley-agent.service): BERKELEY_AGENT_<OPTION>=value,',
      '# e.g. BERKELEY_AGENT_PRIORITY=200, BERKELEY_AGENT_PEER="10.1.0.2:7412 10.1.0.3:7412".',
      '# See `berkeley-agent --help`; `berkeley-agent config` shows the result.',
      interfaceLine ?? '#BERKELEY_AGENT_INTERFACE=eth0',
      '',
    ].join('\n');
  }
  return { unitPath: path.join(options.unitDir, UNIT_NAME), unitText, envFile: options.envFile, envText, envFileExisted, execStart };
}

function writeAtomically(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o644 });
  renameSync(temporary, file);
}

/** Writes the plan (or prints it with --dry-run); returns what to tell the operator. */
export function install(options: InstallOptions): string {
  const plan = planInstall(options);
  if (options.dryRun) {
    return [`# ${plan.unitPath}`, plan.unitText.trimEnd(), '', `# ${plan.envFile}${plan.envFileExisted ? ' (exists; shown as it would be)' : ''}`, plan.envText.trimEnd(), ''].join('\n');
  }
  try {
    writeAtomically(plan.unitPath, plan.unitText);
    writeAtomically(plan.envFile, plan.envText);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new InstallError(`cannot write ${plan.unitPath} or ${plan.envFile} (${code})${code === 'EACCES' || code === 'EPERM' ? '; run it with sudo' : ''}`);
  }
  return [
    `wrote ${plan.unitPath} (ExecStart=${plan.execStart})`,
    `${plan.envFileExisted ? 'updated' : 'wrote'} ${plan.envFile}`,
    'next: sudo systemctl daemon-reload && sudo systemctl enable --now berkeley-agent',
    'check: systemctl status berkeley-agent; journalctl -u berkeley-agent; berkeley-agent status',
    '',
  ].join('\n');
}

export class InstallError extends Error {}
