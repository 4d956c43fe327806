// Helpers for the barrier tests: frame builders, a table driver that plays agents by hand, and the
// wire check (msgpack with the codec's options, then the zod shapes with the codec's header).
import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import {
  BARRIER_BODY_SHAPES,
  BarrierFrameType,
  type BarrierAckBody,
  type BarrierBody,
  type BarrierJoinBody,
  type BarrierReleaseBody,
  type BarrierSend,
} from '../../src/core/barrier/frames.ts';
import { BarrierTable, type BarrierTableLimits } from '../../src/core/barrier/table.ts';
import { CLUSTER_BYTES_MAX, COUNTER_MAX, NODE_ID_BYTES_MAX, PRIORITY_MAX, PROTOCOL_VERSION, TIMESTAMP_NS_MAX } from '../../src/core/limits.ts';
import { decodeFrame, encodeFrame } from '../../src/wire/codec.ts';
import type { Frame } from '../../src/core/frames.ts';
import { SeededRandom } from '../../src/sim/random.ts';

export function joinBody(
  name: string,
  requestId: number,
  options: { count?: number | null; errorCode?: number; generation?: number | null } = {},
): BarrierJoinBody {
  return {
    type: BarrierFrameType.barrierJoin,
    name,
    requestId,
    count: options.count ?? null,
    errorCode: options.errorCode ?? 0,
    generation: options.generation ?? null,
  };
}

export const acksIn = (sends: readonly BarrierSend[]): (BarrierAckBody & { to: string })[] =>
  sends.flatMap((send) => (send.body.type === BarrierFrameType.barrierAck ? [{ ...send.body, to: send.to }] : []));

export const releasesIn = (sends: readonly BarrierSend[]): (BarrierReleaseBody & { to: string })[] =>
  sends.flatMap((send) => (send.body.type === BarrierFrameType.barrierRelease ? [{ ...send.body, to: send.to }] : []));

/** `node:requestId` for every participant released in `sends`. */
export const releasedIds = (sends: readonly BarrierSend[]): string[] =>
  releasesIn(sends)
    .flatMap((release) => release.requestIds.map((id) => `${release.to}:${id}`))
    .sort();

/** Drives a BarrierTable the way agents would, by hand; `nowMs` advances only when told. */
export class TableDriver {
  readonly table: BarrierTable;
  nowMs = 1000;

  constructor(limits: Partial<BarrierTableLimits> = {}, seed = 1) {
    const random = new SeededRandom(seed);
    this.table = new BarrierTable({ random: () => random.next(), limits });
  }

  deliver(from: string, body: BarrierBody): BarrierSend[] {
    this.table.deliver(from, body, this.nowMs);
    return this.table.drain();
  }

  /** A join; returns the frames the table answered with. */
  join(from: string, name: string, requestId: number, options: Parameters<typeof joinBody>[2] = {}): BarrierSend[] {
    return this.deliver(from, joinBody(name, requestId, options));
  }

  /** Join, then confirm with the generation the ack carried (what a BarrierClient does). */
  participate(from: string, name: string, requestId: number, options: { count?: number | null; errorCode?: number } = {}): BarrierSend[] {
    const first = this.join(from, name, requestId, options);
    const ack = acksIn(first).find((a) => a.requestId === requestId && a.to === from);
    if (ack === undefined || ack.generation === null) return first;
    return [...first, ...this.join(from, name, requestId, { ...options, generation: ack.generation })];
  }

  advance(ms: number): BarrierSend[] {
    const endMs = this.nowMs + ms;
    const sends: BarrierSend[] = [];
    for (;;) {
      const deadline = this.table.nextDeadlineMs();
      if (deadline === null || deadline > endMs) break;
      this.nowMs = Math.max(this.nowMs, deadline);
      this.table.tick(this.nowMs);
      sends.push(...this.table.drain());
    }
    this.nowMs = endMs;
    return sends;
  }

  openBarrier(name: string) {
    return this.table.status(this.nowMs).open.find((barrier) => barrier.name === name);
  }
}

/** The largest header a frame can carry (64-byte cluster and ids, the largest numbers). */
export const worstHeader = {
  v: PROTOCOL_VERSION,
  cluster: 'c'.repeat(CLUSTER_BYTES_MAX),
  from: 'n'.repeat(NODE_ID_BYTES_MAX),
  prio: PRIORITY_MAX,
  term: COUNTER_MAX,
  boot: COUNTER_MAX,
  seq: COUNTER_MAX,
  to: 't'.repeat(NODE_ID_BYTES_MAX),
  toBoot: COUNTER_MAX,
  txNs: TIMESTAMP_NS_MAX,
};

/** Encodes a barrier body with a header through the real codec (which checks the size). */
export function encodeBarrier(body: BarrierBody, frameHeader: Partial<typeof worstHeader> = {}): Uint8Array {
  return encodeFrame({ ...worstHeader, ...frameHeader, ...body } as Frame);
}

/** Decodes through the real codec: the body, or why it was refused. */
export function decodeBarrier(bytes: Uint8Array): { ok: true; body: BarrierBody } | { ok: false; error: string } {
  const decoded = decodeFrame(bytes);
  if (!decoded.ok) return { ok: false, error: `${decoded.reason}: ${decoded.detail}` };
  const { v: _v, cluster: _c, from: _f, prio: _p, term: _t, boot: _b, seq: _s, to: _to, toBoot: _tb, txNs: _x, ...body } = decoded.frame as Frame & BarrierBody;
  return { ok: true, body: body as BarrierBody };
}
