// Barriers end to end: four hosts in network namespaces, one agent each (mDNS discovery, the
// highest key is master), and `berkeley-agent barrier` run on the hosts as an experiment would.
// Waiters stay blocked until the initializer arrives, then all exit 0; an error code reaches
// everyone; an uninitialized barrier with --timeout 2 exits 124; the master is killed (-9) while
// waiters block and the barrier still completes under the new master.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable, sleep, type ExecResult, type LabHost } from '../../lab/netns/netns.ts';
import { AGENT_BIN, startAgent, statusOf, waitForAgreement, type AgentProcess } from '../../lab/netns/agents.ts';

const availability = netnsAvailable();
if (!availability.ok) console.warn(`SKIPPED e2e barrier tests: ${availability.reason}`);

const COMMAND_TIMEOUT_MS = 60_000;

describe.skipIf(!availability.ok)('barriers between namespaces (real processes)', () => {
  let lab: NetnsLab;
  let agents: AgentProcess[];

  beforeAll(async () => {
    lab = await NetnsLab.create({ hosts: 4, prefix: 'barr' });
    agents = lab.hosts.map((host) => startAgent(lab, host, `node-${host.index}`, ['--interface', host.iface, '--poll-interval', '0.5', '--discovery-window', '2']));
    const agreement = await waitForAgreement(lab, agents, 40_000);
    expect(agreement.masterId).toBe('node-4');
  }, 90_000);

  afterAll(async () => {
    await lab?.cleanup();
  });

  /** `barrier ARGS` on a host, with when it exited. */
  async function barrier(host: LabHost, args: string[]): Promise<ExecResult & { exitedMs: number }> {
    const result = await lab.exec(host, process.execPath, [AGENT_BIN, 'barrier', ...args], { timeoutMs: COMMAND_TIMEOUT_MS });
    return { ...result, exitedMs: Date.now() };
  }

  /** Until the master counts `present` waiters in the barrier. */
  async function waitForWaiters(name: string, present: number, masterIndex: number): Promise<void> {
    const master = agents[masterIndex - 1]!;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const open = (await statusOf(lab, master))?.barriers.open?.find((entry) => entry.name === name);
      if (open !== undefined && open.present >= present) return;
      await sleep(100);
    }
    throw new Error(`the master never counted ${present} waiters in ${name}\n${lab.diagnostics()}`);
  }

  it('waiters stay blocked until the initializer arrives, then all exit 0', async () => {
    const [h1, h2, h3, h4] = lab.hosts as [LabHost, LabHost, LabHost, LabHost];
    let exited = 0;
    const waiters = [h1, h2, h3].map((host) => barrier(host, ['start']).then((result) => ((exited += 1), result)));
    await waitForWaiters('start', 3, 4);
    await sleep(2000);
    expect(exited).toBe(0);
    const initializerStartMs = Date.now();
    const results = await Promise.all([...waiters, barrier(h4, ['start', '--count', '3'])]);
    for (const result of results) expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    const exitTimes = results.map((result) => result.exitedMs);
    console.info(`e2e barrier: 3 waiters + initializer released ${Math.max(...exitTimes) - initializerStartMs} ms after the initializer started (incl. its process start), exits within ${Math.max(...exitTimes) - Math.min(...exitTimes)} ms`);
  }, 90_000);

  it('an error code reaches every participant', async () => {
    const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    const results = await Promise.all([barrier(h1, ['fail', '--error', '9']), barrier(h2, ['fail']), barrier(h3, ['fail', '--count', '2', '--error', '4'])]);
    for (const result of results) expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(9);
  }, 90_000);

  it('an uninitialized barrier with --timeout 2 exits 124', async () => {
    const result = await barrier(lab.hosts[1]!, ['lonely', '--timeout', '2']);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(124);
    expect(result.stderr).toContain('timed out after 2 s');
  }, 30_000);

  it('the master is killed while waiters block: the barrier completes under the new master', async () => {
    const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    let exited = 0;
    const waiters = [h1, h2, h3].map((host) => barrier(host, ['survive']).then((result) => ((exited += 1), result)));
    await waitForWaiters('survive', 3, 4);
    const master = agents[3]!;
    master.child.kill('SIGKILL');
    master.alive = false;
    const agreement = await waitForAgreement(lab, agents, 20_000, { pollMs: 100, requireSpread: false });
    expect(agreement.masterId).toBe('node-3');
    // The waiters re-registered with node-3 and are still blocked.
    await waitForWaiters('survive', 3, 3);
    expect(exited).toBe(0);
    const results = await Promise.all([...waiters, barrier(h1, ['survive', '--count', '3'])]);
    for (const result of results) expect(result.code, `${result.stdout}\n${result.stderr}\n${lab.diagnostics()}`).toBe(0);
  }, 120_000);
});
