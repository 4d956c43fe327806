// What a sub-machine of the node (src/core/node.ts) may do to the world: send a frame and report
// an event. The node implements it once (addressing, sequence numbers, the outbox bound), so every
// sub-machine's output goes through the same queue in the order it was produced.
import type { FrameBody } from './frames.ts';
import type { NodeEvent } from './events.ts';
import type { Endpoint, NodeId } from './types.ts';

export interface Outbox {
  /** To a peer in the table by its id (nothing if the table does not hold it). */
  sendTo(nodeId: NodeId, body: FrameBody): void;
  /** To an endpoint (addressed to the peer there if the table knows it). */
  send(to: Endpoint, body: FrameBody): void;
  emit(event: NodeEvent): void;
}
