// The log lines of what the protocol node reports (NodeEvent): one line per event, with the
// floods an open cluster can provoke (new ids beyond the peer limit, forged HELLOs, a duplicate
// node id) at most once per REJECT_LOG_INTERVAL_MS each, with the count of those left out.
import type { Logger } from 'pino';
import type { NodeEvent } from '../core/node.ts';
import { REJECT_LOG_INTERVAL_MS } from '../core/limits.ts';
import { onceEvery } from '../core/rate-limiter.ts';

export class NodeEventLog {
  private readonly peerLimitLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  private readonly peerExpiredLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  private readonly duplicateIdLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  /** A refused upstream is refused again at each of its samples (each upstream poll). */
  private readonly upstreamRefusedLog = onceEvery(REJECT_LOG_INTERVAL_MS);
  /** A member no frame can correct is met again every round. */
  private readonly unsendableLog = onceEvery(REJECT_LOG_INTERVAL_MS);

  constructor(
    private readonly log: Logger,
    private readonly self: { nodeId: string; peersMax: number },
  ) {}

  record(event: NodeEvent, nowMs: number): void {
    switch (event.kind) {
      case 'peer-new':
        return this.log.info({ peer: event.nodeId, endpoint: event.endpoint, via: event.via }, 'peer appeared');
      case 'peer-suspect':
        return this.log.warn({ peer: event.nodeId, why: event.why }, 'peer not answering');
      case 'peer-alive':
        return this.log.info({ peer: event.nodeId }, 'peer answering again');
      case 'peer-left':
        return this.log.info({ peer: event.nodeId, wasMaster: event.wasMaster }, event.wasMaster ? 'master left; electing now' : 'peer left');
      case 'peer-limit':
        // A flood of new ids (an open cluster) must not flood the log: once per interval, with a count.
        if (this.peerLimitLog.allow(nowMs)) {
          this.log.warn({ peer: event.nodeId, peersMax: this.self.peersMax, suppressed: this.peerLimitLog.takeSuppressed() }, 'peer limit reached, peer ignored');
        }
        return;
      case 'peer-expired':
        // Forged HELLOs can make many of these: once per interval, with a count.
        if (this.peerExpiredLog.allow(nowMs)) {
          this.log.info({ peer: event.nodeId, why: event.why, suppressed: this.peerExpiredLog.takeSuppressed() }, 'peer forgotten: it never answered');
        }
        return;
      case 'election-start':
        return this.log.info({ term: event.term, algorithm: event.algorithm, reason: event.reason }, 'election started');
      case 'election-failed':
        return this.log.warn({ term: event.term, why: event.why, retryInMs: Math.round(event.retryInMs) }, 'election failed');
      case 'election-end':
        return this.log.info(
          { term: event.record.term, algorithm: event.record.algorithm, masterId: event.record.winner, durationMs: Math.round(event.record.durationMs) },
          'election finished',
        );
      case 'role':
        return this.log.info({ from: event.from, to: event.to, term: event.term, masterId: event.masterId }, 'role changed');
      case 'view':
        return this.log.trace({ masterId: event.view.masterId, round: event.view.round, members: event.view.members.length }, 'cluster view received');
      case 'round':
        return this.log.debug(
          { round: event.record.round, answered: event.record.answered, members: event.record.members, averageNs: Math.round(event.record.averageNs), excluded: event.record.excluded },
          'round completed',
        );
      case 'duplicate-id':
        if (this.duplicateIdLog.allow(nowMs)) {
          this.log.error({ endpoint: event.endpoint, nodeId: this.self.nodeId }, 'another agent uses our node id; give each agent a unique --node-id');
        }
        return;
      case 'outbox-full':
        return this.log.error({}, 'outgoing frame queue full; frames dropped');
      case 'upstream':
        return this.log.info(
          { healthy: event.healthy, clockClass: event.clockClass, why: event.why },
          event.healthy ? 'upstream healthy: this agent now ranks above agents without one' : 'upstream lost: the cluster keeps its time (holdover if it followed it)',
        );
      case 'upstream-refused':
        if (this.upstreamRefusedLog.allow(nowMs)) {
          this.log.error(
            { offsetNs: Math.round(event.offsetNs), limitNs: event.limitNs, suppressed: this.upstreamRefusedLog.takeSuppressed() },
            'upstream refused: its time is beyond --max-correction (panic threshold) from the cluster\'s; the cluster keeps its time',
          );
        }
        return;
      case 'correction-unsendable':
        if (this.unsendableLog.allow(nowMs)) {
          this.log.error(
            { peer: event.nodeId, correctionNs: event.correctionNs, round: event.round, suppressed: this.unsendableLog.takeSuppressed() },
            event.nodeId === this.self.nodeId
              ? 'own correction not applied: it would take this clock outside the range of a timestamp (1970 to 2262)'
              : 'correction not sent: no frame can carry it (not finite, or beyond the range of a timestamp); the member stays where it is',
          );
        }
        return;
      case 'upstream-takeover':
        return this.log.info({ from: event.from, term: event.term }, 'took over as master: this agent follows a healthy upstream and its master does not');
    }
  }
}
