// The NTP server's socket (issue 17): answers NTPv3/v4 client requests with this agent's clock.
// The decisions are pure (src/ntp/): parsing, the reply, the per-client rate limit; this shell
// reads the stamps and moves the bytes.
//
// Stamps: the receive stamp is the kernel's arrival time of the datagram in hand where the kernel
// gives one (kernel-stamps.ts, as udp.ts does), moved into the served clock's terms by its age; the
// transmit stamp is read inside the reply's last step, right before send(), which calls sendto()
// at once (IPv4 literal destinations need no lookup). Node cannot read the kernel's transmit
// stamps, so there is no interleaved mode (chrony's xleave): it would only swap one user-space
// stamp for another taken after the send.
//
// IPv4 only, like the agent's UDP transport. A socket bound to 0.0.0.0 answers from the address
// the kernel routes by; on a box with several addresses on one network a client may see replies
// come from another address than it asked (ntpd binds one socket per address for this reason):
// bind the agent's interface address there.
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { buildServerReply, servesSynchronized, type ClockSnapshot } from '../ntp/server-reply.ts';
import { parseRequest, type NtpRejectReason } from '../ntp/packet.ts';
import { ClientRateLimiter, type ClientRateLimitOptions } from '../ntp/client-rate-limiter.ts';
import { arrivalNs, openKernelRxStamps, type KernelRxStamps } from './kernel-stamps.ts';
import { immediateLookup } from './udp.ts';

/** The clock served: read now, and what to announce about it (read once per request). */
export interface NtpServedClock {
  /** This agent's clock (kernel or virtual), Unix ns. */
  nowNs(): bigint;
  snapshot(): ClockSnapshot;
}

export interface NtpServerLogger {
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
}

export type NtpDropReason = NtpRejectReason | 'rateLimited' | 'sendError';

/** Counters the server increments; the caller may pass its own object (for status and metrics). */
export interface NtpServerCounters {
  /** Datagrams received. */
  requests: number;
  /** Replies handed to the kernel (synchronized and not). */
  replies: number;
  /** Of those, replies with leap indicator 3 (alarm): the clock was not synchronized. */
  repliesUnsynchronized: number;
  /** Requests answered although over the rate limit (one in 2^leak). */
  rateLimitLeaked: number;
  /** Requests not answered, by reason. */
  dropped: Record<NtpDropReason, number>;
  /** Receive stamps from the kernel, and from this process when the kernel had none. */
  rxStampedByKernel: number;
  rxStampedByUser: number;
}

export function newNtpServerCounters(): NtpServerCounters {
  return {
    requests: 0, replies: 0, repliesUnsynchronized: 0, rateLimitLeaked: 0,
    dropped: { short: 0, misaligned: 0, version: 0, mode: 0, rateLimited: 0, sendError: 0 },
    rxStampedByKernel: 0, rxStampedByUser: 0,
  };
}

export interface NtpServerOptions {
  /** UDP port; the caller treats --ntp-port 0 as "disabled" and does not call this. */
  port: number;
  /** Address to bind; default 0.0.0.0. */
  address?: string;
  clock: NtpServedClock;
  logger: NtpServerLogger;
  counters?: NtpServerCounters;
  /** Per-client rate limit (defaults from limits.ts); null turns it off. */
  rateLimit?: Partial<ClientRateLimitOptions> | null;
  /** Clients never rate-limited; default: loopback (the box's own chronyd, `now`-style tools). */
  rateLimitExempt?: (address: string) => boolean;
  /** Use the kernel's receive timestamps when available (default true). */
  kernelTimestamps?: boolean;
  /** Monotonic ms for the rate limiter (default performance.now). */
  monoMs?: () => number;
}

export interface NtpServer {
  /** The bound address and port (the real port when asked for 0). */
  readonly address: string;
  readonly port: number;
  readonly counters: NtpServerCounters;
  /** Where receive stamps come from, and why not the kernel when not. */
  readonly rxTimestamps: 'kernel' | 'user';
  readonly rxTimestampsWhyNot: string | null;
  close(): Promise<void>;
}

/** Binding failed: a warning for the operator, not a crash. EADDRINUSE and EACCES are the expected codes. */
export interface NtpServerNotStarted {
  ok: false;
  code: string;
  warning: string;
}

export type StartNtpServerResult = { ok: true; server: NtpServer } | NtpServerNotStarted;

const isLoopback = (address: string) => address.startsWith('127.');

/** Binds and starts answering; never throws for a bind failure (see NtpServerNotStarted). */
export function startNtpServer(options: NtpServerOptions): Promise<StartNtpServerResult> {
  const bindAddress = options.address ?? '0.0.0.0';
  const counters = options.counters ?? newNtpServerCounters();
  const monoMs = options.monoMs ?? (() => performance.now());
  const exempt = options.rateLimitExempt ?? isLoopback;
  const limiter = options.rateLimit === null ? null : new ClientRateLimiter(options.rateLimit ?? {});
  const socket = dgram.createSocket({ type: 'udp4', lookup: immediateLookup });
  let kernelStamps: KernelRxStamps | null = null;
  let closed = false;

  const onMessage = (bytes: Buffer, from: dgram.RemoteInfo): void => {
    const { rxNs, byKernel } = arrivalNs(kernelStamps, options.clock);
    if (byKernel) counters.rxStampedByKernel += 1;
    else counters.rxStampedByUser += 1;
    counters.requests += 1;
    const parsed = parseRequest(bytes);
    if (!parsed.ok) {
      counters.dropped[parsed.reason] += 1;
      return;
    }
    if (limiter !== null && !exempt(from.address)) {
      const decision = limiter.check(from.address, monoMs());
      if (decision === 'drop') {
        counters.dropped.rateLimited += 1;
        return;
      }
      if (decision === 'leak') counters.rateLimitLeaked += 1;
    }
    const snapshot = options.clock.snapshot();
    const reply = buildServerReply(parsed.request, rxNs, snapshot, () => options.clock.nowNs());
    try {
      socket.send(reply, from.port, from.address, (error) => {
        if (error) counters.dropped.sendError += 1;
      });
      counters.replies += 1;
      if (!servesSynchronized(snapshot)) counters.repliesUnsynchronized += 1;
    } catch {
      counters.dropped.sendError += 1;
    }
  };

  return new Promise((resolve) => {
    const onBindError = (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'EUNKNOWN';
      const why = code === 'EACCES' ? ' (binding a port below 1024 needs root or CAP_NET_BIND_SERVICE)'
        : code === 'EADDRINUSE' ? ' (another NTP server, chronyd or ntpd, may hold it)' : '';
      socket.close();
      resolve({ ok: false, code, warning: `NTP server not started: cannot bind ${bindAddress}:${options.port}: ${code}${why}` });
    };
    socket.once('error', onBindError);
    socket.bind({ address: bindAddress, port: options.port, exclusive: true }, () => {
      socket.off('error', onBindError);
      socket.on('error', (error) => options.logger.warn({ err: error }, 'NTP server socket error'));
      let rxTimestamps: 'kernel' | 'user' = 'user';
      let rxTimestampsWhyNot: string | null = null;
      if (options.kernelTimestamps ?? true) {
        const opened = openKernelRxStamps(socket);
        if ('error' in opened) {
          rxTimestampsWhyNot = opened.error;
        } else {
          kernelStamps = opened;
          rxTimestamps = 'kernel';
        }
      }
      socket.on('message', onMessage);
      const bound = socket.address();
      options.logger.info({ address: bound.address, port: bound.port, rxTimestamps }, 'NTP server listening');
      resolve({
        ok: true,
        server: {
          address: bound.address,
          port: bound.port,
          counters,
          rxTimestamps,
          rxTimestampsWhyNot,
          close(): Promise<void> {
            if (closed) return Promise.resolve();
            closed = true;
            return new Promise((done) => socket.close(() => done()));
          },
        },
      });
    });
  });
}
