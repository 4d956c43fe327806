// `berkeley-agent install-service`: writes the systemd unit (ExecStart pointing at this installed
// binary) and the environment file the unit reads, or prints them with --dry-run. It does not run
// systemctl: the operator reloads and enables the service (the command says how).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, isInterfaceName } from '../daemon/config.ts';

export const UNIT_DIR_DEFAULT = '/etc/systemd/system';
export const ENV_FILE_DEFAULT = '/etc/default/berkeley-agent';
const UNIT_NAME = 'berkeley-agent.service';
const UNIT_TEMPLATE = fileURLToPath(new URL('../../systemd/berkeley-agent.service', import.meta.url));
/** The ExecStart path in the shipped unit, replaced by the real one. */
const TEMPLATE_BIN = '/usr/local/bin/berkeley-agent';

export interface InstallOptions {
  /** Absolute path of the berkeley-agent executable the unit should run. */
  binPath: string;
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
}

export function planInstall(options: InstallOptions): InstallPlan {
  if (options.interfaceName !== null && !isInterfaceName(options.interfaceName)) {
    throw new ConfigError(`--interface: must be a network interface name (got ${JSON.stringify(options.interfaceName)})`);
  }
  if (!path.isAbsolute(options.binPath) || /\s/.test(options.binPath)) throw new ConfigError(`cannot use ${JSON.stringify(options.binPath)} as ExecStart: not an absolute path without spaces`);
  const template = readFileSync(UNIT_TEMPLATE, 'utf8');
  if (!template.includes(`ExecStart=${TEMPLATE_BIN} `)) throw new Error(`${UNIT_TEMPLATE} has no ExecStart=${TEMPLATE_BIN}`);
  const unitText = template.replace(`ExecStart=${TEMPLATE_BIN} `, `ExecStart=${options.binPath} `);
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
  return { unitPath: path.join(options.unitDir, UNIT_NAME), unitText, envFile: options.envFile, envText, envFileExisted };
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
    `wrote ${plan.unitPath} (ExecStart=${options.binPath})`,
    `${plan.envFileExisted ? 'updated' : 'wrote'} ${plan.envFile}`,
    'next: sudo systemctl daemon-reload && sudo systemctl enable --now berkeley-agent',
    'check: systemctl status berkeley-agent; journalctl -u berkeley-agent; berkeley-agent status',
    '',
  ].join('\n');
}

export class InstallError extends Error {}
