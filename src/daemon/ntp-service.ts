// The agent's NTP server (--ntp-port, issue 17): one socket on the agent's own address and one on
// 127.0.0.1 (the box's chronyd asks `server 127.0.0.1 port N`), or a single one when the agent
// binds 0.0.0.0. It serves the agent's own clock (kernel or virtual) and announces what the node
// knows (synchronized, role, the master's address, the error bound). A port that cannot be bound
// (EACCES without CAP_NET_BIND_SERVICE, EADDRINUSE beside chronyd) is a warning, never a failure
// to start: status says whether the server is serving and why not.
import type { Logger } from 'pino';
import { newNtpServerCounters, startNtpServer, type NtpServer, type NtpServerCounters } from '../net/ntp-server.ts';
import { ntpClockSnapshot, type ClockSnapshot } from '../ntp/server-reply.ts';
import type { TimeReading } from './agent.ts';

export interface NtpServiceOptions {
  /** --ntp-port; 0: disabled (nothing is bound). */
  port: number;
  /** The agent's bind address (--bind / --interface address, or 0.0.0.0). */
  bindAddress: string;
  kernelTimestamps: boolean;
  logger: Logger;
  /** The agent's clock now, Unix ns. */
  nowNs(): bigint;
  /** The agent's clock and what is known about it, now. */
  reading(): TimeReading;
}

/** status.ntp (README "Status fields"). */
export interface NtpReport {
  /** --ntp-port (0: disabled). */
  port: number;
  /** At least one socket is answering. */
  serving: boolean;
  /** The addresses answering ("ADDRESS:PORT"). */
  addresses: string[];
  /** null when every address is served; else why not (disabled, or a bind failure per address). */
  why: string | null;
  /** Where receive stamps come from ('kernel' or 'user'); null when not serving. */
  rxTimestamps: 'kernel' | 'user' | null;
  counters: {
    requests: number;
    replies: number;
    repliesUnsynchronized: number;
    rateLimited: number;
    rateLimitLeaked: number;
    /** Requests not answered, all reasons (malformed, wrong mode or version, rate-limited, send error). */
    dropped: number;
    droppedByReason: Record<string, number>;
    rxStampedByKernel: number;
    rxStampedByUser: number;
  };
}

/** The addresses to bind for `bindAddress`: one socket for the wildcard, else it and loopback. */
export function ntpAddresses(bindAddress: string): string[] {
  if (bindAddress === '0.0.0.0') return ['0.0.0.0'];
  return bindAddress === '127.0.0.1' ? ['127.0.0.1'] : [bindAddress, '127.0.0.1'];
}

/** What the NTP server announces for one reading (src/ntp/server-reply.ts). */
export function snapshotOf(reading: TimeReading): ClockSnapshot {
  return ntpClockSnapshot({
    synchronized: reading.synchronized,
    role: reading.role,
    masterAddress: reading.masterAddress,
    errorBoundNs: reading.errorBoundNs,
    measurementDelayNs: reading.measurementDelayNs,
    lastCorrectionNs: reading.lastCorrectionNs,
    upstream: reading.upstream === null ? null : { ...reading.upstream, peerAddress: reading.upstreamPeerAddress },
  });
}

export class NtpService {
  private readonly servers: NtpServer[] = [];
  private readonly failures: string[] = [];
  /** Shared by every socket: status and metrics show the server's totals. */
  readonly counters: NtpServerCounters = newNtpServerCounters();

  constructor(private readonly options: NtpServiceOptions) {}

  /** Binds what it can; never throws for a port that cannot be bound (a warning in the log). */
  async start(): Promise<void> {
    const { port, logger } = this.options;
    if (port === 0) return;
    for (const address of ntpAddresses(this.options.bindAddress)) {
      const started = await startNtpServer({
        port,
        address,
        logger,
        counters: this.counters,
        kernelTimestamps: this.options.kernelTimestamps,
        clock: { nowNs: () => this.options.nowNs(), snapshot: () => snapshotOf(this.options.reading()) },
      });
      if (started.ok) {
        this.servers.push(started.server);
      } else {
        this.failures.push(`${address}:${port}: ${started.code}`);
        logger.warn({ code: started.code, address, port }, `${started.warning}; the agent runs on without it (see --ntp-port)`);
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.close()));
    this.servers.length = 0;
  }

  report(): NtpReport {
    const { port } = this.options;
    const counters = this.counters;
    const dropped = Object.values(counters.dropped).reduce((sum, count) => sum + count, 0);
    let why: string | null = null;
    if (port === 0) why = 'disabled (--ntp-port 0)';
    else if (this.failures.length > 0) {
      const hint = this.failures.some((failure) => failure.endsWith('EACCES')) ? ' (a port below 1024 needs root or CAP_NET_BIND_SERVICE)'
        : this.failures.some((failure) => failure.endsWith('EADDRINUSE')) ? ' (another NTP server holds the port?)' : '';
      why = `cannot bind ${this.failures.join(', ')}${hint}`;
    }
    return {
      port,
      serving: this.servers.length > 0,
      addresses: this.servers.map((server) => `${server.address}:${server.port}`),
      why,
      rxTimestamps: this.servers.length === 0 ? null : this.servers.every((server) => server.rxTimestamps === 'kernel') ? 'kernel' : 'user',
      counters: {
        requests: counters.requests,
        replies: counters.replies,
        repliesUnsynchronized: counters.repliesUnsynchronized,
        rateLimited: counters.dropped.rateLimited,
        rateLimitLeaked: counters.rateLimitLeaked,
        dropped,
        droppedByReason: { ...counters.dropped },
        rxStampedByKernel: counters.rxStampedByKernel,
        rxStampedByUser: counters.rxStampedByUser,
      },
    };
  }
}
