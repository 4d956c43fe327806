// Human-readable rendering of the status report and of durations and offsets.
import type { StatusReport } from '../daemon/status.ts';

/** Signed seconds with an adaptive unit: +1.234 s, -12.3 ms, +45.6 µs, +120 ns. */
export function formatOffsetNs(ns: number | null): string {
  if (ns === null || !Number.isFinite(ns)) return '-';
  const sign = ns < 0 ? '-' : '+';
  return sign + formatDurationNs(Math.abs(ns));
}

export function formatDurationNs(ns: number | null): string {
  if (ns === null || !Number.isFinite(ns)) return '-';
  const abs = Math.abs(ns);
  if (abs >= 1e9) return `${(ns / 1e9).toFixed(3)} s`;
  if (abs >= 1e6) return `${(ns / 1e6).toFixed(3)} ms`;
  if (abs >= 1e3) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${Math.round(ns)} ns`;
}

export function formatAgoMs(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 1000) return `${Math.round(ms)} ms ago`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join('  ')).join('\n');
}

export function formatStatus(status: StatusReport): string {
  const lines: string[] = [];
  const master = status.role === 'master' ? 'this node' : (status.masterId ?? 'none yet');
  lines.push(`Node       ${status.nodeId}  (cluster ${status.cluster}, priority ${status.priority}, listening on ${status.listen.address}:${status.listen.port})`);
  lines.push(`Role       ${status.role}   master: ${master}   term: ${status.term}`);
  const clock = status.clock;
  const signedPpm = (ppm: number) => `${ppm >= 0 ? '+' : ''}${ppm.toFixed(3)} ppm`;
  // Older agents lack some of these fields: print what is there.
  const drift = clock.virtualDriftPpm === null || clock.virtualDriftPpm === undefined ? '' : `, oscillator ${signedPpm(clock.virtualDriftPpm)} (--virtual-drift)`;
  lines.push(
    `Clock      ${clock.mode}, ${clock.synchronized ? 'synchronized' : 'not synchronized'}; ` +
      (clock.mode === 'virtual' ? `offset from host ${formatOffsetNs(clock.hostOffsetNs)}, ` : '') +
      `frequency ${signedPpm(clock.frequencyPpm)}${drift}, slew left ${formatOffsetNs(clock.slewRemainingNs)}` +
      ((clock.slewRatePpm ?? 0) > 0 ? ` at ${clock.slewRatePpm.toFixed(0)} ppm` : '') +
      `, ${clock.steps} steps, ${clock.slews} slews`,
  );
  if (clock.kernel) {
    const kernel = clock.kernel;
    lines.push(
      `Kernel     ${kernel.unsync ? 'STA_UNSYNC set' : 'synchronized'}, frequency ${signedPpm(kernel.frequencyPpm)}, ` +
        `max error ${formatDurationNs(kernel.maxErrorNs)}, estimated error ${formatDurationNs(kernel.estErrorNs)}, status 0x${kernel.status.toString(16)}`,
    );
  }
  const tracking = status.tracking;
  if (tracking) {
    const holdover = tracking.holdover ? ' (holdover: no correction for over two poll intervals)' : '';
    lines.push(
      `Tracking   reference ${tracking.referenceId ?? '-'}, last offset ${formatOffsetNs(tracking.lastOffsetNs)}, RMS offset ${formatDurationNs(tracking.rmsOffsetNs)}, ` +
        `${tracking.updates} updates${tracking.spikes > 0 ? ` (${tracking.spikes} spikes held)` : ''}, last ${formatAgoMs(tracking.lastUpdateAgoMs)}${holdover}`,
    );
    lines.push(
      `Policy     step at ${tracking.stepThresholdNs > 0 ? `+${formatDurationNs(tracking.stepThresholdNs)}` : 'never'} once synchronized (never backwards), ` +
        `slew up to ${tracking.slewRatePpmMax.toFixed(0)} ppm, refuse above ${tracking.correctionNsMax === null ? 'never' : formatDurationNs(tracking.correctionNsMax)}` +
        (tracking.refused > 0 ? `; REFUSED ${tracking.refused} (last ${formatOffsetNs(tracking.lastRefused?.correctionNs ?? null)}, ${formatAgoMs(tracking.lastRefused?.agoMs ?? null)})` : ''),
    );
  }
  const stamps = status.timestamps;
  if (stamps) {
    lines.push(
      `Timestamps receive: ${stamps.rx === 'kernel' ? 'kernel' : `user space${stamps.whyNotKernel ? ` (${stamps.whyNotKernel})` : ''}`}; ` +
        `${stamps.rxStampedByKernel} datagrams stamped by the kernel, ${stamps.rxStampedByUser} in user space; transmit: user space`,
    );
  }
  const election = status.election;
  const last = election.last
    ? `last won by ${election.last.winner} in term ${election.last.term} (${election.last.algorithm}, took ${election.last.durationMs.toFixed(1)} ms, ${formatAgoMs(election.last.agoMs)})`
    : 'none finished yet';
  const running = election.inProgress ? `; running: term ${election.inProgress.term} (${election.inProgress.algorithm}, ${election.inProgress.forMs} ms)` : '';
  lines.push(`Elections  ${last}${running}; ${election.started} taken part in (ring ${election.byAlgorithm.ring}, bully ${election.byAlgorithm.bully}, takeover ${election.byAlgorithm.takeover ?? 0}), ${election.won} won`);
  if (status.lastRound) {
    const round = status.lastRound;
    lines.push(
      `Round      #${round.round}, ${formatAgoMs(round.agoMs)}: ${round.answered}/${round.members} members answered, median ${formatOffsetNs(round.medianNs)}, ` +
        `average ${formatOffsetNs(round.averageNs)} of those within ${formatDurationNs(round.boundNs)}` +
        (round.excluded.length > 0 ? `, excluded: ${round.excluded.join(', ')}` : ', none excluded') +
        `; following ${round.reference}`,
    );
  }
  if (status.lastCorrection) {
    const correction = status.lastCorrection;
    lines.push(`Correction ${formatOffsetNs(correction.correctionNs)} from ${correction.masterId} (term ${correction.term}, round ${correction.round}, ${formatAgoMs(correction.agoMs)})`);
  }
  const barriers = status.barriers;
  if (barriers.waiting.length > 0 || (barriers.open !== null && barriers.open.length > 0)) {
    const waiting = barriers.waiting.map((entry) => `${entry.name}${entry.count !== null ? ` (initializer of ${entry.count})` : ''} ${formatAgoMs(entry.waitingMs).replace(' ago', '')}`);
    const open = (barriers.open ?? []).map((entry) => `${entry.name} ${entry.present}${entry.count !== null ? `/${entry.count}` : ' waiting, not initialized'}`);
    lines.push(`Barriers   ${waiting.length > 0 ? `waiting here: ${waiting.join(', ')}` : 'none waiting here'}${barriers.open !== null ? `; open: ${open.length > 0 ? open.join(', ') : 'none'}` : ''}`);
  }
  const counters = status.counters;
  const reasons = Object.entries(counters.framesRejectedByReason)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${count}`)
    .join(', ');
  lines.push(
    `Frames     received ${counters.framesReceived}, sent ${counters.framesSent}, rejected ${counters.framesRejected}${reasons ? ` (${reasons})` : ''}, ` +
      `other cluster ${counters.framesOtherCluster}, stale ${counters.framesStale}, replayed ${counters.framesReplayed}, send errors ${counters.sendErrors}`,
  );
  lines.push('');
  if (status.peers.length === 0) {
    lines.push('Peers      none known');
  } else {
    const rows = [['PEER', 'ADDRESS', 'PRIO', 'LAST HEARD', 'OFFSET', 'DELAY', 'STATE']];
    for (const peer of status.peers) {
      const state = peer.nodeId === status.masterId ? 'master' : peer.suspect ? 'not answering' : peer.excluded ? 'excluded (outlier)' : peer.sampleDiscarded ? 'sample discarded (slow)' : 'ok';
      rows.push([peer.nodeId, `${peer.address}:${peer.port}`, String(peer.priority), formatAgoMs(peer.lastHeardAgoMs), formatOffsetNs(peer.offsetNs), formatDurationNs(peer.delayNs), state]);
    }
    lines.push(`Peers (${status.peers.length})${status.role === 'master' ? '' : ' (offsets and delays are measured by the master)'}`);
    lines.push(table(rows));
  }
  return lines.join('\n');
}
