// Builds a running agent from a validated RunConfig: resolves the interface and static peers,
// picks the clock, binds the socket and the control server. Used by `run` and by `demo`.
import { lookup } from 'node:dns/promises';
import type { Logger } from 'pino';
import { Agent } from './agent.ts';
import { ControlServer } from './http.ts';
import { NtpService } from './ntp-service.ts';
import { FrameAuth } from '../wire/auth.ts';
import { AgentMetrics } from './metrics.ts';
import type { RunConfig } from './config.ts';
import { nodeConfig } from '../core/defaults.ts';
import { HostClock } from '../clock/host.ts';
import { VirtualClockDriver } from '../clock/virtual-driver.ts';
import { openClock, openMonotonicRaw } from '../clock/raw.ts';
import { CLOCK_REALTIME } from '../native/libc.ts';
import type { ClockDriver } from '../clock/driver.ts';
import { Discipline } from '../core/sync/discipline.ts';
import { onceEvery } from '../core/rate-limiter.ts';
import { PROVISIONAL_WINDOW_MS_DEFAULT, REJECT_LOG_INTERVAL_MS } from '../core/limits.ts';
import type { OpenSystemClockOptions } from '../clock/system-check.ts';
import { resolveInterface } from '../net/interfaces.ts';
import { startUpstreams, type Upstreams } from '../net/ntp-client.ts';
import type { Endpoint } from '../core/types.ts';
import { loadState, openStateDir, StateDirError, StateWriter, type SavedFrequencies, type StateDirLock } from './state.ts';

/** A failure to start that the operator can fix; the CLI prints the message and exits 1. */
export class StartupError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** 1: a runtime problem (a busy port, another agent); 2: a setting that cannot work. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface RunningDaemon {
  agent: Agent;
  /** This agent's Prometheus metrics (served at GET /metrics when the control server runs). */
  metrics: AgentMetrics;
  listen: Endpoint;
  /** Bound control-server port, or null when disabled. */
  httpPort: number | null;
  /** Graceful: LEAVE to the peers, mDNS goodbye. */
  stop(): Promise<void>;
  /** Silent, as if killed (the demo's failover): peers notice only when polls stop. */
  stopAbruptly(): Promise<void>;
  /** Synchronous, safe in any state (after an internal error): save the state, end a slew. */
  saveAndReleaseClock(): void;
}

interface ChosenClock {
  driver: ClockDriver;
  virtualDriftPpm: number | null;
}

function virtualClock(config: RunConfig, hostClock: HostClock, logger: Logger): ChosenClock {
  const raw = openMonotonicRaw();
  if ('error' in raw) logger.warn({ why: raw.error }, 'virtual clock: cannot read CLOCK_MONOTONIC_RAW; counting from the host clock instead (it will move with whoever steers the host clock)');
  // The host's realtime read directly (not through the HostClock's anchor, which sees a step of the
  // host clock only at its next check): see VirtualClockDriver.realtime.
  const realtime = 'error' in raw ? raw : openClock(CLOCK_REALTIME, 'CLOCK_REALTIME');
  const driver = new VirtualClockDriver(hostClock, {
    initialOffsetNs: config.virtualOffsetNs,
    driftPpm: config.virtualDriftPpm,
    rawNs: 'error' in raw ? null : raw.nowNs,
    realtimeNs: 'error' in realtime ? null : realtime.nowNs,
  });
  return { driver, virtualDriftPpm: config.virtualDriftPpm };
}

/**
 * `system` disciplines the kernel clock or fails with the reason; `auto` does when it may (Linux,
 * CAP_SYS_TIME, no other time daemon) and otherwise falls back to a virtual clock with a warning.
 */
/** What tests may put under the kernel clock driver instead of the real syscall and /proc. */
export type SystemClockInjection = Partial<Pick<OpenSystemClockOptions, 'syscall' | 'loadSyscall' | 'capCheck' | 'procDir' | 'platform'>>;

async function chooseClock(config: RunConfig, hostClock: HostClock, logger: Logger, injection: SystemClockInjection): Promise<ChosenClock> {
  if (config.clock === 'virtual') return virtualClock(config, hostClock, logger);
  const wantsVirtualStart = config.virtualOffsetNs !== 0 || config.virtualDriftPpm !== 0;
  if (config.clock === 'auto' && wantsVirtualStart) return virtualClock(config, hostClock, logger);
  if (config.clock === 'system' && wantsVirtualStart) {
    throw new StartupError('ECLOCK', '--virtual-offset and --virtual-drift apply to the virtual clock only; drop them or use --clock virtual');
  }
  const { openSystemClock } = await import('../clock/system-check.ts');
  const writeErrorLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  const opened = openSystemClock({
    ...injection,
    force: config.force,
    hostClock,
    driver: {
      onStepped: (deltaNs) => hostClock.applyStep(BigInt(Math.round(deltaNs))),
      onError: (error) => {
        if (writeErrorLog.allow(performance.now())) {
          logger.error({ code: error.code, operation: error.operation, err: error.message, suppressed: writeErrorLog.takeSuppressed() }, 'kernel clock write failed');
        }
      },
    },
  });
  if (opened.ok) {
    for (const warning of opened.warnings) logger.warn({}, warning);
    logger.info({ clock: 'system' }, 'disciplining the kernel clock (adjtimex)');
    // However the process ends (a crash, the forced exit after a stuck stop), a slew in progress
    // must not leave the kernel running at the slew's frequency: close() restores the base.
    const driver = opened.driver;
    process.once('exit', () => driver.close());
    return { driver, virtualDriftPpm: null };
  }
  if (config.clock === 'system') throw new StartupError('ECLOCK', `--clock system: ${opened.reason}`);
  logger.warn({ why: opened.reason }, 'clock auto: cannot discipline the kernel clock; using a virtual clock (nothing outside this agent follows it)');
  return virtualClock(config, hostClock, logger);
}

async function resolvePeers(config: RunConfig): Promise<Endpoint[]> {
  return Promise.all(
    config.peers.map(async (peer) => {
      try {
        const { address } = await lookup(peer.host, { family: 4 });
        return { address, port: peer.port };
      } catch (error) {
        throw new StartupError('EPEER', `--peer ${peer.host}:${peer.port}: cannot resolve ${peer.host} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
      }
    }),
  );
}

export async function startDaemon(config: RunConfig, logger: Logger, hostClock = new HostClock(), systemClock: SystemClockInjection = {}): Promise<RunningDaemon> {
  let interfaceAddress: string | null = null;
  if (config.interfaceName !== null) {
    try {
      interfaceAddress = resolveInterface(config.interfaceName).address;
    } catch (error) {
      throw new StartupError('EINTERFACE', `--interface: ${(error as Error).message}`);
    }
  }
  const staticPeers = await resolvePeers(config);
  // The state directory first: a bad one stops the start before anything is bound or touched.
  let lock: StateDirLock | null = null;
  if (config.stateDir !== null) {
    try {
      lock = openStateDir(config.stateDir, config.nodeId);
    } catch (error) {
      if (error instanceof StateDirError) throw new StartupError(error.code, error.message, error.code === 'ESTATEDIR' ? 2 : 1);
      throw error;
    }
  }
  try {
    return await startWithStateDir(config, logger, hostClock, systemClock, staticPeers, interfaceAddress, lock);
  } catch (error) {
    lock?.release();
    throw error;
  }
}

async function startWithStateDir(
  config: RunConfig,
  logger: Logger,
  hostClock: HostClock,
  systemClock: SystemClockInjection,
  staticPeers: Endpoint[],
  interfaceAddress: string | null,
  lock: StateDirLock | null,
): Promise<RunningDaemon> {
  let persisted = null;
  let savedFrequencies: SavedFrequencies = {};
  let stateWriter: StateWriter | null = null;
  // Larger than the last run's (replay protection: peers refuse frames of an older boot).
  let bootId = Date.now();
  if (config.stateDir !== null) {
    let loaded;
    try {
      loaded = await loadState(config.stateDir, config.nodeId);
    } catch (error) {
      if (error instanceof StateDirError) throw new StartupError(error.code, error.message, 2);
      throw error;
    }
    if (loaded.warning) logger.warn({ stateDir: config.stateDir, keptCopy: loaded.keptCopy ?? null }, loaded.warning);
    persisted = loaded.state;
    savedFrequencies = loaded.frequencies;
    if (persisted) logger.info({ stateDir: config.stateDir, term: persisted.term }, 'state loaded');
    bootId = Math.max(bootId, (loaded.bootId ?? 0) + 1);
    stateWriter = new StateWriter(config.stateDir, config.nodeId, (error) => logger.error({ stateDir: config.stateDir, err: error.message }, 'cannot save state'), bootId);
  }
  if (config.keys === null) {
    logger.warn({}, 'no --key-file: the cluster is open; anyone who can send to this port can elect itself master and move every clock (see README "Security")');
  } else {
    for (const warning of config.keys.warnings) logger.warn({ keyFile: config.keys.path }, warning);
    logger.info({ keyFile: config.keys.path, keyIds: config.keys.keys.map((key) => key.id), sendKeyId: config.keys.keys[0]?.id }, 'frames authenticated (HMAC-SHA256)');
  }
  const { driver: clock, virtualDriftPpm } = await chooseClock(config, hostClock, logger, systemClock);
  // The drift file is only a good start for the same kind of clock.
  // Without one, the kernel clock starts from the frequency the kernel has now (what a previous run
  // or daemon left); a virtual clock from 0.
  const learnedPpm = savedFrequencies[clock.mode];
  const startFrequencyPpm = learnedPpm ?? clock.state().frequencyPpm;
  if (learnedPpm !== undefined) logger.info({ frequencyPpm: learnedPpm }, 'frequency loaded from the state directory');
  const kernel = clock.state().kernel;
  // A kernel clock that kept its synchronization across our restart (STA_UNSYNC clear and a small
  // error bound) must not be stepped backwards by a fresh initial synchronization.
  const startSynchronized = kernel !== null && !kernel.unsync && kernel.maxErrorNs < config.stepThresholdNs;
  const discipline = new Discipline(
    { stepThresholdNs: config.stepThresholdNs, slewPpmMax: config.slewPpmMax, correctionNsMax: config.correctionNsMax, driverPpmMax: clock.frequencyPpmMax, pollIntervalMs: config.pollIntervalMs, provisionalWindowMs: PROVISIONAL_WINDOW_MS_DEFAULT },
    { frequencyPpm: startFrequencyPpm, synchronized: startSynchronized, frequencyLearned: learnedPpm !== undefined },
  );
  clock.setFrequency(discipline.frequencyPpm);
  const bindAddress = config.bindAddress ?? interfaceAddress ?? '0.0.0.0';
  // Per agent, never prom-client's global registry (the demo runs several agents in one process).
  // The status supplier is only called at scrape time, after `agent` exists.
  const metrics = new AgentMetrics({ status: () => agent.status(), peersMax: config.peersMax });
  // Started once the agent's socket is bound; read only when status is asked for, after that.
  const ntp = new NtpService({
    port: config.ntpPort,
    bindAddress,
    kernelTimestamps: config.kernelTimestamps,
    logger,
    nowNs: () => agent.nowNs(),
    reading: () => agent.timeReading(),
  });
  const agent: Agent = new Agent({
    node: nodeConfig({
      nodeId: config.nodeId,
      priority: config.priority,
      cluster: config.cluster,
      pollIntervalMs: config.pollIntervalMs,
      masterTimeoutMs: config.masterTimeoutMs,
      discoveryWindowMs: config.discoveryWindowMs,
      outlierThresholdNs: config.outlierThresholdNs,
      probesPerRound: config.probesPerRound,
      probesMin: config.probesMin,
      probeSpacingMs: config.probeSpacingMs,
      peersMax: config.peersMax,
      neverMaster: config.neverMaster,
      electionAlgorithm: config.electionAlgorithm,
      random: Math.random,
      // The cluster clock, for synchronized barrier releases (read when this node, as master, releases).
      clockNowNs: () => clock.nowNs(),
      bootId,
      replayProtection: config.keys !== null,
      // --upstream (issue 18): the node judges the upstream's health against its poll interval,
      // and never moves an established cluster further than the panic threshold at once.
      upstream: config.upstreams.length === 0 ? null : { upstreamPollIntervalMs: config.upstreamPollIntervalMs, correctionNsMax: config.correctionNsMax },
    }),
    bindAddress,
    port: config.port,
    kernelTimestamps: config.kernelTimestamps,
    interfaceName: config.interfaceName,
    interfaceAddress,
    staticPeers,
    mdns: config.mdns,
    hostClock,
    clock,
    discipline,
    savedFrequencies,
    virtualDriftPpm,
    logger,
    persisted,
    stateWriter,
    onCorrection: (correctionNs, action) => metrics.observeCorrection(correctionNs, action),
    ntpReport: () => ntp.report(),
    auth: config.keys === null ? null : new FrameAuth(config.keys.keys),
    keyFile: config.keys?.path ?? null,
  });
  let listen: Endpoint;
  try {
    listen = await agent.start();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EUDP';
    const hint = code === 'EADDRINUSE' ? ' (is another agent running? choose another --port)' : code === 'EADDRNOTAVAIL' ? ' (no such local address)' : '';
    throw new StartupError(code, `--port: cannot bind UDP ${bindAddress}:${config.port}: ${code}${hint}`);
  }
  // The NTP client of --upstream, once the agent runs: its samples feed the node.
  let upstreams: Upstreams | null = null;
  if (config.upstreams.length > 0) {
    try {
      upstreams = await startUpstreams({
        servers: config.upstreams,
        clock: { nowNs: () => clock.nowNs(), slewRemainingNs: () => clock.state().slewRemainingNs },
        // The agent's monotonic clock: sample times and the node's times are on one scale.
        monoMs: () => hostClock.monoMs(),
        logger,
        pollIntervalMs: config.upstreamPollIntervalMs,
        kernelTimestamps: config.kernelTimestamps,
        onSample: (id, sample) => agent.upstreamSample(id, sample),
      });
    } catch (error) {
      await agent.stop();
      const code = (error as NodeJS.ErrnoException).code ?? 'EUDP';
      throw new StartupError(code, `--upstream: cannot open the NTP client's socket: ${(error as Error).message}`);
    }
    agent.attachUpstreams(upstreams, config.upstreamPollIntervalMs);
    logger.info({ upstreams: config.upstreams.map((server) => `${server.host}:${server.port}`), pollIntervalMs: config.upstreamPollIntervalMs, rxTimestamps: upstreams.rxTimestamps }, 'following upstream NTP servers');
  }
  // A port that cannot be bound is a warning (status ntp.why), never a failure to start.
  await ntp.start();
  let control: ControlServer | null = null;
  let httpPort: number | null = null;
  if (config.http !== null) {
    control = new ControlServer({
      host: config.http.host,
      port: config.http.port,
      status: () => agent.status(),
      time: () => agent.timeReport(),
      metrics: () => metrics.render(),
      cluster: (sinceMs) => agent.dashboard(sinceMs),
      barrier: (request) => agent.barrier(request),
    });
    try {
      httpPort = await control.start();
    } catch (error) {
      await ntp.stop();
      await upstreams?.close();
      await agent.stop();
      const code = (error as NodeJS.ErrnoException).code ?? 'EHTTP';
      const hint = code === 'EADDRINUSE' ? ' (another agent? use --http HOST:PORT or --http none)' : '';
      throw new StartupError(code, `--http: cannot listen on ${config.http.host}:${config.http.port}: ${code}${hint}`);
    }
    logger.info({ http: `${config.http.host}:${httpPort}` }, 'control server listening');
  }
  return {
    agent,
    metrics,
    listen,
    httpPort,
    async stop() {
      try {
        await control?.stop();
        await ntp.stop();
        await upstreams?.close();
        await agent.stop();
      } finally {
        lock?.release();
      }
    },
    async stopAbruptly() {
      try {
        await control?.stop();
        await ntp.stop();
        await upstreams?.close();
        await agent.stopAbruptly();
      } finally {
        lock?.release();
      }
    },
    saveAndReleaseClock() {
      agent.saveAndReleaseClock();
    },
  };
}
