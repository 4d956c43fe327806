// Static --peer endpoints: greeted at start and again until they answer (a peer listed on the
// command line may simply not be running yet), then never again.
import { describe, expect, it } from 'vitest';
import { ProtocolNode } from '../src/core/node.ts';
import { nodeConfig } from '../src/core/defaults.ts';
import { FrameType, type Frame } from '../src/core/frames.ts';
import { PROTOCOL_VERSION, STATIC_HELLO_INTERVAL_MS } from '../src/core/limits.ts';

const peerEndpoint = { address: '127.0.0.1', port: 17500 };

function hellosTo(node: ProtocolNode, endpoint: { address: string; port: number }): number {
  return node.drain().sends.filter((send) => send.frame.type === FrameType.hello && send.to.port === endpoint.port && send.to.address === endpoint.address).length;
}

describe('static peers', () => {
  it('greets an unanswered static peer every STATIC_HELLO_INTERVAL_MS until it answers', () => {
    const node = new ProtocolNode(nodeConfig({ nodeId: 'a', random: () => 0.5, discoveryWindowMs: 60_000 }), 0);
    node.addStaticEndpoint(peerEndpoint, 0);
    expect(hellosTo(node, peerEndpoint)).toBe(1);
    expect(node.nextDeadlineMs()).toBe(STATIC_HELLO_INTERVAL_MS);
    node.tick(STATIC_HELLO_INTERVAL_MS - 1);
    expect(hellosTo(node, peerEndpoint)).toBe(0);
    node.tick(STATIC_HELLO_INTERVAL_MS);
    expect(hellosTo(node, peerEndpoint)).toBe(1);
    node.tick(2 * STATIC_HELLO_INTERVAL_MS);
    expect(hellosTo(node, peerEndpoint)).toBe(1);

    // The peer answers: it becomes a known peer and is no longer greeted blindly.
    const answer: Frame = { v: PROTOCOL_VERSION, cluster: 'default', from: 'b', prio: 100, term: 0, boot: 1, seq: 1, to: 'a', toBoot: 0, txNs: 1n, type: FrameType.hello, wantReply: false, role: 0, masterId: null, masterPrio: null };
    node.receive(answer, peerEndpoint, 2n, 2 * STATIC_HELLO_INTERVAL_MS + 10);
    node.drain();
    expect(node.status().peers.map((peer) => peer.nodeId)).toEqual(['b']);
    node.tick(3 * STATIC_HELLO_INTERVAL_MS);
    node.tick(4 * STATIC_HELLO_INTERVAL_MS);
    expect(hellosTo(node, peerEndpoint)).toBe(0);
  });
});
