// From a received datagram to a frame: authentication (--key-file) and strict decoding. Neither
// throws: a bad datagram is dropped, counted by reason (status counters.framesRejectedByReason),
// and logged at most once per REJECT_LOG_INTERVAL_MS with the count of those left out.
import type { Logger } from 'pino';
import type { Frame } from '../core/frames.ts';
import { REJECT_LOG_INTERVAL_MS } from '../core/limits.ts';
import { onceEvery } from '../core/rate-limiter.ts';
import type { Datagram } from '../net/udp.ts';
import { AUTH_REJECT_REASONS, type AuthRejectReason, type FrameAuth } from '../wire/auth.ts';
import { decodeFrame, REJECT_REASONS, type RejectReason } from '../wire/codec.ts';

export class FrameIntake {
  /** Datagrams seen (valid or not). */
  received = 0;
  readonly rejectedByReason = Object.fromEntries([...REJECT_REASONS, ...AUTH_REJECT_REASONS].map((reason) => [reason, 0])) as Record<RejectReason | AuthRejectReason, number>;
  private readonly rejectLog = onceEvery(REJECT_LOG_INTERVAL_MS);

  constructor(
    private readonly auth: FrameAuth | null,
    private readonly log: Logger,
  ) {}

  /** The frame a datagram carries, or null (counted and maybe logged) when it is not a valid one of ours. */
  open(datagram: Datagram): Frame | null {
    this.received += 1;
    const opened = this.auth === null ? null : this.auth.open(datagram.bytes);
    if (opened !== null && !opened.ok) {
      this.rejectedByReason[opened.reason] += 1;
      if (this.rejectLog.allow(datagram.rxMonoMs)) {
        this.log.warn({ from: datagram.from, reason: opened.reason, detail: opened.detail, suppressed: this.rejectLog.takeSuppressed() }, 'frame rejected: not authenticated with our keys');
      }
      return null;
    }
    const decoded = decodeFrame(opened === null ? datagram.bytes : opened.frame);
    if (!decoded.ok) {
      this.rejectedByReason[decoded.reason] += 1;
      if (this.rejectLog.allow(datagram.rxMonoMs)) {
        this.log.debug({ from: datagram.from, reason: decoded.reason, detail: decoded.detail, suppressed: this.rejectLog.takeSuppressed() }, 'frame rejected');
      }
      return null;
    }
    return decoded.frame;
  }
}
