// The node's outbox alone (src/core/outbox.ts): every frame gets the sender's header, the current
// term and the address of the peer at its endpoint; each destination stream numbers its own frames;
// the queue is bounded (overflow counted, reported once); take() hands over in order and empties it.
import { describe, expect, it } from 'vitest';
import { FrameType } from '../../src/core/frames.ts';
import { EVENTS_MAX, OUTBOX_FRAMES_MAX, PROTOCOL_VERSION } from '../../src/core/limits.ts';
import { newNodeCounters } from '../../src/core/node-status.ts';
import { NodeOutbox } from '../../src/core/outbox.ts';
import { endpointKey, type Endpoint, type NodeId } from '../../src/core/types.ts';

const config = { nodeId: 'me', priority: 7, cluster: 'lab', bootId: 42, peersMax: 4 };
const known: Endpoint = { address: '198.18.0.2', port: 7412 };
const stranger: Endpoint = { address: '198.18.0.9', port: 7412 };

function outbox(term = { value: 3 }) {
  const counters = newNodeCounters();
  const peers = new Map<NodeId, { endpoint: Endpoint; boot: number }>([['peer', { endpoint: known, boot: 1234 }]]);
  const box = new NodeOutbox(
    config,
    {
      get term() {
        return term.value;
      },
      addressOf: (to) => {
        for (const [id, peer] of peers) if (endpointKey(peer.endpoint) === endpointKey(to)) return { toId: id, toBoot: peer.boot };
        return { toId: '', toBoot: 0 };
      },
      endpointOf: (nodeId) => peers.get(nodeId)?.endpoint,
    },
    counters,
  );
  return { box, counters, term };
}

describe('node outbox', () => {
  it('puts the header on every frame: sender, cluster, the term at sending, boot, addressee', () => {
    const { box, counters, term } = outbox();
    box.send(known, { type: FrameType.leave });
    term.value = 5;
    box.send(stranger, { type: FrameType.leave });
    const { sends } = box.take();
    expect(sends.map((send) => send.to)).toEqual([known, stranger]);
    expect(sends[0]!.frame).toEqual({ v: PROTOCOL_VERSION, cluster: 'lab', from: 'me', prio: 7, term: 3, boot: 42, seq: 1, to: 'peer', toBoot: 1234, type: FrameType.leave });
    // Nobody known there: unaddressed, its own stream.
    expect(sends[1]!.frame).toMatchObject({ term: 5, to: '', toBoot: 0, seq: 1 });
    expect(counters.framesSentByType.leave).toBe(2);
  });

  it('numbers each destination stream on its own, from 1', () => {
    const { box } = outbox();
    box.send(known, { type: FrameType.leave });
    box.send(stranger, { type: FrameType.leave });
    box.send(known, { type: FrameType.leave });
    box.sendTo('peer', { type: FrameType.leave });
    expect(box.take().sends.map((send) => `${send.frame.to}#${send.frame.seq}`)).toEqual(['peer#1', '#1', 'peer#2', 'peer#3']);
  });

  it('sendTo an id the table does not hold sends nothing', () => {
    const { box, counters } = outbox();
    box.sendTo('nobody', { type: FrameType.leave });
    expect(box.take().sends).toEqual([]);
    expect(counters.framesSentByType.leave).toBe(0);
  });

  it('is bounded: frames past OUTBOX_FRAMES_MAX are dropped, counted, and reported once', () => {
    const { box, counters } = outbox();
    for (let index = 0; index < OUTBOX_FRAMES_MAX + 5; index += 1) box.send(known, { type: FrameType.leave });
    const { sends, events } = box.take();
    expect(sends).toHaveLength(OUTBOX_FRAMES_MAX);
    expect(counters.framesDroppedOutboxFull).toBe(5);
    expect(events).toEqual([{ kind: 'outbox-full' }]);
    // Emptied by take(): room again.
    box.send(known, { type: FrameType.leave });
    expect(box.take().sends).toHaveLength(1);
  });

  it('keeps at most EVENTS_MAX events, in order, until taken', () => {
    const { box } = outbox();
    for (let index = 0; index < EVENTS_MAX + 3; index += 1) box.emit({ kind: 'peer-left', nodeId: `n${index}`, wasMaster: false });
    const { events } = box.take();
    expect(events).toHaveLength(EVENTS_MAX);
    expect(events[0]).toEqual({ kind: 'peer-left', nodeId: 'n0', wasMaster: false });
    expect(events.at(-1)).toEqual({ kind: 'peer-left', nodeId: `n${EVENTS_MAX - 1}`, wasMaster: false });
    expect(box.take()).toEqual({ sends: [], events: [] });
  });
});
