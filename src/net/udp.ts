// UDP transport, with timestamps taken as close to the socket as Node allows.
//
// Receive: libuv reads the datagrams waiting on the socket one after another and runs the
// 'message' handler for each before reading the next, so a datagram queued behind others would be
// stamped only after they were all processed (tens of microseconds each). The handler here only
// stamps and queues; the batch is processed once the read loop is done (setImmediate). A datagram
// is then stamped within a few microseconds of being read, not after its predecessors' work.
//
// Send: dgram.send() resolves the address on the next tick and calls sendto() there, after
// whatever else the current tick does. So frames are stamped (and encoded) only when it is their
// turn: one at a time, each right before its own send, the next when the previous one has been
// handed to the kernel. What remains between stamp and wire is the same short, constant path on
// both sides (encode, one tick, the syscall), and a constant error on both ends of a round trip
// cancels in the offset.
//
// What is left, and why Node cannot do better: the stamps are user-space readings, not the kernel's
// SO_TIMESTAMPING ones chrony uses. A process that was idle wakes up ~100-400 us late on this VM,
// and a busy event loop delays a read; both add to one direction of one probe only, which is why a
// round sends a burst of probes and keeps the lowest-delay one.
import dgram from 'node:dgram';
import type { Endpoint } from '../core/types.ts';
import type { HostClock } from '../clock/host.ts';

export interface Datagram {
  bytes: Buffer;
  from: Endpoint;
  /** Host clock when the datagram was read from the socket, in ns. */
  rxHostNs: bigint;
  /** Monotonic ms at the same moment. */
  rxMonoMs: number;
}

export interface UdpTransportOptions {
  bindAddress: string;
  /** 0 picks any free port. */
  port: number;
  hostClock: HostClock;
  /** A batch of datagrams read together, in arrival order. */
  onDatagrams(datagrams: Datagram[]): void;
  onError(error: Error): void;
}

interface PendingSend {
  to: Endpoint;
  /** Stamps and encodes the frame; called right before it is sent. */
  encode(): Uint8Array;
}

export class UdpTransport {
  private readonly socket: dgram.Socket;
  private readonly options: UdpTransportOptions;
  private closed = false;
  private received: Datagram[] = [];
  private readonly outbox: PendingSend[] = [];
  /** A frame has been handed to dgram and its callback has not run yet. */
  private sending = false;
  private drained: (() => void) | null = null;
  sendErrors = 0;

  constructor(options: UdpTransportOptions) {
    this.options = options;
    this.socket = dgram.createSocket({ type: 'udp4' });
    this.socket.on('message', (bytes, info) => {
      const rxHostNs = options.hostClock.nowNs();
      const rxMonoMs = options.hostClock.monoMs();
      if (this.received.push({ bytes, from: { address: info.address, port: info.port }, rxHostNs, rxMonoMs }) === 1) setImmediate(() => this.deliver());
    });
  }

  private deliver(): void {
    const batch = this.received;
    this.received = [];
    if (!this.closed && batch.length > 0) this.options.onDatagrams(batch);
  }

  /** Binds; resolves with the bound endpoint (the real port when asked for 0). */
  start(): Promise<Endpoint> {
    return new Promise((resolve, reject) => {
      const onBindError = (error: Error) => reject(error);
      this.socket.once('error', onBindError);
      this.socket.bind({ address: this.options.bindAddress, port: this.options.port, exclusive: true }, () => {
        this.socket.off('error', onBindError);
        this.socket.on('error', (error) => this.options.onError(error));
        const bound = this.socket.address();
        resolve({ address: bound.address, port: bound.port });
      });
    });
  }

  /** Queues a frame; `encode` runs (and should take its transmit stamp) right before its send. */
  send(to: Endpoint, encode: () => Uint8Array): void {
    if (this.closed) return;
    this.outbox.push({ to, encode });
    // Never send from inside the caller's work: start on the next tick, like every later frame.
    if (this.outbox.length === 1 && !this.sending) process.nextTick(() => this.sendNext());
  }

  private sendNext(): void {
    const next = this.outbox.shift();
    if (next === undefined || this.closed) {
      this.outbox.length = 0;
      this.sending = false;
      this.drained?.();
      return;
    }
    this.sending = true;
    try {
      this.socket.send(next.encode(), next.to.port, next.to.address, (error) => {
        if (error) {
          this.sendErrors += 1;
          this.options.onError(error);
        }
        this.sendNext();
      });
    } catch (error) {
      // A synchronous throw (socket closed under us, a bad address): count it and go on.
      this.sendErrors += 1;
      this.options.onError(error as Error);
      process.nextTick(() => this.sendNext());
    }
  }

  /** Resolves once every queued frame has left (or after `timeoutMs`). */
  flush(timeoutMs: number): Promise<void> {
    if (!this.sending && this.outbox.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.drained = done;
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.outbox.length = 0;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
