// Control clients waiting on barriers (POST /barrier): one promise per participant, settled when
// the core reports it released, acknowledged (--no-wait), or refused, or when it times out, no
// master acknowledges it, the client goes away, or the agent stops. The core keeps the barrier
// protocol; this keeps only who is waiting here and what each is told.
import type { BarrierJoinRequest, BarrierJoinResult, BarrierOutcome } from '../core/barrier/client.ts';
import { BARRIER_LOCAL_WAITERS_MAX, BARRIER_PARTICIPANTS_MAX, BARRIER_REGISTER_TIMEOUT_MS, BARRIER_WAITERS_MAX, BARRIERS_OPEN_MAX } from '../core/limits.ts';

/**
 * This agent's clock at the moment of a synchronized release, so that the waiting command can turn
 * the release instant (cluster clock) into host time: its clock = host CLOCK_REALTIME + hostOffsetNs.
 */
export interface ReleaseClockInfo {
  mode: 'virtual' | 'system';
  /** This agent's clock minus the host's realtime clock, ns (0 on the kernel clock). */
  hostOffsetNs: number;
  /** How far this agent's reading of the host clock may be off (its hrtime anchor), ns: the command waits that much longer. */
  hostAnchorErrorNs: number;
  synchronized: boolean;
  /** A bound on |this clock - the master's|, ns; null when not known. */
  errorBoundNs: number | null;
}

/** What a barrier participant's control client is told (POST /barrier). */
export type BarrierResult =
  | {
      result: 'released';
      name: string;
      exitCode: number;
      waitedMs: number;
      /** Synchronized generations: the release instant on the cluster clock, ns since the epoch, as a decimal string (past 2^53). */
      releaseAtNs?: string;
      /** With releaseAtNs: this agent's clock as the release arrived. */
      clock?: ReleaseClockInfo;
    }
  /** --no-wait: the master has the initializer; it stays registered until the barrier releases. */
  | { result: 'registered'; name: string; present: number; count: number | null }
  | { result: 'timeout'; name: string; waitedMs: number }
  /** A usage or limit error, from this agent or the master. */
  | { result: 'rejected'; name: string; reason: string; detail: string }
  /** No master acknowledged it in time, or the agent is stopping. */
  | { result: 'unreachable'; name: string; detail: string };

export interface BarrierRequest {
  name: string;
  /** null: a waiter; N: the initializer with N waiters. */
  count: number | null;
  errorCode: number;
  /** false: return once registered (--no-wait; initializers only). */
  wait: boolean;
  timeoutMs: number | null;
  /** --synchronized: ask the master for a release instant. */
  synchronized?: boolean;
}

/** What the waits need from the agent: its clock, the protocol node, and a pump after each change. */
export interface BarrierWaitsHost {
  monoMs(): number;
  stopped(): boolean;
  join(request: BarrierJoinRequest, nowMs: number): BarrierJoinResult;
  withdraw(requestId: number, nowMs: number): void;
  /** Carry out what the node now wants sent. */
  pump(): void;
  /** This agent's clock now, for a synchronized release's answer. */
  clockInfo(): ReleaseClockInfo;
  log: { debug(obj: object, msg: string): void };
}

interface BarrierWait {
  requestId: number;
  name: string;
  wait: boolean;
  startedMs: number;
  acked: boolean;
  resolve: (result: BarrierResult) => void;
  timers: NodeJS.Timeout[];
}

export class BarrierWaits {
  /** Control clients blocked on a barrier, by request id. */
  private readonly waits = new Map<number, BarrierWait>();

  constructor(private readonly host: BarrierWaitsHost) {}

  /** Participants waiting here now. */
  get size(): number {
    return this.waits.size;
  }

  /**
   * A barrier participant for a control client. Resolves when it is released, times out
   * (withdrawn from the barrier), is refused, or cannot be registered; `cancel` withdraws it (the
   * client went away).
   */
  start(request: BarrierRequest): { result: Promise<BarrierResult>; cancel: () => void } {
    const settled = (result: BarrierResult) => ({ result: Promise.resolve(result), cancel: () => {} });
    if (this.host.stopped()) return settled({ result: 'unreachable', name: request.name, detail: 'the agent is stopping' });
    if (this.waits.size >= BARRIER_LOCAL_WAITERS_MAX) {
      return settled({ result: 'rejected', name: request.name, reason: 'client-limit', detail: `at most ${BARRIER_LOCAL_WAITERS_MAX} participants wait at one agent` });
    }
    const nowMs = this.host.monoMs();
    const joined = this.host.join({ name: request.name, count: request.count, errorCode: request.errorCode, synchronized: request.synchronized === true }, nowMs);
    if (!joined.ok) {
      this.host.pump();
      return settled({ result: 'rejected', name: request.name, reason: joined.reason, detail: joined.detail });
    }
    let resolve!: (result: BarrierResult) => void;
    const result = new Promise<BarrierResult>((done) => (resolve = done));
    const wait: BarrierWait = { requestId: joined.requestId, name: request.name, wait: request.wait, startedMs: nowMs, acked: false, resolve, timers: [] };
    this.waits.set(joined.requestId, wait);
    if (request.timeoutMs !== null) {
      wait.timers.push(setTimeout(() => this.withdraw(wait, { result: 'timeout', name: wait.name, waitedMs: this.waitedMs(wait) }), request.timeoutMs));
    }
    wait.timers.push(
      setTimeout(() => {
        if (!wait.acked) this.withdraw(wait, { result: 'unreachable', name: wait.name, detail: `no master acknowledged the participant within ${BARRIER_REGISTER_TIMEOUT_MS / 1000} s` });
      }, BARRIER_REGISTER_TIMEOUT_MS),
    );
    this.host.log.debug({ barrier: request.name, requestId: joined.requestId, count: request.count, errorCode: request.errorCode }, 'barrier participant joined');
    this.host.pump();
    return { result, cancel: () => this.withdraw(wait, { result: 'unreachable', name: wait.name, detail: 'the control client went away' }) };
  }

  /** What the core drained about a participant of this agent. */
  onOutcome(outcome: BarrierOutcome): void {
    const wait = this.waits.get(outcome.requestId);
    if (wait === undefined) return; // a --no-wait initializer, or a client that gave up
    switch (outcome.kind) {
      case 'acked':
        wait.acked = true;
        // --no-wait: the participant stays registered (the core keeps it); only the answer is early.
        if (!wait.wait) this.finish(wait, { result: 'registered', name: wait.name, present: outcome.present, count: outcome.count });
        return;
      case 'released':
        this.host.log.debug({ barrier: wait.name, requestId: wait.requestId, exitCode: outcome.exitCode, releaseAtNs: outcome.releaseAtNs?.toString() }, 'barrier released');
        return this.finish(wait, {
          result: 'released',
          name: wait.name,
          exitCode: outcome.exitCode,
          waitedMs: this.waitedMs(wait),
          ...(outcome.releaseAtNs === null ? {} : { releaseAtNs: outcome.releaseAtNs.toString(), clock: this.host.clockInfo() }),
        });
      case 'rejected':
        return this.finish(wait, { result: 'rejected', name: wait.name, reason: outcome.reason, detail: describeBarrierReason(outcome.reason) });
    }
  }

  /** A stopping agent cannot see its participants through: their clients exit 76. */
  abandonAll(): void {
    for (const wait of [...this.waits.values()]) this.finish(wait, { result: 'unreachable', name: wait.name, detail: 'the agent is stopping' });
  }

  private waitedMs(wait: BarrierWait): number {
    return Math.round(this.host.monoMs() - wait.startedMs);
  }

  private withdraw(wait: BarrierWait, result: BarrierResult): void {
    if (!this.waits.has(wait.requestId)) return;
    this.finish(wait, result);
    if (this.host.stopped()) return;
    this.host.withdraw(wait.requestId, this.host.monoMs());
    this.host.pump();
  }

  private finish(wait: BarrierWait, result: BarrierResult): void {
    if (this.waits.get(wait.requestId) !== wait) return;
    this.waits.delete(wait.requestId);
    for (const timer of wait.timers) clearTimeout(timer);
    wait.resolve(result);
  }
}

/** A master's refusal, in words for the client's stderr. */
export function describeBarrierReason(reason: string): string {
  switch (reason) {
    case 'barrier-limit':
      return `the cluster has the most open barriers it allows (${BARRIERS_OPEN_MAX})`;
    case 'waiter-limit':
      return `the barrier has the most waiters it allows (${BARRIER_WAITERS_MAX})`;
    case 'participant-limit':
      return `the master has the most barrier participants it allows (${BARRIER_PARTICIPANTS_MAX})`;
    case 'second-initializer':
      return 'the barrier already has an initializer (--count); only one participant may give it';
    default:
      return `refused by the master (${reason})`;
  }
}
