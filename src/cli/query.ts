// `query HOST:PORT`: Cristian's algorithm as a one-shot tool. Sends a few time queries to an
// agent, keeps the sample with the smallest round trip (its offset has the least error bound),
// and reports the agent's clock against this host's system clock.
import dgram from 'node:dgram';
import { HostClock } from '../clock/host.ts';
import { FrameType, type Frame } from '../core/frames.ts';
import { CLUSTER_DEFAULT, PROTOCOL_VERSION } from '../core/limits.ts';
import { sampleFromTimestamps, type ClockSample } from '../core/sync/berkeley.ts';
import { decodeFrame, encodeFrame } from '../wire/codec.ts';
import type { FrameAuth } from '../wire/auth.ts';

/** Time queries are answered by any agent without replay checks; the header fields are still required. */
const BOOT_ID = Date.now();

export interface QueryResult {
  target: string;
  samplesSent: number;
  samplesReceived: number;
  /** Remote agent clock minus this host's clock, from the lowest-delay sample. */
  offsetNs: number;
  /** Round trip of that sample, excluding the agent's processing time. */
  rttNs: number;
  /** Half the round trip: the offset is within this of the truth if paths are symmetric. */
  errorBoundNs: number;
  remoteNodeId: string;
  remoteTerm: number;
}

export class QueryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function queryAgent(target: { address: string; port: number }, options: { samples: number; intervalMs: number; timeoutMs: number; auth?: FrameAuth | null }): Promise<QueryResult> {
  const auth = options.auth ?? null;
  const hostClock = new HostClock();
  const socket = dgram.createSocket('udp4');
  const sentAt = new Map<number, bigint>();
  let best: (ClockSample & { nodeId: string; term: number }) | null = null;
  let received = 0;
  let socketError: Error | null = null;
  socket.on('error', (error) => {
    socketError = error;
  });
  socket.on('message', (bytes, info) => {
    const rxNs = hostClock.nowNs();
    const opened = auth === null ? null : auth.open(bytes);
    if (opened !== null && !opened.ok) return;
    const decoded = decodeFrame(opened === null ? bytes : opened.frame);
    if (!decoded.ok || decoded.frame.type !== FrameType.timeAnswer) return;
    if (info.address !== target.address || info.port !== target.port) return;
    const answer = decoded.frame;
    // Only an answer that echoes a query we sent counts (and only once).
    const t1 = sentAt.get(answer.queryId);
    if (t1 === undefined || t1 !== answer.queryTxNs) return;
    sentAt.delete(answer.queryId);
    received += 1;
    const sample = sampleFromTimestamps(t1, answer.rxNs, answer.txNs, rxNs);
    if (sample.delayNs >= 0 && (best === null || sample.delayNs < best.delayNs)) best = { ...sample, nodeId: answer.from, term: answer.term };
  });
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  try {
    for (let queryId = 1; queryId <= options.samples; queryId += 1) {
      const txNs = hostClock.nowNs();
      const frame: Frame = { v: PROTOCOL_VERSION, cluster: CLUSTER_DEFAULT, from: `query-${process.pid}`, prio: 0, term: 0, boot: BOOT_ID, seq: queryId + 1, to: '', toBoot: 0, txNs, type: FrameType.timeQuery, queryId };
      sentAt.set(queryId, txNs);
      const encoded = encodeFrame(frame);
      socket.send(auth === null ? encoded : auth.seal(encoded), target.port, target.address);
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
      if (received === options.samples) break;
    }
    const deadline = Date.now() + options.timeoutMs;
    while (received < options.samples && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    socket.close();
  }
  const chosen = best as (ClockSample & { nodeId: string; term: number }) | null;
  if (socketError) throw new QueryError((socketError as NodeJS.ErrnoException).code ?? 'EUDP', `query ${target.address}:${target.port}: ${(socketError as Error).message}`);
  if (chosen === null) {
    // An agent with a cluster key drops unsigned queries without a word: say so, not only "wrong port".
    const hint = auth === null ? 'is an agent listening on that UDP port? An agent with a cluster key answers only queries signed with it: give --key-file' : 'is an agent listening on that UDP port, with one of these keys?';
    throw new QueryError('ETIMEDOUT', `query ${target.address}:${target.port}: no answer to ${options.samples} queries (${hint})`);
  }
  return {
    target: `${target.address}:${target.port}`,
    samplesSent: options.samples,
    samplesReceived: received,
    offsetNs: Math.round(chosen.offsetNs),
    rttNs: Math.round(chosen.delayNs),
    errorBoundNs: Math.round(chosen.delayNs / 2),
    remoteNodeId: chosen.nodeId,
    remoteTerm: chosen.term,
  };
}
