// Whether a command of the machine (dig, systemd-analyze, ...) can run, for tests that need one
// and must say why they are skipped when it is missing.
import { execFileSync } from 'node:child_process';

export function commandRuns(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
