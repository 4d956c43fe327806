// Installs the product on the lab's guests the way a user does: `npm pack` of this checkout, a
// global install of the tarball (into a prefix on the host, since the guests cannot reach the
// registry), the prefix copied into the guest's /usr/local, then `berkeley-agent install-service`
// and `systemctl enable --now berkeley-agent`.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_CACHE_DIR } from './assets.ts';
import type { Guest, VmLab } from './lab.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NPM_TIMEOUT_MS = 300_000;

function npm(args: string[], cwd: string): Promise<string> {
  // npm's own settings from a surrounding `npm test` (prefix, global, ...) must not leak in.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return new Promise((resolve, reject) => {
    execFile('npm', [...args, '--cache', path.join(LAB_CACHE_DIR, 'npm-cache'), '--no-audit', '--no-fund', '--no-update-notifier'],
      { cwd, env, timeout: NPM_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`npm ${args.join(' ')} failed: ${error.message}\n${String(stderr).slice(-2000)}`));
        else resolve(String(stdout));
      });
  });
}

/**
 * Packs this checkout and installs the tarball globally into the lab's share (/mnt/lab/prefix in
 * the guests). Returns the tarball's name.
 */
export async function packAndInstall(lab: VmLab): Promise<string> {
  const packDir = path.join(lab.dir, 'pack');
  mkdirSync(packDir, { recursive: true });
  await npm(['pack', '--pack-destination', packDir, REPO_ROOT], packDir);
  const tarball = readdirSync(packDir).find((name) => name.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${packDir}`);
  await npm(['install', '-g', '--prefix', path.join(lab.shareDir, 'prefix'), path.join(packDir, tarball)], packDir);
  return tarball;
}

/** Copies the installed prefix into the guest's /usr/local, as `npm install -g` there would leave it. */
export async function installOnGuest(guest: Guest): Promise<void> {
  await guest.run('cp -a /mnt/lab/prefix/. /usr/local/ && command -v berkeley-agent', 120_000);
}

/** `berkeley-agent install-service --interface vec0` and `systemctl enable --now`. */
export async function enableService(guest: Guest, environment: Record<string, string> = {}): Promise<void> {
  const extra = Object.entries(environment).map(([key, value]) => `echo '${key}=${value}' >> /etc/default/berkeley-agent`).join(' && ');
  await guest.run(`berkeley-agent install-service --interface vec0 > /dev/null${extra ? ` && ${extra}` : ''} && systemctl daemon-reload && systemctl enable --now berkeley-agent 2>&1`, 120_000);
}

/** The agent's `status --json` (whatever its exit code says), or null when it cannot answer. */
export async function agentStatus(guest: Guest): Promise<Record<string, unknown> | null> {
  const result = await guest.ssh('berkeley-agent status --json', 30_000);
  try {
    return JSON.parse(result.stdout) as Record<string, unknown>;
  } catch {
    return null;
  }
}
