// Our mDNS service is visible to standard tools: Debian's dig (package bind9-dnsutils), from
// another network namespace, asks the agent's host on port 5353 for _berkeley._udp.local and must
// find the agent (PTR to its instance, SRV with its port, TXT with its node id). dig is a "legacy
// unicast" querier (RFC 6762 §6.7): it only sees answers sent back to its own port.
import { commandRuns } from '../support/commands.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsAvailable, sleep } from '../../lab/netns/netns.ts';
import { startAgent, statusOf, type AgentProcess } from '../../lab/netns/agents.ts';

const availability = netnsAvailable();
const hasDig = commandRuns('dig', ['-v']);
if (!availability.ok) console.warn(`SKIPPED e2e dig test: ${availability.reason}`);
else if (!hasDig) console.warn('SKIPPED e2e dig test: dig is not installed (apt-get install bind9-dnsutils; .ci/run installs it)');

describe.skipIf(!availability.ok || !hasDig)('mDNS seen by dig from another namespace', () => {
  let lab: NetnsLab;
  let agent: AgentProcess;

  beforeAll(async () => {
    lab = await NetnsLab.create({ hosts: 2, prefix: 'dig' });
    const host = lab.hosts[0]!;
    agent = startAgent(lab, host, 'dig-agent', ['--interface', host.iface, '--port', '7412', '--discovery-window', '0.5']);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await statusOf(lab, agent)) === null) await sleep(200);
  }, 60_000);

  afterAll(async () => {
    await lab?.cleanup();
  });

  it('dig -p 5353 @AGENT _berkeley._udp.local PTR finds the agent with its port and node id', async () => {
    const agentHost = lab.hosts[0]!;
    const asker = lab.hosts[1]!;
    let output = '';
    // The agent publishes as soon as it runs; allow a few tries while it starts.
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const result = await lab.exec(asker, 'dig', ['-p', '5353', `@${agentHost.address}`, '_berkeley._udp.local', 'PTR', '+time=2', '+tries=1'], { timeoutMs: 10_000 });
      output = `${result.stdout}\n${result.stderr}`;
      if (/status: NOERROR/.test(output) && /ANSWER: [1-9]/.test(output)) break;
      await sleep(500);
    }
    expect(output, output).toMatch(/status: NOERROR/);
    // PTR: the service type points at our instance, whose name carries the node id.
    expect(output).toMatch(/_berkeley\._udp\.local\.\s+\d+\s+IN\s+PTR\s+.*dig-agent.*\._berkeley\._udp\.local\./);
    // SRV with the agent's UDP port, TXT with its node id and cluster.
    expect(output).toMatch(/IN\s+SRV\s+\d+\s+\d+\s+7412\s+/);
    expect(output).toMatch(/IN\s+TXT\s+.*"id=dig-agent"/);
    // Legacy unicast answers carry short TTLs (RFC 6762 §6.7: at most 10 s).
    const ttls = [...output.matchAll(/\.\s+(\d+)\s+IN\s+(?:PTR|SRV|TXT)/g)].map((match) => Number(match[1]));
    expect(ttls.length).toBeGreaterThan(0);
    expect(Math.max(...ttls)).toBeLessThanOrEqual(10);
  }, 60_000);
});
