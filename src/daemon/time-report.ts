// GET /time and `berkeley-agent now`: the agent's clock read at the request, with what an
// application needs to trust it (README "Time for applications"). Pure: a reading in, JSON out.
import type { ClockMode } from '../clock/driver.ts';
import type { NodeId, Role } from '../core/types.ts';
import type { TimeReading } from './agent.ts';

export interface TimeReport {
  /** This agent's clock (the cluster's time once synchronized), Unix epoch ns, as a decimal string (too large for a JSON number). */
  timeNs: string;
  /** The same instant in ISO 8601 UTC with nanoseconds: 2025-01-02T03:04:05.123456789Z. */
  iso: string;
  /** status clock.synchronized. */
  synchronized: boolean;
  /** Bound on |this clock - the master's clock| at that instant, ns; null while not synchronized (no promise). */
  errorBoundNs: number | null;
  clockMode: ClockMode;
  /** This clock minus the host's system clock, ns (0 in system mode). */
  hostOffsetNs: number;
  masterId: NodeId | null;
  role: Role;
}

/** ISO 8601 UTC with all nine digits of the second's fraction (Date keeps only milliseconds). */
export function isoWithNs(unixNs: bigint): string {
  const seconds = unixNs >= 0n ? unixNs / 1_000_000_000n : -((-unixNs + 999_999_999n) / 1_000_000_000n);
  const fractionNs = unixNs - seconds * 1_000_000_000n;
  const whole = new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, '');
  return `${whole}.${fractionNs.toString().padStart(9, '0')}Z`;
}

/** The report of a reading; `hostOffsetNs`: this clock minus the host's system clock then. */
export function timeReport(reading: TimeReading, hostOffsetNs: number): TimeReport {
  return {
    timeNs: reading.nowNs.toString(),
    iso: isoWithNs(reading.nowNs),
    synchronized: reading.synchronized,
    errorBoundNs: reading.errorBoundNs === null ? null : Math.round(reading.errorBoundNs),
    clockMode: reading.clockMode,
    hostOffsetNs: Math.round(hostOffsetNs),
    masterId: reading.masterId,
    role: reading.role,
  };
}

/** Whether a reading may be trusted within its bound (`now` exits 0 only then). */
export function trustworthy(report: Pick<TimeReport, 'synchronized' | 'errorBoundNs'>): boolean {
  return report.synchronized && report.errorBoundNs !== null;
}
