// Builds a running agent from a validated RunConfig: resolves the interface and static peers,
// picks the clock, binds the socket and the control server. Used by `run` and by `demo`.
import { lookup } from 'node:dns/promises';
import type { Logger } from 'pino';
import { Agent } from './agent.ts';
import { ControlServer } from './http.ts';
import type { RunConfig } from './config.ts';
import { nodeConfig } from '../core/defaults.ts';
import { HostClock } from '../clock/host.ts';
import { VirtualClockDriver } from '../clock/virtual-driver.ts';
import type { ClockDriver } from '../clock/driver.ts';
import { resolveInterface } from '../net/mdns.ts';
import type { Endpoint } from '../core/types.ts';
import { loadState, StateWriter } from './state.ts';

/** A failure to start that the operator can fix; the CLI prints the message and exits 1. */
export class StartupError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface RunningDaemon {
  agent: Agent;
  listen: Endpoint;
  /** Bound control-server port, or null when disabled. */
  httpPort: number | null;
  /** Graceful: LEAVE to the peers, mDNS goodbye. */
  stop(): Promise<void>;
  /** Silent, as if killed (the demo's failover): peers notice only when polls stop. */
  stopAbruptly(): Promise<void>;
}

function chooseClock(config: RunConfig, hostClock: HostClock, logger: Logger): ClockDriver {
  if (config.clock === 'system') {
    throw new StartupError(
      'ECLOCK',
      '--clock system: the kernel clock driver is not available in this version yet; use --clock virtual (or auto) for now',
    );
  }
  if (config.clock === 'auto') logger.info({}, 'clock auto: the kernel clock driver is not available yet, using the virtual clock');
  return new VirtualClockDriver(hostClock, {
    initialOffsetNs: config.virtualOffsetNs,
    driftPpm: config.virtualDriftPpm,
    policy: { stepThresholdNs: config.stepThresholdNs, slewPpmMax: config.slewPpmMax },
  });
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

export async function startDaemon(config: RunConfig, logger: Logger, hostClock = new HostClock()): Promise<RunningDaemon> {
  let interfaceAddress: string | null = null;
  if (config.interfaceName !== null) {
    try {
      interfaceAddress = resolveInterface(config.interfaceName).address;
    } catch (error) {
      throw new StartupError('EINTERFACE', `--interface: ${(error as Error).message}`);
    }
  }
  const staticPeers = await resolvePeers(config);
  let persisted = null;
  let stateWriter: StateWriter | null = null;
  if (config.stateDir !== null) {
    const loaded = await loadState(config.stateDir, config.nodeId);
    if (loaded.warning) logger.warn({ stateDir: config.stateDir }, loaded.warning);
    persisted = loaded.state;
    if (persisted) logger.info({ stateDir: config.stateDir, term: persisted.term }, 'state loaded');
    stateWriter = new StateWriter(config.stateDir, config.nodeId, (error) => logger.error({ stateDir: config.stateDir, err: error.message }, 'cannot save state'));
  }
  const clock = chooseClock(config, hostClock, logger);
  const bindAddress = config.bindAddress ?? interfaceAddress ?? '0.0.0.0';
  const agent = new Agent({
    node: nodeConfig({
      nodeId: config.nodeId,
      priority: config.priority,
      cluster: config.cluster,
      pollIntervalMs: config.pollIntervalMs,
      masterTimeoutMs: config.masterTimeoutMs,
      discoveryWindowMs: config.discoveryWindowMs,
      outlierThresholdNs: config.outlierThresholdNs,
      peersMax: config.peersMax,
      neverMaster: config.neverMaster,
      electionAlgorithm: config.electionAlgorithm,
      random: Math.random,
    }),
    bindAddress,
    port: config.port,
    interfaceName: config.interfaceName,
    interfaceAddress,
    staticPeers,
    mdns: config.mdns,
    hostClock,
    clock,
    logger,
    persisted,
    stateWriter,
  });
  let listen: Endpoint;
  try {
    listen = await agent.start();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EUDP';
    const hint = code === 'EADDRINUSE' ? ' (is another agent running? choose another --port)' : code === 'EADDRNOTAVAIL' ? ' (no such local address)' : '';
    throw new StartupError(code, `--port: cannot bind UDP ${bindAddress}:${config.port}: ${code}${hint}`);
  }
  let control: ControlServer | null = null;
  let httpPort: number | null = null;
  if (config.http !== null) {
    control = new ControlServer({ host: config.http.host, port: config.http.port, status: () => agent.status() });
    try {
      httpPort = await control.start();
    } catch (error) {
      await agent.stop();
      const code = (error as NodeJS.ErrnoException).code ?? 'EHTTP';
      const hint = code === 'EADDRINUSE' ? ' (another agent? use --http HOST:PORT or --http none)' : '';
      throw new StartupError(code, `--http: cannot listen on ${config.http.host}:${config.http.port}: ${code}${hint}`);
    }
    logger.info({ http: `${config.http.host}:${httpPort}` }, 'control server listening');
  }
  return {
    agent,
    listen,
    httpPort,
    async stop() {
      await control?.stop();
      await agent.stop();
    },
    async stopAbruptly() {
      await control?.stop();
      await agent.stopAbruptly();
    },
  };
}
