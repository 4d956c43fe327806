// Helpers for tests that run real `berkeley-agent` processes on loopback: spawn with a clean
// environment (never the kernel clock), run to completion, free ports, polling, cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { StatusReport } from '../src/daemon/status.ts';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const BIN = fileURLToPath(new URL('../bin/berkeley-agent', import.meta.url));
/** Keeps every agent on loopback and off multicast. */
export const LOOPBACK_ONLY = ['--no-mdns', '--bind', '127.0.0.1'];

// ---------------------------------------------------------------------------------------------
// Process helpers

const children = new Set<ChildProcess>();

export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Settings of whoever runs the tests must not leak into the agents.
  for (const key of Object.keys(env)) if (key.startsWith('BERKELEY_AGENT_')) delete env[key];
  // Never the kernel clock (CI is root): a test that means --clock system says so on the command line.
  // No NTP server on this machine's port 123 (the default of --ntp-port): a test that wants one
  // passes --ntp-port on the command line, which wins over the environment.
  return { ...env, BERKELEY_AGENT_CLOCK: 'virtual', BERKELEY_AGENT_NTP_PORT: '0', ...extra };
}

export function spawnCli(args: string[], env: Record<string, string> = {}, prefix: string[] = []): ChildProcess {
  const [command, ...commandArgs] = [...prefix, process.execPath, BIN, ...args] as [string, ...string[]];
  const child = spawn(command, commandArgs, { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL if it has not exited within graceMs. Resolves once it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (!running(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (running(child)) child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Kills every child still running (call from afterAll). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child, 1000)));
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs one CLI command to completion (killed after timeoutMs). */
export async function runCli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number; prefix?: string[] } = {}): Promise<CliResult> {
  const child = spawnCli(args, options.env, options.prefix);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 20_000);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
    });
    return { code, signal, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
    if (running(child)) child.kill('SIGKILL');
  }
}

export function describeResult(result: CliResult): string {
  return `exit ${result.code} signal ${result.signal}${result.timedOut ? ' (timed out)' : ''}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-2000)}`;
}

// ---------------------------------------------------------------------------------------------
// Ports, polling

const handedOut = new Set<number>();

/** A loopback port free for both UDP and TCP right now (bound to port 0, then closed). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (handedOut.has(port)) continue;
    const socket = dgram.createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    if (!udpFree) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free loopback port found');
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function getStatus(httpPort: number): Promise<StatusReport | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/status`, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) return null;
    return (await response.json()) as StatusReport;
  } catch {
    return null;
  }
}

/** Polls check() until it returns a value (not undefined), or fails after timeoutMs saying what it last saw. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, lastSeen: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastSeen() ? `; last seen: ${lastSeen()}` : ''}`);
    await sleep(250);
  }
}
