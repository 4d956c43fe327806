// The NTP client's socket (issue 18): polls the upstream servers of --upstream and feeds their
// replies to the pure per-server client (src/ntp/client.ts); selection among them is
// src/ntp/selection.ts. One IPv4 socket on an ephemeral port for all servers; a reply counts only
// from the address and port its server was asked at.
//
// Stamps, as the NTP server's socket takes them (ntp-server.ts): the transmit stamp is read inside
// the request's last step, right before send(), which calls sendto() at once (the destination is
// an IPv4 literal by then: immediateLookup); the receive stamp is the kernel's arrival time of the
// datagram in hand where the kernel gives one (kernel-stamps.ts), moved into the clock's terms by
// its age, else this process's reading.
//
// The transmit stamp is still read before send(), and the first send() after an idle second is
// slow on this VM (about 110 us at the median, against 5 us for the next one: cold caches, the
// syscall path): the request leaves late, and the offset comes out too high by about half of that
// (+64 us median against chronyd between namespaces). So right before each request the socket
// sends an empty datagram to itself (loopback, or the address it is bound to; it is recognized and
// dropped on arrival): the real send() then runs warm, and the bias fell to +28 us median
// (npm run bench:ntp-client). Node cannot read kernel transmit stamps, which would remove it.
//
// Names are resolved once with dns.lookup (IPv4), and again every UPSTREAM_RESOLVE_RETRY_MS while
// that fails; a server is never resolved again once it answered (ntpd and chrony do the same,
// short of their pool handling).
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { UPSTREAM_RESOLVE_RETRY_MS, UPSTREAMS_MAX } from '../core/limits.ts';
import { UpstreamClient, type ReplyRejectReason, type UpstreamCandidate, type UpstreamClientOptions, type UpstreamSample, type UpstreamState } from '../ntp/client.ts';
import { selectUpstreams, type SelectionResult } from '../ntp/selection.ts';
import type { NtpLeapIndicator } from '../ntp/packet.ts';
import { arrivalNs, openKernelRxStamps, type KernelRxStamps } from './kernel-stamps.ts';
import { immediateLookup } from './udp.ts';

export interface UpstreamServerAddress {
  /** Host name or IPv4 address (src/ntp/upstream-address.ts parses --upstream). */
  host: string;
  port: number;
}

export interface UpstreamsLogger {
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
}

export interface UpstreamsOptions {
  servers: readonly UpstreamServerAddress[];
  /**
   * The clock measured against the servers: this agent's clock (kernel or virtual), Unix ns, and
   * what it still has to slew (a driver's state().slewRemainingNs; absent: nothing).
   */
  clock: { nowNs(): bigint; slewRemainingNs?(): number };
  /** Monotonic ms (default performance.now). */
  monoMs?: () => number;
  logger: UpstreamsLogger;
  /** Steady poll interval, ms (default UPSTREAM_POLL_INTERVAL_MS_DEFAULT); the rest of the client's options in `client`. */
  pollIntervalMs?: number;
  client?: Partial<UpstreamClientOptions>;
  /** Use the kernel's receive timestamps when available (default true). */
  kernelTimestamps?: boolean;
  /** Address to bind the client socket to (default 0.0.0.0, port 0). */
  bindAddress?: string;
  /** Send an empty datagram to ourselves on loopback right before each request (default true; see the top of the file). */
  warmUpSend?: boolean;
  /** Called for every sample taken (server id, sample), e.g. to act on a new selection at once. */
  onSample?(id: string, sample: UpstreamSample): void;
}

/** One server, for `status` (JSON-safe apart from nothing: all numbers and strings). */
export interface UpstreamServerStatus {
  /** HOST:PORT as configured; the id used by selection(). */
  id: string;
  host: string;
  port: number;
  /** The IPv4 address asked; null until the name resolved. */
  address: string | null;
  /** `resolving`: the name did not resolve (yet); otherwise the client's state. */
  state: UpstreamState | 'resolving';
  reachable: boolean;
  /** The 8-bit reach register. */
  reach: number;
  stratum: number | null;
  leap: NtpLeapIndicator | null;
  /** Server minus this agent's clock, ns (positive: the server is ahead); from the filter's least-delay sample. */
  offsetNs: number | null;
  delayNs: number | null;
  jitterNs: number | null;
  rootDelayNs: number | null;
  rootDispersionNs: number | null;
  rootDistanceNs: number | null;
  lastSampleAgoMs: number | null;
  pollIntervalMs: number;
  /** Why the last reply gave no sample (null after a good one). */
  lastRejectReason: ReplyRejectReason | null;
  kissCode: string | null;
  /** Why the name does not resolve, while it does not. */
  resolveError: string | null;
  requests: number;
  replies: number;
  samples: number;
}

export interface UpstreamsCounters {
  /** Datagrams from an address and port that is none of our servers'. */
  unknownSource: number;
  sendErrors: number;
  rxStampedByKernel: number;
  rxStampedByUser: number;
}

export interface Upstreams {
  /** One entry per configured server, in the configured order. */
  status(): UpstreamServerStatus[];
  /** Selection among the servers now (src/ntp/selection.ts). */
  selection(): SelectionResult;
  /** Per server id, when its filter's choice was taken (monotonic ms): what an estimate rests on. */
  chosenSamples(): Map<string, number>;
  /**
   * This agent's clock was moved by `deltaNs` (positive: forward), a step or the amount of a slew:
   * the kept samples follow (UpstreamClient.clockAdjusted). Call it with every correction applied
   * to the clock that `clock.nowNs()` reads.
   */
  clockAdjusted(deltaNs: number): void;
  readonly counters: UpstreamsCounters;
  /** Where receive stamps come from, and why not the kernel when not. */
  readonly rxTimestamps: 'kernel' | 'user';
  readonly rxTimestampsWhyNot: string | null;
  close(): Promise<void>;
}

const WARM_UP_BYTES = new Uint8Array(0);

interface Server {
  id: string;
  config: UpstreamServerAddress;
  client: UpstreamClient;
  address: string | null;
  resolveError: string | null;
  timer: NodeJS.Timeout | null;
  wasReachable: boolean;
}

/** Binds the client socket and starts polling every server. Rejects only if the socket cannot be bound. */
export async function startUpstreams(options: UpstreamsOptions): Promise<Upstreams> {
  if (options.servers.length > UPSTREAMS_MAX) throw new RangeError(`at most ${UPSTREAMS_MAX} upstream servers, got ${options.servers.length}`);
  const monoMs = options.monoMs ?? (() => performance.now());
  const clientOptions: Partial<UpstreamClientOptions> = { ...options.client, ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }) };
  const servers: Server[] = options.servers.map((config) => ({
    id: `${config.host}:${config.port}`, config, client: new UpstreamClient(clientOptions),
    address: isIPv4(config.host) ? config.host : null, resolveError: null, timer: null, wasReachable: false,
  }));
  const counters: UpstreamsCounters = { unknownSource: 0, sendErrors: 0, rxStampedByKernel: 0, rxStampedByUser: 0 };
  const socket = dgram.createSocket({ type: 'udp4', lookup: immediateLookup });
  let kernelStamps: KernelRxStamps | null = null;
  let closed = false;

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: options.bindAddress ?? '0.0.0.0', port: 0 }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', (error) => options.logger.warn({ err: error }, 'NTP client socket error'));
  const ownPort = socket.address().port;
  const warmUp = options.warmUpSend ?? true;
  const bound = socket.address().address;
  const warmUpAddress = bound === '0.0.0.0' ? '127.0.0.1' : bound;
  let rxTimestamps: 'kernel' | 'user' = 'user';
  let rxTimestampsWhyNot: string | null = null;
  if (options.kernelTimestamps ?? true) {
    const opened = openKernelRxStamps(socket);
    if ('error' in opened) rxTimestampsWhyNot = opened.error;
    else {
      kernelStamps = opened;
      rxTimestamps = 'kernel';
    }
  }

  const noteReachability = (server: Server) => {
    const reachable = server.client.report(monoMs()).reachable;
    if (reachable === server.wasReachable) return;
    server.wasReachable = reachable;
    if (reachable) options.logger.info({ upstream: server.id, address: server.address }, 'upstream NTP server reachable');
    else options.logger.warn({ upstream: server.id, address: server.address }, 'upstream NTP server unreachable: no usable reply to the last 8 requests');
  };

  socket.on('message', (bytes: Buffer, from: dgram.RemoteInfo) => {
    const { rxNs, byKernel } = arrivalNs(kernelStamps, options.clock);
    if (byKernel) counters.rxStampedByKernel += 1;
    else counters.rxStampedByUser += 1;
    if (bytes.length === 0 && from.port === ownPort) return;
    const server = servers.find((candidate) => candidate.address === from.address && candidate.config.port === from.port);
    if (server === undefined) {
      counters.unknownSource += 1;
      return;
    }
    const outcome = server.client.receive(bytes, rxNs, monoMs(), options.clock.slewRemainingNs?.() ?? 0);
    if (outcome.ok) {
      options.onSample?.(server.id, outcome.sample);
    } else if (outcome.reason === 'kissDeny') {
      options.logger.warn({ upstream: server.id, kissCode: server.client.report(monoMs()).kissCode }, "upstream NTP server refuses us (kiss-o'-death): not asking it again");
      clearTimeout(server.timer ?? undefined);
    } else if (outcome.reason === 'kissRate') {
      options.logger.info({ upstream: server.id, pollIntervalMs: server.client.report(monoMs()).pollIntervalMs }, "upstream NTP server asks us to poll less often (kiss-o'-death RATE)");
      schedule(server);
    }
    noteReachability(server);
  });

  function schedule(server: Server): void {
    if (closed) return;
    clearTimeout(server.timer ?? undefined);
    const dueMs = server.client.nextRequestAtMs();
    if (dueMs === null) return;
    server.timer = setTimeout(() => poll(server), Math.max(0, dueMs - monoMs()));
    server.timer.unref();
  }

  function poll(server: Server): void {
    if (closed || server.address === null) return;
    const address = server.address;
    if (warmUp) {
      // See the top of the file: a first send() after idling is slow, and the transmit stamp is read before it.
      try {
        socket.send(WARM_UP_BYTES, ownPort, warmUpAddress);
      } catch {
        // Only a warm-up.
      }
    }
    const request = server.client.request(monoMs(), () => options.clock.nowNs(), options.clock.slewRemainingNs?.() ?? 0);
    if (request !== null) {
      try {
        socket.send(request, server.config.port, address, (error) => {
          if (error) counters.sendErrors += 1;
        });
      } catch {
        counters.sendErrors += 1;
      }
    }
    noteReachability(server);
    schedule(server);
  }

  function resolve(server: Server): void {
    if (closed) return;
    dns.lookup(server.config.host, { family: 4 }, (error, address) => {
      if (closed) return;
      if (error) {
        server.resolveError = `${error.code ?? 'EUNKNOWN'}: ${error.message}`;
        options.logger.warn({ upstream: server.id, err: server.resolveError, retryMs: UPSTREAM_RESOLVE_RETRY_MS }, 'upstream NTP server name does not resolve; trying again later');
        server.timer = setTimeout(() => resolve(server), UPSTREAM_RESOLVE_RETRY_MS);
        server.timer.unref();
        return;
      }
      server.address = address;
      server.resolveError = null;
      options.logger.info({ upstream: server.id, address }, 'upstream NTP server resolved');
      schedule(server);
    });
  }

  for (const server of servers) {
    if (server.address === null) resolve(server);
    else schedule(server);
  }

  const candidate = (server: Server): UpstreamCandidate => server.address === null
    ? { id: server.id, usable: false, exclusion: 'unreachable', reason: `the name does not resolve${server.resolveError === null ? ' yet' : ` (${server.resolveError})`}` }
    : server.client.candidate(server.id, monoMs());

  return {
    counters,
    rxTimestamps,
    rxTimestampsWhyNot,
    status(): UpstreamServerStatus[] {
      const nowMs = monoMs();
      return servers.map((server) => {
        const report = server.client.report(nowMs);
        return {
          id: server.id, host: server.config.host, port: server.config.port, address: server.address,
          state: server.address === null ? 'resolving' : report.state,
          reachable: report.reachable, reach: report.reach,
          stratum: report.server?.stratum ?? null, leap: report.server?.leap ?? null,
          offsetNs: report.offsetNs, delayNs: report.delayNs, jitterNs: report.jitterNs,
          rootDelayNs: report.server?.rootDelayNs ?? null, rootDispersionNs: report.server?.rootDispersionNs ?? null,
          rootDistanceNs: report.rootDistanceNs, lastSampleAgoMs: report.lastSampleAgoMs, pollIntervalMs: report.pollIntervalMs,
          lastRejectReason: report.lastRejectReason, kissCode: report.kissCode, resolveError: server.resolveError,
          requests: report.counters.requests, replies: report.counters.replies, samples: report.counters.samples,
        };
      });
    },
    clockAdjusted(deltaNs: number): void {
      for (const server of servers) server.client.clockAdjusted(deltaNs);
    },
    selection(): SelectionResult {
      return selectUpstreams(servers.map(candidate));
    },
    chosenSamples(): Map<string, number> {
      const nowMs = monoMs();
      const chosen = new Map<string, number>();
      for (const server of servers) {
        const atMs = server.client.report(nowMs).chosenSampleAtMs;
        if (atMs !== null) chosen.set(server.id, atMs);
      }
      return chosen;
    },
    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      for (const server of servers) clearTimeout(server.timer ?? undefined);
      return new Promise((done) => socket.close(() => done()));
    },
  };
}
