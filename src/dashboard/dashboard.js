// berkeley-agent dashboard: polls GET /api/cluster, keeps the offset history for the chart (new
// points only, with ?since=), and redraws the members table, the chart and the events. Plain
// browser JavaScript, no build step; uPlot is served by the agent itself (/vendor/).
'use strict';

(function dashboard() {
  const HISTORY_POINTS_MAX = 600;
  const EVENTS_SHOWN = 100;
  const REFRESH_MS_MIN = 1000;
  const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#4b5563', '#ea580c'];

  const state = {
    timesMs: [],
    /** nodeId -> offsets (ns or null), aligned with timesMs */
    series: new Map(),
    colors: new Map(),
    events: [],
    eventKeys: new Set(),
    chart: null,
    chartKey: '',
    updates: 0,
    refreshMs: REFRESH_MS_MIN,
  };

  const $ = (id) => document.getElementById(id);

  function colorOf(nodeId) {
    let color = state.colors.get(nodeId);
    if (color === undefined) {
      const index = state.colors.size;
      color = index < PALETTE.length ? PALETTE[index] : `hsl(${(index * 137.508) % 360} 65% 45%)`;
      state.colors.set(nodeId, color);
    }
    return color;
  }

  function formatNs(ns, signed) {
    if (ns === null || ns === undefined) return '–';
    const sign = signed ? (ns > 0 ? '+' : ns < 0 ? '−' : '') : '';
    const abs = Math.abs(ns);
    if (abs < 1e3) return `${sign}${abs.toFixed(0)} ns`;
    if (abs < 1e6) return `${sign}${(abs / 1e3).toFixed(abs < 1e4 ? 2 : 1)} µs`;
    if (abs < 1e9) return `${sign}${(abs / 1e6).toFixed(abs < 1e7 ? 3 : 1)} ms`;
    return `${sign}${(abs / 1e9).toFixed(3)} s`;
  }

  function formatAgo(ms) {
    if (ms === null || ms === undefined) return 'never';
    if (ms < 1000) return `${ms} ms ago`;
    if (ms < 120000) return `${(ms / 1000).toFixed(1)} s ago`;
    return `${Math.round(ms / 60000)} min ago`;
  }

  function formatTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function badge(text, kind) {
    return element('span', text, `badge ${kind || ''}`);
  }

  function mergeHistory(history) {
    const known = state.timesMs.length;
    const added = history.timesMs.length;
    if (added === 0) return;
    const incoming = new Map(history.series.map((entry) => [entry.nodeId, entry.offsetsNs]));
    for (const [nodeId, values] of incoming) {
      if (!state.series.has(nodeId)) state.series.set(nodeId, new Array(known).fill(null));
      colorOf(nodeId);
      state.series.get(nodeId).push(...values);
    }
    for (const [nodeId, values] of state.series) if (!incoming.has(nodeId)) values.push(...new Array(added).fill(null));
    state.timesMs.push(...history.timesMs);
    const excess = state.timesMs.length - HISTORY_POINTS_MAX;
    if (excess > 0) {
      state.timesMs.splice(0, excess);
      for (const [nodeId, values] of state.series) {
        values.splice(0, excess);
        if (values.every((value) => value === null)) state.series.delete(nodeId);
      }
    }
  }

  function renderSummary(report) {
    const self = report.self;
    const view = report.view;
    $('cluster-name').textContent = `cluster ${self.cluster}`;
    $('master').textContent = view ? view.masterId : self.masterId || 'none (electing)';
    $('term').textContent = String(view ? view.term : self.term);
    if (view) {
      const suspect = view.members.filter((member) => member.suspect).length;
      $('member-count').textContent = `${view.members.length}${suspect ? ` (${suspect} not answering)` : ''}`;
      const offsets = view.members.filter((member) => !member.suspect && member.offsetNs !== null).map((member) => member.offsetNs);
      $('spread').textContent = offsets.length > 1 ? formatNs(Math.max(...offsets) - Math.min(...offsets), false) : '–';
      $('round').textContent = `#${view.round}, ${formatAgo(view.ageMs)}`;
      const source = self.role === 'master' ? 'this agent is the master' : `as ${view.masterId} last reported it`;
      const target = self.reference === 'upstream'
        ? 'the master\u2019s clock, which follows an upstream NTP server'
        : `the fault-tolerant average (${formatNs(view.averageNs, true)} from the master this round)`;
      $('view-note').textContent = `The cluster ${source}. Offsets are each member's clock minus the master's, measured at the round; the master then moves everyone to ${target}.`;
    } else {
      $('member-count').textContent = '–';
      $('spread').textContent = '–';
      $('round').textContent = '–';
      $('view-note').textContent = self.role === 'electing' ? 'An election is in progress.' : 'Waiting for the master\u2019s first report…';
    }
    $('self').textContent = `${self.nodeId} (${self.role}${self.synchronized ? ', synchronized' : ''})`;
    // Older agents send no reference: the cluster's own time.
    const reference = self.reference === 'upstream' ? 'upstream NTP' : 'cluster (own time)';
    $('reference').textContent = self.upstreamMode ? `${reference}; upstream ${self.upstreamMode}` : reference;
  }

  function renderMembers(view) {
    const body = $('members').tBodies[0];
    body.replaceChildren();
    if (!view) return;
    const members = [...view.members].sort((a, b) => (a.role === b.role ? (a.nodeId < b.nodeId ? -1 : 1) : a.role === 'master' ? -1 : 1));
    for (const member of members) {
      const row = document.createElement('tr');
      row.dataset.nodeId = member.nodeId;
      const name = element('td');
      const swatch = element('span', null, 'swatch');
      swatch.style.background = colorOf(member.nodeId);
      name.append(swatch, member.nodeId);
      if (member.self) name.append(' ', badge('this agent'));
      row.append(name, element('td', member.role));
      row.append(element('td', member.role === 'master' ? '0 (reference)' : formatNs(member.offsetNs, true), 'num'));
      row.append(element('td', member.role === 'master' ? '–' : formatNs(member.delayNs, false), 'num'));
      row.append(element('td', member.role === 'master' ? '–' : formatAgo(member.lastHeardAgoMs), 'num'));
      const flags = element('td');
      if (member.suspect) flags.append(badge('not answering', 'bad'));
      else flags.append(member.synced ? badge('synchronized', 'ok') : badge('not synchronized', 'warn'));
      if (member.excluded) flags.append(badge('excluded from average', 'warn'));
      if (member.discarded) flags.append(badge('sample discarded', 'warn'));
      row.append(flags);
      body.append(row);
    }
  }

  const RECENT_POINTS = 20;
  const MAD_SPAN = 10;

  /**
   * The y range: the steady state, not the first seconds (clocks start up to seconds apart and
   * would flatten microseconds to a line). Robust spread (median +- 10 MAD) of the whole window,
   * widened to keep the last RECENT_POINTS rounds in view; older excursions run off the chart.
   */
  function offsetRangeUs(data) {
    const all = [];
    const recent = [];
    const recentFrom = Math.max(0, data[0].length - RECENT_POINTS);
    for (let column = 1; column < data.length; column += 1) {
      data[column].forEach((value, index) => {
        if (value === null) return;
        all.push(value);
        if (index >= recentFrom) recent.push(value);
      });
    }
    if (all.length === 0) return [-1, 1];
    const median = (values) => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)];
    };
    const center = median(all);
    const mad = median(all.map((value) => Math.abs(value - center)));
    let low = Math.min(center - MAD_SPAN * mad, ...recent, 0);
    let high = Math.max(center + MAD_SPAN * mad, ...recent, 0);
    const pad = Math.max(1, (high - low) * 0.1);
    return [low - pad, high + pad];
  }

  function chartSize() {
    const box = $('chart');
    return { width: Math.max(300, box.clientWidth - 16), height: 300 };
  }

  function renderChart() {
    const ids = [...state.series.keys()].sort();
    const data = [state.timesMs.map((ms) => ms / 1000), ...ids.map((id) => state.series.get(id).map((ns) => (ns === null ? null : ns / 1000)))];
    const key = ids.join('\u0000');
    document.body.dataset.points = String(state.timesMs.length);
    document.body.dataset.series = String(ids.length);
    $('chart-note').textContent = state.timesMs.length === 0 ? 'No rounds yet: the chart fills as the master reports rounds.' : `${state.timesMs.length} rounds, µs (each member's clock minus the master's at the round)`;
    if (typeof window.uPlot !== 'function') return;
    if (state.chart !== null && key === state.chartKey) {
      state.chart.setData(data);
      return;
    }
    if (state.chart !== null) state.chart.destroy();
    state.chartKey = key;
    const options = {
      ...chartSize(),
      scales: { x: { time: true }, y: { range: (u) => offsetRangeUs(u.data) } },
      axes: [{}, { label: 'offset from master', size: 70, values: (_u, ticks) => ticks.map((tick) => formatNs(tick * 1000, true)) }],
      series: [{}, ...ids.map((id) => ({ label: id, stroke: colorOf(id), width: 1.5, spanGaps: false, value: (_u, v) => (v === null ? '–' : formatNs(v * 1000, true)) }))],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
    state.chart = new window.uPlot(options, data, $('chart'));
  }

  function renderEvents(events) {
    for (const event of events) {
      const key = `${event.atMs}|${event.kind}|${event.text}`;
      if (state.eventKeys.has(key)) continue;
      state.eventKeys.add(key);
      state.events.push(event);
    }
    while (state.events.length > EVENTS_SHOWN) {
      const old = state.events.shift();
      state.eventKeys.delete(`${old.atMs}|${old.kind}|${old.text}`);
    }
    const list = $('events');
    list.replaceChildren();
    for (const event of [...state.events].reverse()) {
      const item = element('li');
      item.dataset.kind = event.kind;
      item.append(element('time', formatTime(event.atMs)), event.text);
      list.append(item);
    }
    if (state.events.length === 0) list.append(element('li', 'No events yet.', 'muted'));
  }

  function setConnection(text, kind) {
    const node = $('connection');
    node.textContent = text;
    node.className = `badge ${kind}`;
  }

  async function refresh() {
    const last = state.timesMs[state.timesMs.length - 1];
    const url = last === undefined ? '/api/cluster' : `/api/cluster?since=${last}`;
    try {
      const response = await fetch(url, { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const report = await response.json();
      state.refreshMs = Math.max(REFRESH_MS_MIN, report.self.pollIntervalMs);
      mergeHistory(report.history);
      renderSummary(report);
      renderMembers(report.view);
      renderChart();
      renderEvents(report.events);
      state.updates += 1;
      document.body.dataset.updates = String(state.updates);
      document.body.dataset.members = String(report.view ? report.view.members.length : 0);
      setConnection(`live · ${formatTime(report.nowMs)}`, 'ok');
    } catch (error) {
      setConnection(`agent unreachable (${error.message})`, 'bad');
    }
    setTimeout(refresh, state.refreshMs);
  }

  window.addEventListener('resize', () => {
    if (state.chart !== null) state.chart.setSize(chartSize());
  });
  refresh();
})();
