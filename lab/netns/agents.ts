// Helpers for end-to-end tests that run real agent processes in a NetnsLab: start agents, read
// their status over the control server, wait for agreement, measure the clock spread.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { sleep, type LabHost, type NetnsLab } from './netns.ts';
import type { StatusReport } from '../../src/daemon/status.ts';

export const AGENT_BIN = fileURLToPath(new URL('../../bin/berkeley-agent', import.meta.url));
/**
 * The node flags an installed agent runs with: those of bin/berkeley-agent's shebang line
 * (`#!/usr/bin/env -S node FLAGS`). Spawning `node AGENT_BIN` skips the shebang, so tests and
 * benchmarks pass these themselves and run agents as users do.
 */
export const AGENT_NODE_FLAGS: readonly string[] = (/^#!\/usr\/bin\/env -S node\b(.*)$/.exec(readFileSync(AGENT_BIN, 'utf8').split('\n', 1)[0] ?? '')?.[1] ?? '')
  .split(/\s+/)
  .filter((flag) => flag !== '');
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
export const SPREAD_LIMIT_NS = 1_000_000;

export interface AgentProcess {
  host: LabHost;
  nodeId: string;
  child: ChildProcess;
  alive: boolean;
}

/**
 * Starts an agent of a static-peer cluster: mDNS off, bound to its host's address, every other of
 * `hosts` (by default the lab's) as a --peer on the default port, after `args`.
 */
export function startStaticAgent(lab: NetnsLab, host: LabHost, nodeId: string, args: string[], hosts: readonly LabHost[] = lab.hosts): AgentProcess {
  const peers = hosts.filter((other) => other !== host).flatMap((other) => ['--peer', `${other.address}:7412`]);
  return startAgent(lab, host, nodeId, ['--no-mdns', '--bind', host.address, ...args, ...peers]);
}

/** Starts `berkeley-agent` in the host's namespace (control server on its own 127.0.0.1:7413). */
export function startAgent(lab: NetnsLab, host: LabHost, nodeId: string, args: string[]): AgentProcess {
  // Never the kernel clock (tests run as root): --clock virtual unless the test chose a clock
  // (an option given twice is an error).
  const clock = args.includes('--clock') ? [] : ['--clock', 'virtual'];
  const child = lab.spawn(host, process.execPath, [...AGENT_NODE_FLAGS, AGENT_BIN, '--node-id', nodeId, '--log-format', 'json', ...clock, ...args]);
  return { host, nodeId, child, alive: true };
}

export async function statusOf(lab: NetnsLab, agent: AgentProcess): Promise<StatusReport | null> {
  try {
    return await lab.httpGetJson<StatusReport>(agent.host, 'http://127.0.0.1:7413/status', { timeoutMs: 3000 });
  } catch {
    return null;
  }
}

export async function statuses(lab: NetnsLab, agents: AgentProcess[]): Promise<StatusReport[]> {
  const all = await Promise.all(agents.filter((agent) => agent.alive).map((agent) => statusOf(lab, agent)));
  return all.filter((status): status is StatusReport => status !== null);
}

export function spreadNs(reports: StatusReport[]): number {
  const offsets = reports.map((report) => report.clock.hostOffsetNs);
  return Math.max(...offsets) - Math.min(...offsets);
}

/** Every live agent answers, exactly one is master, all name it, all are synchronized. */
export function agreed(reports: StatusReport[], expectedCount: number): string | null {
  if (reports.length !== expectedCount) return null;
  const masters = reports.filter((report) => report.role === 'master');
  if (masters.length !== 1) return null;
  const masterId = masters[0]!.nodeId;
  if (!reports.every((report) => report.masterId === masterId && report.clock.synchronized)) return null;
  return masterId;
}

export async function waitForAgreement(
  lab: NetnsLab,
  agents: AgentProcess[],
  timeoutMs: number,
  options: { pollMs?: number; requireSpread?: boolean } = {},
): Promise<{ masterId: string; reports: StatusReport[] }> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusReport[] = [];
  while (Date.now() < deadline) {
    last = await statuses(lab, agents);
    const masterId = agreed(last, agents.filter((agent) => agent.alive).length);
    if (masterId !== null && (options.requireSpread === false || spreadNs(last) < SPREAD_LIMIT_NS)) return { masterId, reports: last };
    await sleep(options.pollMs ?? 200);
  }
  const summary = last.map((r) => ({ id: r.nodeId, role: r.role, master: r.masterId, term: r.term, off: r.clock.hostOffsetNs, sync: r.clock.synchronized }));
  throw new Error(`no agreement within ${timeoutMs} ms; last statuses:\n${JSON.stringify(summary, null, 1)}\n${lab.diagnostics()}`);
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}
