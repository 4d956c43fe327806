// What a sub-machine of the node (src/core/node.ts) may do to the world: send a frame and report
// an event. The node holds one NodeOutbox (addressing, sequence numbers, the bound), so every
// sub-machine's output goes through the same queue in the order it was produced.
import { FRAME_TYPE_NAMES, type FrameBody, type FrameTypeName, type OutgoingFrame } from './frames.ts';
import type { NodeEvent } from './events.ts';
import { EVENTS_MAX, OUTBOX_FRAMES_MAX, PROTOCOL_VERSION } from './limits.ts';
import { OutgoingSequences } from './membership/replay-window.ts';
import type { Endpoint, NodeId } from './types.ts';

export interface Outbox {
  /** To a peer in the table by its id (nothing if the table does not hold it). */
  sendTo(nodeId: NodeId, body: FrameBody): void;
  /** To an endpoint (addressed to the peer there if the table knows it). */
  send(to: Endpoint, body: FrameBody): void;
  emit(event: NodeEvent): void;
}

export interface SendRequest {
  to: Endpoint;
  frame: OutgoingFrame;
}

/** Who sends: the header fields every frame carries. */
export interface OutboxConfig {
  nodeId: NodeId;
  priority: number;
  cluster: string;
  bootId: number;
  peersMax: number;
}

/** What the outbox reads of the node at send time: its term, and who is at an endpoint. */
export interface OutboxHost {
  readonly term: number;
  /** The node's clock class now (election key's leading field); 0 is not sent. */
  readonly clockClass?: number;
  /** The peer at that endpoint and the run we last heard from (empty id and 0 when unknown). */
  addressOf(endpoint: Endpoint): { toId: NodeId; toBoot: number };
  endpointOf(nodeId: NodeId): Endpoint | undefined;
}

/** What the outbox counts (fields of the node's counters). */
export interface OutboxCounters {
  framesDroppedOutboxFull: number;
  framesSentByType: Record<FrameTypeName, number>;
}

export class NodeOutbox implements Outbox {
  private sends: SendRequest[] = [];
  private events: NodeEvent[] = [];
  /** Per destination: the last sequence number sent (see OutgoingSequences). */
  private readonly sequences: OutgoingSequences;

  constructor(
    private readonly config: OutboxConfig,
    private readonly host: OutboxHost,
    private readonly counters: OutboxCounters,
  ) {
    // Two streams per peer (direct, anyone) and the unaddressed ones.
    this.sequences = new OutgoingSequences(2 * config.peersMax + 2);
  }

  emit(event: NodeEvent): void {
    if (this.events.length < EVENTS_MAX) this.events.push(event);
  }

  send(to: Endpoint, body: FrameBody): void {
    if (this.sends.length >= OUTBOX_FRAMES_MAX) {
      this.counters.framesDroppedOutboxFull += 1;
      if (this.counters.framesDroppedOutboxFull === 1) this.emit({ kind: 'outbox-full' });
      return;
    }
    // Addressed to the peer at that endpoint if we know it, in the run we last heard from, with
    // that destination's own sequence (never reset during our run: see replay-window.ts).
    const { toId, toBoot } = this.host.addressOf(to);
    const seq = this.sequences.next(toId, toBoot);
    const frame = {
      v: PROTOCOL_VERSION,
      cluster: this.config.cluster,
      from: this.config.nodeId,
      prio: this.config.priority,
      ...(this.host.clockClass ? { cls: this.host.clockClass } : {}),
      term: this.host.term,
      boot: this.config.bootId,
      seq,
      to: toId,
      toBoot,
      ...body,
    } as OutgoingFrame;
    this.sends.push({ to, frame });
    this.counters.framesSentByType[FRAME_TYPE_NAMES[body.type]] += 1;
  }

  sendTo(nodeId: NodeId, body: FrameBody): void {
    const endpoint = this.host.endpointOf(nodeId);
    if (endpoint) this.send(endpoint, body);
  }

  /** The frames and events queued since the last call, oldest first. */
  take(): { sends: SendRequest[]; events: NodeEvent[] } {
    const taken = { sends: this.sends, events: this.events };
    this.sends = [];
    this.events = [];
    return taken;
  }
}
