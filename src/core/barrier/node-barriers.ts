// A node's barriers (issue 6): its own participants (a BarrierClient, created on first use) and,
// while it is master, the table that releases barriers (a BarrierTable). After every input the
// node calls settle(): the table exists exactly while this node is master, the client hears of
// every change of master or term (it re-registers everything then), frames between this node's
// client and its own table are exchanged locally, and the rest go out through the outbox.
import type { Outbox } from '../outbox.ts';
import type { NodeId, Role } from '../types.ts';
import { BarrierClient, exchangeLocally, newBarrierClientCounters, type BarrierClientCounters, type BarrierJoinRequest, type BarrierJoinResult, type BarrierOutcome, type BarrierParticipantStatus } from './client.ts';
import { barrierRecipient, type BarrierBody } from './frames.ts';
import { BarrierTable, type BarrierTableStatus } from './table.ts';

/** Barriers as this node sees them: its own participants, and the table when it is master. */
export interface BarrierReport {
  participants: BarrierParticipantStatus[];
  client: BarrierClientCounters;
  /** Master only. */
  table: BarrierTableStatus | null;
}

/** What the barriers read of the node. */
export interface NodeBarriersHost {
  readonly role: Role;
  readonly masterId: NodeId | null;
  readonly term: number;
  /** The node said goodbye: no table is created any more. */
  readonly left: boolean;
  /** This node's clock now, ns since the epoch (synchronized releases are scheduled on it); null: none injected. */
  clockNowNs?(): bigint | null;
  /** The recent round trip to a node, ns (0 for this node), or null if not measured yet. */
  delayNsOf?(nodeId: NodeId): number | null;
}

const NEVER = Number.POSITIVE_INFINITY;

export class NodeBarriers {
  private client: BarrierClient | null = null;
  private table: BarrierTable | null = null;
  /** `${masterId} ${term}` the client was last told of ('' = no master). */
  private masterKey = '';
  private outcomes: BarrierOutcome[] = [];

  constructor(
    private readonly config: { nodeId: NodeId; random: () => number },
    private readonly host: NodeBarriersHost,
    private readonly outbox: Outbox,
  ) {}

  /** A participant of this node's control client (the caller refuses it once the node left). */
  join(request: BarrierJoinRequest, nowMs: number): BarrierJoinResult {
    const result = this.clientOf(nowMs).join(request, nowMs);
    this.settle(nowMs);
    return result;
  }

  /** The participant gave up (timed out, or its control client went away). */
  withdraw(requestId: number, nowMs: number): boolean {
    const withdrawn = this.client?.withdraw(requestId, nowMs) ?? false;
    this.settle(nowMs);
    return withdrawn;
  }

  report(nowMs: number): BarrierReport {
    return {
      participants: this.client?.participants() ?? [],
      // Reading the report must not create a client (that would draw from the seeded random).
      client: this.client === null ? newBarrierClientCounters() : { ...this.client.counters },
      table: this.table?.status(nowMs) ?? null,
    };
  }

  onFrame(body: BarrierBody & { from: NodeId }, nowMs: number): void {
    if (barrierRecipient(body) === 'table') {
      // Not master (any more): the agent's client re-registers once it learns the new master.
      this.table?.deliver(body.from, body, nowMs);
      return;
    }
    this.client?.receive(body, body.from, nowMs);
  }

  /** Retries and expiries; the node calls settle() after. */
  tick(nowMs: number): void {
    this.client?.tick(nowMs);
    this.table?.tick(nowMs);
  }

  nextDeadlineMs(): number {
    return Math.min(this.client?.nextDeadlineMs() ?? NEVER, this.table?.nextDeadlineMs() ?? NEVER);
  }

  /** The node is leaving: the table goes (its waiters re-register with the next master). */
  stop(): void {
    this.table = null;
  }

  /** What happened to this node's participants since the last call. */
  drainOutcomes(): BarrierOutcome[] {
    const outcomes = this.outcomes;
    this.outcomes = [];
    return outcomes;
  }

  /** After every input: see the file's comment. */
  settle(nowMs: number): void {
    const host = this.host;
    if (host.role === 'master' && this.table === null && !host.left) {
      const clockNowNs = (host.clockNowNs?.() ?? null) === null ? undefined : () => host.clockNowNs?.() as bigint;
      this.table = new BarrierTable({ random: this.config.random, delayNsOf: (nodeId) => host.delayNsOf?.(nodeId) ?? null, ...(clockNowNs === undefined ? {} : { clockNowNs }) });
    }
    else if (host.role !== 'master') this.table = null;
    const client = this.client;
    if (client === null) {
      // No participant ever on this node: only the table (master) has frames to send.
      for (const send of this.table?.drain() ?? []) this.outbox.sendTo(send.to, send.body);
      return;
    }
    const key = host.role === 'electing' || host.masterId === null ? '' : `${host.masterId} ${host.term}`;
    if (key !== this.masterKey) {
      this.masterKey = key;
      client.masterChanged(key === '' ? null : host.masterId, nowMs);
    }
    const exchanged = exchangeLocally(this.config.nodeId, client, this.table, nowMs);
    for (const send of exchanged.network) this.outbox.sendTo(send.to, send.body);
    this.outcomes.push(...exchanged.outcomes);
  }

  /** Created on first use: its request ids start at a random 40-bit base (unique across restarts). */
  private clientOf(nowMs: number): BarrierClient {
    if (this.client === null) {
      this.client = new BarrierClient({ nodeId: this.config.nodeId, requestIdBase: Math.floor(this.config.random() * 2 ** 40) });
      this.masterKey = '';
      this.settle(nowMs);
    }
    return this.client;
  }
}
