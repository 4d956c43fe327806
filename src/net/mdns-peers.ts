// The peers mDNS told us about: one entry per node id, at most peersMax, and which instance FQDN
// each came from (a goodbye names the FQDN, not the node id). No sockets and no logging: each call
// says what happened, and discovery (mdns.ts) logs it and tells the agent.
import type { DiscoveredPeer } from './mdns-records.ts';

interface TrackedPeer {
  peer: DiscoveredPeer;
  /** Lower-cased instance FQDN the peer announced, to map its goodbye back to a node id. */
  fqdn: string;
}

export interface Announced {
  /** The FQDN used to name this other node id: that one is gone (tell the agent it said goodbye). */
  replacedNodeId: string | null;
  /**
   * limit: a new node id while the table is full (dropped); new: a new peer; changed: its address,
   * port, priority, cluster or protocol version changed; same: nothing new.
   */
  outcome: 'limit' | 'new' | 'changed' | 'same';
  /** This node id was known under another FQDN (duplicate ids, or a renamed instance): last wins. */
  previousFqdn: string | null;
}

export class MdnsPeerTable {
  private readonly peers = new Map<string, TrackedPeer>();
  private readonly fqdnToNodeId = new Map<string, string>();

  constructor(private readonly peersMax: number) {}

  /** A goodbye for `fqdn`: the node id it named, now forgotten, or undefined if unknown. */
  goodbye(fqdn: string): string | undefined {
    const nodeId = this.fqdnToNodeId.get(fqdn);
    if (nodeId === undefined) return undefined;
    this.fqdnToNodeId.delete(fqdn);
    this.peers.delete(nodeId);
    return nodeId;
  }

  /** An announcement of `peer` under `fqdn` (lower-cased). */
  announce(fqdn: string, peer: DiscoveredPeer): Announced {
    // The same instance name now claims a different node id: the old one is gone.
    const previousId = this.fqdnToNodeId.get(fqdn);
    const replacedNodeId = previousId !== undefined && previousId !== peer.nodeId ? (this.goodbye(fqdn) ?? null) : null;
    const known = this.peers.get(peer.nodeId);
    if (known === undefined && this.peers.size >= this.peersMax) return { replacedNodeId, outcome: 'limit', previousFqdn: null };
    let previousFqdn: string | null = null;
    if (known && known.fqdn !== fqdn) {
      previousFqdn = known.fqdn;
      this.fqdnToNodeId.delete(known.fqdn);
    }
    this.peers.set(peer.nodeId, { peer, fqdn });
    this.fqdnToNodeId.set(fqdn, peer.nodeId);
    const outcome = known === undefined ? 'new' : samePeer(known.peer, peer) ? 'same' : 'changed';
    return { replacedNodeId, outcome, previousFqdn };
  }

  /** Peers currently known (copies). */
  list(): DiscoveredPeer[] {
    return [...this.peers.values()].map((t) => ({ ...t.peer }));
  }

  get size(): number {
    return this.peers.size;
  }

  clear(): void {
    this.peers.clear();
    this.fqdnToNodeId.clear();
  }
}

function samePeer(a: DiscoveredPeer, b: DiscoveredPeer): boolean {
  return a.address === b.address && a.port === b.port && a.priority === b.priority && a.protocolVersion === b.protocolVersion && a.cluster === b.cluster;
}
