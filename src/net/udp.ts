// UDP transport, with timestamps taken as close to the socket as Node allows.
//
// Receive: libuv reads the datagrams waiting on the socket one after another and runs the
// 'message' handler for each before reading the next, so a datagram queued behind others would be
// stamped only after they were all processed (tens of microseconds each). The handler here only
// stamps and queues; the batch is processed once the read loop is done (setImmediate). A datagram
// is then stamped within a few microseconds of being read, not after its predecessors' work.
//
// Send: frames are stamped (and encoded) only when it is their turn: one at a time, each right
// before its own send, the next when the previous one has been handed to the kernel. The address
// lookup answers at once (immediateLookup), so dgram calls sendto() inside send() itself. What
// remains between stamp and wire (encode, the syscall) is short and the same on both ends of a
// round trip, so it cancels in the offset.
//
// Receive stamps come from the kernel where it can (kernel-stamps.ts: the arrival time of the
// datagram in hand, by ioctl SIOCGSTAMPNS), which takes the process's wake-up and event-loop
// latency (75-190 us on this VM) out of them; otherwise they are user-space readings, late by
// that latency. Transmit stamps stay user-space readings taken right before the send (Node cannot
// read the kernel's transmit stamps): the short path after them is about the same on both ends.
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import type { Endpoint } from '../core/types.ts';
import type { HostClock } from '../clock/host.ts';
import { arrivalNs, openKernelRxStamps, type KernelRxStamps } from './kernel-stamps.ts';

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
  /** Use the kernel's receive timestamps when available (default true). */
  kernelTimestamps?: boolean;
}

interface PendingSend {
  to: Endpoint;
  /** Stamps and encodes the frame; called right before it is sent. */
  encode(): Uint8Array;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string, family: number) => void;

/** dgram's address lookup: IPv4 literals at once, anything else through the resolver. */
export function immediateLookup(hostname: string, options: unknown, callback?: LookupCallback): void {
  const done = (typeof options === 'function' ? options : callback) as LookupCallback;
  if (isIPv4(hostname)) done(null, hostname, 4);
  else dns.lookup(hostname, { family: 4 }, (error, address, family) => done(error, address, family));
}

export class UdpTransport {
  private readonly socket: dgram.Socket;
  private readonly options: UdpTransportOptions;
  private closed = false;
  private received: Datagram[] = [];
  private readonly outbox: PendingSend[] = [];
  /** A frame has been handed to dgram and its callback has not run yet. */
  private sending = false;
  /** flush() callers waiting for the outbox to empty. */
  private drainWaiters: (() => void)[] = [];
  sendErrors = 0;
  /** Where receive stamps come from: the kernel, or this process (fallback, or turned off). */
  rxTimestamps: 'kernel' | 'user' = 'user';
  /** Why kernel stamps are not used (null when they are, or were not asked for). */
  rxTimestampsWhyNot: string | null = null;
  /** Datagrams stamped by the kernel and, when it had no usable stamp, by this process. */
  rxStampedByKernel = 0;
  rxStampedByUser = 0;
  private kernelStamps: KernelRxStamps | null = null;

  constructor(options: UdpTransportOptions) {
    this.options = options;
    // Our destinations are IPv4 literals: answering the address lookup at once lets dgram call
    // sendto() inside send(), right after the transmit stamp, instead of a tick later (measured:
    // stamp to kernel arrival on loopback p50 40-51 us instead of 54-73 us).
    this.socket = dgram.createSocket({ type: 'udp4', lookup: immediateLookup });
    this.socket.on('message', (bytes, info) => {
      // The kernel's stamp of this very datagram, in the host clock's terms.
      const { rxNs: rxHostNs, byKernel } = arrivalNs(this.kernelStamps, options.hostClock);
      const rxMonoMs = options.hostClock.monoMs();
      if (byKernel) this.rxStampedByKernel += 1;
      else this.rxStampedByUser += 1;
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
        if (this.options.kernelTimestamps ?? true) {
          const opened = openKernelRxStamps(this.socket);
          if ('error' in opened) {
            this.rxTimestampsWhyNot = opened.error;
          } else {
            this.kernelStamps = opened;
            this.rxTimestamps = 'kernel';
          }
        }
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
      for (const waiter of this.drainWaiters.splice(0)) waiter();
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
      this.drainWaiters.push(done);
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.outbox.length = 0;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
