// UDP transport. Each datagram is timestamped the moment its 'message' event runs, before any
// decoding, so parse time does not leak into the measured offsets. (Node cannot reach kernel
// receive timestamps; the remaining error is the event loop's latency between the kernel queueing
// the datagram and this callback, typically tens of microseconds on an idle agent.)
import dgram from 'node:dgram';
import type { Endpoint } from '../core/types.ts';
import type { HostClock } from '../clock/host.ts';

export interface Datagram {
  bytes: Buffer;
  from: Endpoint;
  /** Host clock at arrival, in ns. */
  rxHostNs: bigint;
  /** Monotonic ms at arrival. */
  rxMonoMs: number;
}

export interface UdpTransportOptions {
  bindAddress: string;
  /** 0 picks any free port. */
  port: number;
  hostClock: HostClock;
  onDatagram(datagram: Datagram): void;
  onError(error: Error): void;
}

export class UdpTransport {
  private readonly socket: dgram.Socket;
  private readonly options: UdpTransportOptions;
  private closed = false;
  /** Datagrams handed to the socket whose send has not completed yet. */
  private inFlight = 0;
  private drained: (() => void) | null = null;
  sendErrors = 0;

  constructor(options: UdpTransportOptions) {
    this.options = options;
    this.socket = dgram.createSocket({ type: 'udp4' });
    this.socket.on('message', (bytes, info) => {
      const rxHostNs = options.hostClock.nowNs();
      const rxMonoMs = options.hostClock.monoMs();
      options.onDatagram({ bytes, from: { address: info.address, port: info.port }, rxHostNs, rxMonoMs });
    });
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

  send(bytes: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    this.inFlight += 1;
    this.socket.send(bytes, to.port, to.address, (error) => {
      this.inFlight -= 1;
      if (this.inFlight === 0) this.drained?.();
      if (error) {
        this.sendErrors += 1;
        this.options.onError(error);
      }
    });
  }

  /** Resolves once every datagram handed to send() has left (or after `timeoutMs`). */
  flush(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
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
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
