// Human-readable rendering of the status report and of durations and offsets.
import { verdictOf, type StatusReport, type UpstreamStatusReport } from '../daemon/status.ts';
import type { DashboardMember } from '../daemon/dashboard.ts';
import type { TimeReport } from '../daemon/time-report.ts';

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

/** Like formatDurationNs with four significant digits at most (table columns): 999.9 ms, 12.35 µs. */
export function formatShortNs(ns: number | null, signed = false): string {
  if (ns === null || !Number.isFinite(ns)) return '-';
  const abs = Math.abs(ns);
  const sign = signed ? (ns < 0 ? '-' : '+') : ns < 0 ? '-' : '';
  const [value, unit] = abs >= 1e9 ? [abs / 1e9, 's'] : abs >= 1e6 ? [abs / 1e6, 'ms'] : abs >= 1e3 ? [abs / 1e3, 'µs'] : [abs, 'ns'];
  if (unit === 'ns') return `${sign}${Math.round(value)} ns`;
  const digits = value >= 100 ? 1 : value >= 10 ? 2 : 3;
  // Rounding may carry into the next unit (999.96 ms): print it there.
  const text = value.toFixed(digits);
  if (Number(text) >= 1000 && unit !== 's') return formatShortNs(Math.sign(ns) * 1000 * (unit === 'ms' ? 1e6 : 1e3), signed);
  return `${sign}${text} ${unit}`;
}

export function formatAgoMs(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 1000) return `${Math.round(ms)} ms ago`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

/** The width the status table fits (a terminal's classic 80 columns). */
export const STATUS_WIDTH = 80;
const LABEL_WIDTH = 11;

/** `text` word-wrapped to `width` after `first`, continuation lines starting with `indent`. */
function wrap(first: string, text: string, indent: string, width: number): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(' ').filter((part) => part !== '')) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent + word;
    } else {
      line += (empty ? '' : ' ') + word;
    }
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** "Label      text", wrapped with continuation lines indented under the text. */
function field(label: string, text: string, width: number): string[] {
  return wrap(label.padEnd(LABEL_WIDTH - 1) + ' ', text, ' '.repeat(LABEL_WIDTH), width);
}

function truncate(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(1, width - 1))}…`;
}

/**
 * Columns separated by two spaces; the first column (node ids, up to 64 bytes) is cut to what
 * the others leave of `width`.
 */
function table(rows: string[][], width: number): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  const others = widths.slice(1).reduce((sum, columnWidth) => sum + columnWidth + 2, 0);
  widths[0] = Math.min(widths[0] ?? 0, Math.max(8, width - others));
  return rows.map((row) =>
    row
      .map((cell, index) => (index === 0 ? truncate(cell, widths[0] as number) : cell))
      .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** A member's state in the master's view: the dashboard's own type, read over GET /api/cluster. */
export type MasterViewMember = DashboardMember;

/** The cluster as the master last reported it to this agent (GET /api/cluster's `view`). */
export interface MasterView {
  masterId: string;
  term: number;
  round: number;
  ageMs: number;
  members: MasterViewMember[];
}

const heard = (ms: number | null) => formatAgoMs(ms).replace(' ago', '');

function peerRows(status: StatusReport, view: MasterView | null): { title: string; rows: string[][] } {
  const header = ['PEER', 'ADDRESS', 'HEARD', 'OFFSET', 'DELAY', 'STATE'];
  const address = (nodeId: string) => {
    const peer = status.peers.find((entry) => entry.nodeId === nodeId);
    return peer ? `${peer.address}:${peer.port}` : nodeId === status.nodeId ? `${status.listen.address}:${status.listen.port}` : '-';
  };
  if (status.role === 'master') {
    const rows = status.peers.map((peer) => {
      // correctionUnsendable: absent from older agents.
      const state = peer.suspect ? 'not answering' : peer.correctionUnsendable === true ? 'NOT CORRECTED' : peer.excluded ? 'outlier' : peer.sampleDiscarded ? 'slow sample' : 'ok';
      return [peer.nodeId, `${peer.address}:${peer.port}`, heard(peer.lastHeardAgoMs), formatShortNs(peer.offsetNs, true), formatShortNs(peer.delayNs), state];
    });
    return { title: `Peers (${status.peers.length}), as this master measures them:`, rows: [header, ...rows] };
  }
  const usable = view !== null && view.masterId === status.masterId && view.term === status.term;
  if (!usable) {
    // A member hears little from the others: it cannot say whether they are well.
    const rows = status.peers.map((peer) => [
      peer.nodeId,
      `${peer.address}:${peer.port}`,
      heard(peer.lastHeardAgoMs),
      '-',
      '-',
      peer.nodeId === status.masterId ? (peer.suspect ? 'master, silent' : 'master') : peer.suspect ? 'not heard' : 'unknown',
    ]);
    return { title: `Peers (${status.peers.length}) as heard here; no view from the master yet, so their state is unknown:`, rows: [header, ...rows] };
  }
  const inView = new Set(view.members.map((member) => member.nodeId));
  const rows = view.members.map((member) => {
    const state = member.role === 'master' ? 'master' : member.suspect ? 'not answering' : member.excluded ? 'outlier' : member.discarded ? 'slow sample' : !member.synced ? 'unsynced' : 'ok';
    return [`${member.self ? '*' : ''}${member.nodeId}`, address(member.nodeId), heard(member.lastHeardAgoMs), member.role === 'master' ? '-' : formatShortNs(member.offsetNs, true), member.role === 'master' ? '-' : formatShortNs(member.delayNs), state];
  });
  // Peers this agent knows that the master does not count as members.
  for (const peer of status.peers) {
    if (!inView.has(peer.nodeId)) rows.push([peer.nodeId, `${peer.address}:${peer.port}`, heard(peer.lastHeardAgoMs), '-', '-', 'not a member']);
  }
  return {
    title: `Members (${view.members.length}) as the master ${view.masterId} sees them (round ${view.round}, ${formatAgoMs(view.ageMs)}; * this node):`,
    rows: [header, ...rows],
  };
}

const UPSTREAM_MODE_TEXT: Record<UpstreamStatusReport['mode'], string> = {
  acquiring: 'acquiring (no healthy upstream yet, or not followed in this mastership)',
  standby: 'standby (healthy; the master sets the time)',
  following: 'following (this master steers the cluster to it)',
  holdover: 'holdover (upstream lost: running on the learned frequency)',
  refused: 'REFUSED (beyond --max-correction from the cluster\'s time; the cluster keeps its time)',
};

/** The upstream field and one line per server. */
function upstreamLines(upstream: UpstreamStatusReport, width: number): string[] {
  const selection = upstream.selection;
  const chosen = selection.ok
    ? `selected ${selection.systemPeer} (stratum ${selection.stratum}${selection.leap !== 0 ? `, leap ${selection.leap}` : ''}), offset ${formatOffsetNs(selection.offsetNs)} ±${formatDurationNs(selection.errorBoundNs)}, ${selection.truechimers.length} truechimer${selection.truechimers.length === 1 ? '' : 's'}`
    : `no selection: ${selection.reason}`;
  const health = upstream.healthy ? 'healthy' : `not healthy${upstream.lastUnusable ? ` (${upstream.lastUnusable})` : ''}`;
  const holdDown = upstream.holdDownRemainingMs !== null ? `, held down ${formatDurationNs(upstream.holdDownRemainingMs * 1e6)} more` : '';
  const refused = upstream.refusals > 0 ? `; ${upstream.refusals} refused (last ${formatOffsetNs(upstream.refused?.offsetNs ?? null)})` : '';
  const lines = field('Upstream', `${UPSTREAM_MODE_TEXT[upstream.mode]}; ${health}, class ${upstream.clockClass}${holdDown}; ${chosen}; acquired ${upstream.acquired}, lost ${upstream.lost}${refused}`, width);
  const rows = [['  SERVER', 'ADDRESS', 'REACH', 'ST', 'OFFSET', 'DELAY', 'VERDICT']];
  for (const server of upstream.servers) {
    rows.push([
      `  ${server.host}:${server.port}`,
      server.address ?? '-',
      // Octal, as ntpq and chronyc print the reach register.
      server.reach.toString(8),
      server.stratum === null ? '-' : String(server.stratum),
      formatShortNs(server.offsetNs, true),
      formatShortNs(server.delayNs),
      server.state === 'resolving' ? 'resolving' : server.verdict,
    ]);
  }
  return [...lines, ...table(rows, width)];
}

/**
 * The status for people: a verdict line, then one field per line, wrapped to `width` (80), then the
 * peers. On a member, `view` is the master's view of the cluster (GET /api/cluster), which alone
 * can say whether the other members are well; without it their state is shown as unknown.
 */
export function formatStatus(status: StatusReport, view: MasterView | null = null, width = STATUS_WIDTH): string {
  const lines: string[] = [];
  const add = (label: string, text: string) => lines.push(...field(label, text, width));
  const verdict = typeof status.verdict === 'string' ? { verdict: status.verdict, verdictReason: status.verdictReason } : verdictOf(status);
  add('Verdict', `${verdict.verdict} (${verdict.verdictReason})`);
  const master = status.role === 'master' ? 'this node' : (status.masterId ?? 'none yet');
  add('Node', `${status.nodeId} (cluster ${status.cluster}, priority ${status.priority}${status.neverMaster ? ', never master' : ''}), UDP ${status.listen.address}:${status.listen.port}`);
  const auth = status.auth;
  add(
    'Cluster',
    auth?.enabled
      ? `keyed: frames authenticated, sent with key ${auth.sendKeyId}${auth.keyIds.length > 1 ? ` (accepting ${auth.keyIds.join(', ')})` : ''}`
      : 'open: frames not authenticated (no --key-file; see README "Security")',
  );
  add('Role', `${status.role}; master: ${master}; term ${status.term}`);
  const clock = status.clock;
  const signedPpm = (ppm: number) => `${ppm >= 0 ? '+' : ''}${ppm.toFixed(3)} ppm`;
  // Older agents lack some of these fields: print what is there.
  const drift = clock.virtualDriftPpm === null || clock.virtualDriftPpm === undefined ? '' : `, oscillator ${signedPpm(clock.virtualDriftPpm)} (--virtual-drift)`;
  const base = clock.virtualBase === 'host' ? ' on the host clock (moves when the host clock is steered)' : clock.virtualBase === 'monotonic-raw' ? ' on CLOCK_MONOTONIC_RAW' : '';
  // Older agents have no reference: print nothing about it.
  const upstreamMode = status.upstream ? ` (${status.upstream.mode})` : '';
  const reference = clock.reference === undefined ? '' : clock.reference === 'upstream' ? `, reference upstream${upstreamMode}` : `, reference cluster${upstreamMode}`;
  add(
    'Clock',
    `${clock.mode}, ${clock.synchronized ? 'synchronized' : 'not synchronized'}${clock.provisional === true ? ' (provisional: the cluster is still forming)' : ''}${reference}; ` +
      (clock.mode === 'virtual' ? `offset from host ${formatOffsetNs(clock.hostOffsetNs)}, ` : '') +
      `frequency ${signedPpm(clock.frequencyPpm)}${drift}, slew left ${formatOffsetNs(clock.slewRemainingNs)}` +
      ((clock.slewRatePpm ?? 0) > 0 ? ` at ${clock.slewRatePpm.toFixed(0)} ppm` : '') +
      `, ${clock.steps} steps, ${clock.slews} slews${base}`,
  );
  // Older agents have no bound: print nothing rather than "unknown".
  if (clock.errorBoundNs !== undefined) {
    add(
      'Bound',
      clock.errorBoundNs === null
        ? "none: not synchronized (or no measurement of the master yet), this clock's time carries no promise"
        : `±${formatDurationNs(clock.errorBoundNs)} from the master's clock${status.role === 'master' ? ' (this is the master)' : ''}`,
    );
  }
  if (clock.kernel) {
    const kernel = clock.kernel;
    add(
      'Kernel',
      `${kernel.unsync ? 'STA_UNSYNC set' : 'synchronized'}, frequency ${signedPpm(kernel.frequencyPpm)}, ` +
        `max error ${formatDurationNs(kernel.maxErrorNs)}, estimated error ${formatDurationNs(kernel.estErrorNs)}, status 0x${kernel.status.toString(16)}`,
    );
  }
  const tracking = status.tracking;
  if (tracking) {
    const holdover = tracking.holdover ? ' (holdover: no correction for over two poll intervals)' : '';
    add(
      'Tracking',
      `reference ${tracking.referenceId ?? '-'}, last offset ${formatOffsetNs(tracking.lastOffsetNs)}, RMS offset ${formatDurationNs(tracking.rmsOffsetNs)}, ` +
        `${tracking.updates} updates${tracking.spikes > 0 ? ` (${tracking.spikes} spikes held)` : ''}, last ${formatAgoMs(tracking.lastUpdateAgoMs)}${holdover}`,
    );
    add(
      'Policy',
      `step at ${tracking.stepThresholdNs > 0 ? `+${formatDurationNs(tracking.stepThresholdNs)}` : 'never'} once synchronized (never backwards), ` +
        `slew up to ${tracking.slewRatePpmMax.toFixed(0)} ppm, refuse above ${tracking.correctionNsMax === null ? 'never' : formatDurationNs(tracking.correctionNsMax)}` +
        (tracking.refused > 0 ? `; REFUSED ${tracking.refused} (last ${formatOffsetNs(tracking.lastRefused?.correctionNs ?? null)}, ${formatAgoMs(tracking.lastRefused?.agoMs ?? null)})` : ''),
    );
  }
  const stamps = status.timestamps;
  if (stamps) {
    add(
      'Timestamps',
      `receive: ${stamps.rx === 'kernel' ? 'kernel' : `user space${stamps.whyNotKernel ? ` (${stamps.whyNotKernel})` : ''}`}; ` +
        `${stamps.rxStampedByKernel} datagrams stamped by the kernel, ${stamps.rxStampedByUser} in user space; transmit: user space`,
    );
  }
  const ntp = status.ntp;
  if (ntp) {
    const served = ntp.serving ? `serving on UDP ${ntp.addresses.join(', ')}${ntp.why !== null ? `; ${ntp.why}` : ''}` : `not serving: ${ntp.why ?? 'unknown'}`;
    const limited = ntp.counters.rateLimited > 0 ? `, ${ntp.counters.rateLimited} rate-limited` : '';
    add('NTP', `${served}; ${ntp.counters.requests} requests, ${ntp.counters.replies} replies (${ntp.counters.repliesUnsynchronized} unsynchronized), ${ntp.counters.dropped} dropped${limited}`);
  }
  if (status.upstream) lines.push(...upstreamLines(status.upstream, width));
  const election = status.election;
  const last = election.last
    ? `last won by ${election.last.winner} in term ${election.last.term} (${election.last.algorithm}, took ${election.last.durationMs.toFixed(1)} ms, ${formatAgoMs(election.last.agoMs)})`
    : 'none finished yet';
  const running = election.inProgress ? `; running: term ${election.inProgress.term} (${election.inProgress.algorithm}, ${election.inProgress.forMs} ms)` : '';
  add('Elections', `${last}${running}; ${election.started} taken part in (ring ${election.byAlgorithm.ring}, bully ${election.byAlgorithm.bully}, takeover ${election.byAlgorithm.takeover ?? 0}), ${election.won} won`);
  if (status.lastRound) {
    const round = status.lastRound;
    add(
      'Round',
      `#${round.round}, ${formatAgoMs(round.agoMs)}: ${round.answered}/${round.members} members answered, median ${formatOffsetNs(round.medianNs)}, ` +
        `average ${formatOffsetNs(round.averageNs)} of those within ${formatDurationNs(round.boundNs)}` +
        (round.excluded.length > 0 ? `, excluded: ${round.excluded.join(', ')}` : ', none excluded') +
        `; following ${round.reference}`,
    );
  }
  if (status.lastCorrection) {
    const correction = status.lastCorrection;
    add('Correction', `${formatOffsetNs(correction.correctionNs)} from ${correction.masterId} (term ${correction.term}, round ${correction.round}, ${formatAgoMs(correction.agoMs)})`);
  }
  const barriers = status.barriers;
  if (barriers.waiting.length > 0 || (barriers.open !== null && barriers.open.length > 0)) {
    const waiting = barriers.waiting.map((entry) => `${entry.name}${entry.count !== null ? ` (initializer of ${entry.count})` : ''} ${formatAgoMs(entry.waitingMs).replace(' ago', '')}`);
    const open = (barriers.open ?? []).map((entry) => `${entry.name} ${entry.present}${entry.count !== null ? `/${entry.count}` : ' waiting, not initialized'}`);
    add('Barriers', `${waiting.length > 0 ? `waiting here: ${waiting.join(', ')}` : 'none waiting here'}${barriers.open !== null ? `; open: ${open.length > 0 ? open.join(', ') : 'none'}` : ''}`);
  }
  const counters = status.counters;
  const reasons = Object.entries(counters.framesRejectedByReason)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${count}`)
    .join(', ');
  add(
    'Frames',
    `received ${counters.framesReceived}, sent ${counters.framesSent}, rejected ${counters.framesRejected}${reasons ? ` (${reasons})` : ''}, ` +
      `other cluster ${counters.framesOtherCluster}, stale ${counters.framesStale}, replayed ${counters.framesReplayed}, send errors ${counters.sendErrors}` +
      (counters.framesFromSelfId > 0 ? `, FROM OUR OWN NODE ID ${counters.framesFromSelfId} (a duplicate --node-id)` : ''),
  );
  lines.push('');
  if (status.peers.length === 0 && (view === null || status.role === 'master')) {
    add('Peers', 'none known');
  } else {
    const { title, rows } = peerRows(status, view);
    lines.push(...wrap('', title, '  ', width));
    lines.push(...table(rows, width));
  }
  return lines.join('\n');
}

/** `berkeley-agent now`: one line, the time first (ISO 8601 with ns, epoch ns), then the bound and the state. */
export function formatTime(time: TimeReport): string {
  const bound = time.errorBoundNs === null ? 'no bound' : `±${formatDurationNs(time.errorBoundNs)}`;
  const master = time.role === 'master' ? 'this agent is the master' : time.masterId === null ? 'no master' : `master ${time.masterId}`;
  const state = time.synchronized && time.errorBoundNs !== null ? 'synchronized' : 'NOT synchronized';
  return `${time.iso}  ${time.timeNs} ns  ${bound}  ${state} (${time.role}, ${master}, ${time.clockMode} clock)`;
}
