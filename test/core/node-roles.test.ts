// The node's role changes alone (src/core/node.ts becomeMaster, becomeMember, becomeElecting): each
// role's tick acts exactly at the deadline nextDeadlineMs() reports, a role won during a tick starts
// its work in the same instant, and a frame that changes the role is then handled by the new role.
import { describe, expect, it } from 'vitest';
import { nodeConfig } from '../../src/core/defaults.ts';
import { FrameType, type Frame } from '../../src/core/frames.ts';
import { PROTOCOL_VERSION } from '../../src/core/limits.ts';
import { ProtocolNode, type NodeConfig, type NodeEvent } from '../../src/core/node.ts';
import type { NodeId } from '../../src/core/types.ts';

const masterEndpoint = { address: '198.18.3.2', port: 7412 };
let seq = 0;
const header = (from: NodeId, term: number, prio = 100) => ({ v: PROTOCOL_VERSION, cluster: 'default', from, prio, term, boot: 1, seq: (seq += 1), to: 'member', toBoot: 1, txNs: 1n });

function node(config: Partial<NodeConfig> = {}): ProtocolNode {
  return new ProtocolNode(nodeConfig({ nodeId: 'member', random: () => 0.5, ...config }), 0);
}

/** A member of `master` (a lower key than ours) in `term`, learned at 10 ms. */
function follower(config: Partial<NodeConfig> = {}): ProtocolNode {
  const member = node(config);
  member.receive({ ...header('alpha', 5), type: FrameType.coordinator, algorithm: 0 } as Frame, masterEndpoint, 10n, 10);
  expect(member.status()).toMatchObject({ role: 'slave', masterId: 'alpha', term: 5 });
  member.drain();
  return member;
}

const roleChanges = (events: NodeEvent[]) => events.flatMap((event) => (event.kind === 'role' ? [`${event.from}->${event.to}`] : []));

describe('node roles', () => {
  it("a member's tick acts at the master-silent deadline it reports, not a moment before", () => {
    const config = nodeConfig({ nodeId: 'member', random: () => 0.5 });
    const member = follower();
    const silentAtMs = 10 + config.masterTimeoutMs;
    expect(member.nextDeadlineMs()).toBeLessThanOrEqual(silentAtMs);
    member.tick(silentAtMs - 0.001);
    expect(member.status().role).toBe('slave');
    member.tick(silentAtMs);
    // Its master left out, nobody above it: elected at once, and its first round polls at once.
    const out = member.drain();
    expect(roleChanges(out.events)).toEqual(['slave->electing', 'electing->master']);
    expect(out.sends.some((send) => send.frame.type === FrameType.poll)).toBe(true);
    expect(member.status().counters.probesSent).toBeGreaterThan(0);
  });

  it('a --never-master member whose master goes silent waits without a master, and starts no election', () => {
    const config = nodeConfig({ nodeId: 'member', random: () => 0.5 });
    const member = follower({ neverMaster: true });
    member.tick(10 + config.masterTimeoutMs);
    expect(member.status()).toMatchObject({ role: 'electing', masterId: null, term: 5 });
    expect(member.status().counters.electionsStarted).toBe(0);
  });

  it('a master polled by a higher key of a later term steps down and answers that POLL as a member', () => {
    const lone = node();
    for (let guard = 0; guard < 10 && lone.status().role !== 'master'; guard += 1) lone.tick(lone.nextDeadlineMs());
    expect(lone.status().role).toBe('master');
    const term = lone.status().term;
    lone.drain();
    const nowMs = lone.nextDeadlineMs();
    lone.receive({ ...header('zulu', term + 1, 200), type: FrameType.poll, round: 1, probe: 0 } as Frame, masterEndpoint, 99n, nowMs);
    expect(lone.status()).toMatchObject({ role: 'slave', masterId: 'zulu', term: term + 1 });
    const out = lone.drain();
    expect(roleChanges(out.events)).toEqual(['master->slave']);
    const replies = out.sends.filter((send) => send.frame.type === FrameType.reply);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.to).toEqual(masterEndpoint);
    expect(replies[0]!.frame).toMatchObject({ round: 1, probe: 0, rxNs: 99n, term: term + 1 });
    // No rounds of its own any more: its deadline is the new master's silence.
    expect(lone.nextDeadlineMs()).toBeLessThanOrEqual(nowMs + nodeConfig({ nodeId: 'x', random: () => 0.5 }).masterTimeoutMs);
  });

  it('only a master answers a REPLY or serves the view; an electing node does not follow a CORRECT', () => {
    const electing = node();
    electing.receive({ ...header('alpha', 0), type: FrameType.correct, round: 1, correctionNs: 5000 } as Frame, masterEndpoint, 1n, 1);
    electing.receive({ ...header('alpha', 0), type: FrameType.viewQuery, queryId: 1, start: 0 } as Frame, masterEndpoint, 1n, 1);
    const out = electing.drain();
    expect(out.corrections).toEqual([]);
    expect(out.sends.filter((send) => send.frame.type !== FrameType.hello)).toEqual([]);
    expect(electing.status().role).toBe('electing');
  });
});
