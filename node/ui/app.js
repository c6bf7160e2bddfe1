// walletd dashboard: reads this node's API with the operator's token and draws it.
//
// Plain JavaScript served as is from the walletd binary (no framework, no build step). Every
// request carries the token the operator typed (kept in sessionStorage, so it is gone when the
// tab closes): `Authorization: Bearer` on fetches, `?access_token=` on the WebSocket. Nothing
// is requested before the operator presses Connect. Every failure is shown on the page: a
// refused token (401) stops the polling until a new token is entered, a missing scope (403) or
// a route this listener does not serve (404) is shown in its panel, and a node that does not
// answer is named in the banner while the polling goes on.
'use strict';

(function () {
  /** sessionStorage key of the token; present (even empty) once the operator connected. */
  const TOKEN_KEY = 'walletd.dashboard.token';
  /** How often each panel reads the node. */
  const STATS_EVERY_MS = 1000;
  const STATUS_EVERY_MS = 2000;
  const PENDING_EVERY_MS = 2000;
  /** Most pending transfers (and disbursements) listed. */
  const PENDING_SHOWN_MAX = 50;
  /** Most journal entries the account view lists. */
  const ENTRIES_SHOWN_MAX = 20;
  /** Backoff of the WebSocket's reconnections. */
  const WS_RETRY_MS_MIN = 500;
  const WS_RETRY_MS_MAX = 10000;
  /** Width of the charts, seconds (the node keeps as many samples). */
  const WINDOW_SECS = 300;
  /** An account id as API.md defines it. */
  const ACCOUNT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
  /** Entry kinds that add to the balance or to the available money, and those that take. */
  const KINDS_IN = new Set(['deposit', 'transfer_in', 'release']);
  const KINDS_OUT = new Set(['withdrawal', 'transfer_out', 'hold']);

  /** What the token field says when no token is set. */
  const TOKEN_PLACEHOLDER = 'bearer token (admin + read)';

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- token and requests

  function connected() {
    return sessionStorage.getItem(TOKEN_KEY) !== null;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  /** A refused or failed request: HTTP status (0 when the node did not answer), code, sentence. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** GETs a JSON body from the node with the token; throws ApiError. */
  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (token()) headers.Authorization = 'Bearer ' + token();
    let resp;
    let text;
    try {
      resp = await fetch(path, { headers, cache: 'no-store' });
      text = await resp.text();
    } catch (e) {
      throw new ApiError(0, 'unreachable', 'the node at ' + location.host + ' does not answer');
    }
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const err = body && body.error;
      throw new ApiError(
        resp.status,
        (err && err.code) || 'http_' + resp.status,
        (err && err.message) || text.trim() || resp.statusText,
      );
    }
    return body;
  }

  // ---------------------------------------------------------------- problems shown on the page

  /** The banner's messages by source, shown together. */
  const banner = new Map();

  function setBanner(source, message) {
    if (message) banner.set(source, message);
    else banner.delete(source);
    const el = $('banner');
    el.textContent = [...banner.values()].join(' ');
    el.hidden = banner.size === 0;
  }

  function setPanelError(panel, message) {
    const el = $(panel + '-error');
    el.textContent = message || '';
    el.hidden = !message;
  }

  /** One sentence for a failed request of `what`. */
  function explain(e, what) {
    if (!(e instanceof ApiError)) return what + ': ' + e;
    if (e.status === 403) return what + ': not allowed (403 ' + e.code + '): ' + e.message;
    if (e.status === 404 && e.code === 'not_found') {
      return what + ': this address does not serve it (404 not_found). With node.admin_listen, ' +
        '/admin routes are on the admin address and /v1 routes on the public one.';
    }
    return what + ': ' + e.status + ' ' + e.code + ': ' + e.message;
  }

  /** Shows a failure where it belongs: the banner for the token and the node, else the panel. */
  function failed(panel, e, what) {
    if (e instanceof ApiError && e.status === 401) {
      tokenRefused(e.message);
    } else if (e instanceof ApiError && e.status === 0) {
      setBanner('node', 'The node does not answer (' + e.message + '); retrying.');
      markStale(true);
    } else {
      setPanelError(panel, explain(e, what));
    }
  }

  function answered(panel) {
    setBanner('node', null);
    markStale(false);
    setPanelError(panel, null);
  }

  function markStale(stale) {
    for (const el of document.querySelectorAll('main .panel')) el.classList.toggle('stale', stale);
  }

  function tokenRefused(message) {
    stopSession();
    sessionStorage.removeItem(TOKEN_KEY);
    setBanner('token', 'The token was refused (401 unauthorized): ' + message +
      '. Enter a valid token and press Connect.');
    $('token').placeholder = TOKEN_PLACEHOLDER;
    $('welcome').hidden = false;
    $('token').focus();
  }

  // ---------------------------------------------------------------- formatting

  function fmtInt(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '–';
  }

  function fmtDuration(secs) {
    const s = Math.max(0, Math.floor(secs));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' m ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' m';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function fmtMs(us) {
    const ms = us / 1000;
    return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
  }

  function fmtTime(ms) {
    return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  }

  /** A table cell: text, optional class and title. */
  function cell(text, cls, title) {
    const td = document.createElement('td');
    if (text instanceof Node) td.appendChild(text);
    else td.textContent = text;
    if (cls) td.className = cls;
    if (title) td.title = title;
    return td;
  }

  function fillTable(id, rows) {
    const body = $(id).tBodies[0];
    body.replaceChildren(...rows);
  }

  // ---------------------------------------------------------------- polling

  /** Bumped when the operator connects or forgets the token: older loops stop. */
  let session = 0;

  /** Runs `step` now and then every `everyMs` after it finished, while the session lasts. */
  function loop(everyMs, step) {
    const mine = session;
    const go = async () => {
      if (mine !== session) return;
      await step();
      if (mine === session) setTimeout(go, everyMs);
    };
    go();
  }

  function startSession() {
    session += 1;
    setBanner('token', null);
    $('welcome').hidden = true;
    loop(STATUS_EVERY_MS, refreshStatus);
    loop(STATS_EVERY_MS, refreshStats);
    loop(PENDING_EVERY_MS, refreshPending);
    if (account.id) showAccount(account.id);
  }

  function stopSession() {
    session += 1;
    account.gen += 1;
    closeStream();
  }

  // ---------------------------------------------------------------- members and facts

  function memberState(m) {
    if (m.leaving) return ['leaving', 'draining: it has left the ring'];
    if (m.dropped) return ['suspect', 'dropped from the ring: silent past cluster.failure_timeout_ms'];
    if (m.active_actors === undefined || m.active_actors === null) {
      return ['suspect', 'did not answer the status request in time'];
    }
    return ['up', 'in the ring and answering'];
  }

  function shareCell(share) {
    const wrap = document.createElement('span');
    wrap.className = 'share';
    const label = document.createElement('span');
    label.textContent = (share * 100).toFixed(1) + '%';
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.width = Math.max(0, Math.min(100, share * 100)) + '%';
    track.appendChild(fill);
    wrap.append(label, track);
    return cell(wrap, 'num');
  }

  async function refreshStatus() {
    let s;
    try {
      s = await api('/admin/status');
    } catch (e) {
      failed('members', e, 'Cluster status');
      return;
    }
    answered('members');
    $('fact-node').textContent = s.node_id;
    $('fact-version').textContent = s.version;
    $('fact-backend').textContent = s.backend;
    $('fact-uptime').textContent = fmtDuration(s.uptime_s);
    $('fact-actors').textContent = fmtInt(s.active_actors);
    $('fact-pending').textContent = fmtInt(s.pending_sagas);
    $('fact-commits').textContent = fmtInt(s.commits);
    fillTable('members', s.members.map((m) => {
      const [state, why] = memberState(m);
      const badge = document.createElement('span');
      badge.className = 'state ' + state;
      badge.textContent = state;
      const tr = document.createElement('tr');
      tr.dataset.node = m.node_id;
      if (m.node_id === s.node_id) tr.className = 'me';
      tr.append(
        cell(m.node_id),
        cell(m.http),
        cell(badge, 'text', why),
        shareCell(m.ring_share),
        cell(m.active_actors == null ? '?' : fmtInt(m.active_actors), 'num'),
        cell(fmtInt(m.pending_sagas), 'num'),
      );
      return tr;
    }));
  }

  // ---------------------------------------------------------------- throughput and latency

  /** The last samples read; none yet draws empty charts. */
  let lastSamples = [];

  async function refreshStats() {
    let w;
    try {
      w = await api('/admin/stats');
    } catch (e) {
      failed('stats', e, 'Request statistics');
      return;
    }
    answered('stats');
    lastSamples = w.samples;
    drawStats();
  }

  function drawStats() {
    const samples = lastSamples;
    // The node's clock places the window, so a skewed browser clock does not shift it.
    const end = samples.length ? samples[samples.length - 1].at_ms + 1000 : Date.now();
    const start = end - WINDOW_SECS * 1000;
    const reqs = samples.map((s) => [s.at_ms, s.requests]);
    const errs = samples.map((s) => [s.at_ms, s.errors]);
    // A second without requests has no latency: a gap, not a zero.
    const lat = (key) => samples.map((s) => [s.at_ms, s.requests ? s[key] / 1000 : null]);
    drawChart($('tput-chart'), {
      start, end, min: 1, unit: '/s',
      series: [
        { label: 'requests', color: '#2563eb', points: reqs, fill: true },
        { label: '5xx', color: '#dc2626', points: errs },
      ],
    });
    drawChart($('lat-chart'), {
      start, end, min: 1, unit: ' ms',
      series: [
        { label: 'p50', color: '#0d9488', points: lat('p50_us') },
        { label: 'p99', color: '#9333ea', points: lat('p99_us') },
        { label: 'max', color: '#cbd5e1', points: lat('max_us') },
      ],
    });
    const last = samples[samples.length - 1];
    const minute = samples.slice(-60);
    const perSec = minute.reduce((a, s) => a + s.requests, 0) / Math.max(1, minute.length);
    const tput = $('tput-now');
    const lat50 = $('lat-now');
    if (!last) {
      tput.textContent = 'no sample yet';
      lat50.textContent = '–';
      return;
    }
    tput.replaceChildren(
      bold(fmtInt(last.requests)), ' req/s last second · ',
      bold(perSec.toFixed(1)), ' req/s over the last minute · ',
      bold(fmtInt(last.errors)), ' 5xx/s',
    );
    tput.dataset.requests = String(last.requests);
    tput.dataset.windowRequests = String(samples.reduce((a, s) => a + s.requests, 0));
    if (last.requests) {
      lat50.replaceChildren(
        'p50 ', bold(fmtMs(last.p50_us)), ' ms · p99 ', bold(fmtMs(last.p99_us)),
        ' ms · max ', bold(fmtMs(last.max_us)), ' ms (last second)',
      );
    } else {
      lat50.textContent = 'no request in the last second';
    }
  }

  function bold(text) {
    const b = document.createElement('b');
    b.textContent = text;
    return b;
  }

  /** The smallest of 1, 2, 5 times a power of ten at or above `v`, and how many equal
   *  steps of round size divide it (5 of 0.2, 4 of 0.5, 5 of 1). */
  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5]) if (m * p >= v) return [m * p, m === 2 ? 4 : 5];
    return [10 * p, 5];
  }

  /**
   * Draws time series on a canvas: `opts.series` of `{label, color, points: [[ms, value|null]],
   * fill}`, x from `opts.start` to `opts.end` (ms), y from 0 to a round maximum at least
   * `opts.min`.
   */
  function drawChart(canvas, opts) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || canvas.width;
    const cssH = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const left = 52;
    const right = 10;
    const top = 22;
    const bottom = 20;
    const w = cssW - left - right;
    const h = cssH - top - bottom;
    let max = opts.min;
    for (const s of opts.series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
    let steps;
    [max, steps] = niceCeil(max);
    const x = (t) => left + ((t - opts.start) / (opts.end - opts.start)) * w;
    const y = (v) => top + h - (v / max) * h;

    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.lineWidth = 1;
    for (let i = 0; i <= steps; i++) {
      const v = (max / steps) * i;
      const yy = Math.round(y(v)) + 0.5;
      ctx.strokeStyle = '#e2e5ea';
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(left + w, yy);
      ctx.stroke();
      ctx.fillStyle = '#677086';
      ctx.textAlign = 'right';
      const label = String(+v.toFixed(2));
      ctx.fillText(label + opts.unit, left - 6, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let m = 0; m <= WINDOW_SECS / 60; m++) {
      const t = opts.end - m * 60000;
      const xx = Math.round(x(t)) + 0.5;
      ctx.fillStyle = '#677086';
      const at = Math.max(left + 18, Math.min(xx, left + w - 12));
      ctx.fillText(m === 0 ? 'now' : '-' + m + ' min', at, top + h + 5);
    }

    for (const s of opts.series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      let open = false;
      for (const [t, v] of s.points) {
        if (t < opts.start) continue;
        if (v === null) {
          open = false;
          continue;
        }
        if (open) ctx.lineTo(x(t + 500), y(v));
        else ctx.moveTo(x(t + 500), y(v));
        open = true;
      }
      ctx.stroke();
      if (s.fill) {
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = s.color;
        const pts = s.points.filter(([t, v]) => t >= opts.start && v !== null);
        if (pts.length > 1) {
          ctx.beginPath();
          ctx.moveTo(x(pts[0][0] + 500), y(0));
          for (const [t, v] of pts) ctx.lineTo(x(t + 500), y(v));
          ctx.lineTo(x(pts[pts.length - 1][0] + 500), y(0));
          ctx.closePath();
          ctx.fill();
        }
        ctx.globalAlpha = 1;
      }
    }

    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    let lx = left;
    for (const s of opts.series) {
      ctx.fillStyle = s.color;
      ctx.fillRect(lx, 6, 10, 10);
      ctx.fillStyle = '#1d2330';
      ctx.fillText(s.label, lx + 14, 11);
      lx += 24 + ctx.measureText(s.label).width;
    }
    canvas.dataset.samples = String(opts.series[0].points.length);
  }

  // ---------------------------------------------------------------- pending transfers

  async function refreshPending() {
    let p;
    try {
      p = await api('/admin/pending?limit=' + PENDING_SHOWN_MAX);
    } catch (e) {
      failed('pending', e, 'Pending transfers');
      return;
    }
    answered('pending');
    const now = Date.now();
    const age = (ms) => fmtDuration((now - ms) / 1000);
    fillTable('pending', p.transfers.map((t) => {
      const tr = document.createElement('tr');
      tr.append(cell(t.id), cell(t.from), cell(t.to), cell(fmtInt(t.amount), 'num'),
        cell(age(t.created_at), 'num'));
      return tr;
    }));
    const ds = p.disbursements || [];
    fillTable('disbursing', ds.map((d) => {
      const tr = document.createElement('tr');
      tr.append(cell(d.id), cell(d.from), cell(fmtInt(d.legs.length), 'num'),
        cell(fmtInt(d.total), 'num'), cell(age(d.created_at), 'num'));
      return tr;
    }));
    $('pending').hidden = p.transfers.length === 0;
    $('pending-empty').hidden = p.transfers.length > 0;
    $('disbursing').hidden = ds.length === 0;
    const shown = p.transfers.length + ds.length;
    $('pending-count').textContent = p.truncated
      ? 'the oldest ' + shown + ' of more'
      : shown + ' open';
  }

  // ---------------------------------------------------------------- account view

  /** The account shown and its stream. */
  const account = {
    /** Bumped for each account shown: events of an older one are ignored. */
    gen: 0,
    id: null,
    /** The last `GET /v1/accounts/{id}`. */
    view: null,
    /** Seq of the balances shown (an ordinary account; a sharded one shows the sums). */
    shownSeq: 0,
    ws: null,
    retryMs: WS_RETRY_MS_MIN,
    retryTimer: null,
    /** Last seq delivered per shard ('' for an ordinary account), to resume from. */
    lastSeq: new Map(),
    /** Entries shown, by 'shard:seq'. */
    entries: new Map(),
    /** Re-reads of a sharded account's sums: one at a time, one more if asked meanwhile. */
    sumsReading: false,
    sumsAgain: false,
  };

  function shardKeys() {
    const k = account.view && account.view.shards;
    if (!k) return [null];
    return Array.from({ length: k }, (_, j) => j);
  }

  function keyOf(shard) {
    return shard === null || shard === undefined ? '' : String(shard);
  }

  async function showAccount(id) {
    closeStream();
    account.gen += 1;
    const gen = account.gen;
    account.id = id;
    account.view = null;
    account.shownSeq = 0;
    account.lastSeq.clear();
    account.entries.clear();
    account.retryMs = WS_RETRY_MS_MIN;
    renderEntries();
    let v;
    try {
      v = await api('/v1/accounts/' + encodeURIComponent(id));
    } catch (e) {
      if (gen !== account.gen) return;
      $('account').hidden = true;
      setLive(null);
      failed('account', e, 'Account ' + id);
      return;
    }
    if (gen !== account.gen) return;
    setPanelError('account', null);
    applyView(v);
    $('account').hidden = false;
    openStream(gen);
  }

  function applyView(v) {
    if (!v.shards && account.view && v.seq < account.shownSeq) return;
    account.view = v;
    if (!v.shards) account.shownSeq = v.seq;
    setMoney(v.balance, v.available, v.held);
    const parts = [v.id, v.currency, v.status];
    if (v.shards) parts.push(v.shards + ' shards (sums; an entry shows its shard:seq and balance)');
    else parts.push('seq ' + v.seq);
    $('entries-balance').textContent = v.shards ? 'shard balance' : 'balance';
    $('acct-meta').textContent = parts.join(' · ');
  }

  function setMoney(balance, available, held) {
    for (const [id, v] of [['acct-balance', balance], ['acct-available', available], ['acct-held', held]]) {
      const el = $(id);
      el.textContent = fmtInt(v);
      el.dataset.value = String(v);
    }
  }

  /** Re-reads a sharded account's sums (its frames carry one shard's balances). */
  async function refreshSums(gen) {
    if (account.sumsReading) {
      account.sumsAgain = true;
      return;
    }
    account.sumsReading = true;
    try {
      do {
        account.sumsAgain = false;
        const v = await api('/v1/accounts/' + encodeURIComponent(account.id));
        if (gen !== account.gen) return;
        applyView(v);
      } while (account.sumsAgain);
    } catch (e) {
      if (gen === account.gen) failed('account', e, 'Account ' + account.id);
    } finally {
      account.sumsReading = false;
    }
  }

  function setLive(on, why) {
    const el = $('account-live');
    if (on === null) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    el.className = 'live ' + (on ? 'on' : 'off');
    el.textContent = on ? 'live' : 'stream down';
    el.title = why || '';
  }

  function openStream(gen) {
    const q = token() ? '?access_token=' + encodeURIComponent(token()) : '';
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(scheme + '//' + location.host + '/v1/stream' + q);
    account.ws = ws;
    ws.onopen = () => {
      if (gen !== account.gen) return;
      account.retryMs = WS_RETRY_MS_MIN;
      for (const shard of shardKeys()) {
        const frame = { op: 'subscribe', account: account.id };
        if (shard !== null) frame.shard = shard;
        const last = account.lastSeq.get(keyOf(shard));
        // A resumed subscription replays what it missed; a first one starts live.
        if (last !== undefined) frame.from_seq = last;
        ws.send(JSON.stringify(frame));
      }
    };
    ws.onmessage = (ev) => {
      if (gen !== account.gen) return;
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (_) {
        setPanelError('account', 'Stream: a frame that is not JSON');
        return;
      }
      onFrame(gen, f);
    };
    ws.onclose = (ev) => {
      if (gen !== account.gen || account.ws !== ws) return;
      account.ws = null;
      const secs = (account.retryMs / 1000).toFixed(1);
      const why = 'The stream closed (code ' + ev.code + (ev.reason ? ': ' + ev.reason : '') +
        '): the node is down, or the token lacks the read scope; reconnecting in ' + secs + ' s.';
      setLive(false, why);
      setPanelError('account', why);
      account.retryTimer = setTimeout(() => {
        account.retryTimer = null;
        if (gen === account.gen) reconnect(gen);
      }, account.retryMs);
      account.retryMs = Math.min(WS_RETRY_MS_MAX, account.retryMs * 2);
    };
  }

  /** Reads the account's balances again (after a reconnection, or a subscription that
   *  found it moved since the first read). */
  async function rereadView(gen) {
    try {
      const v = await api('/v1/accounts/' + encodeURIComponent(account.id));
      if (gen !== account.gen) return;
      setPanelError('account', null);
      applyView(v);
    } catch (e) {
      if (gen === account.gen) failed('account', e, 'Account ' + account.id);
    }
  }

  /** Reconnects the stream: balances read again, every subscription resumed from its seq. */
  async function reconnect(gen) {
    await rereadView(gen);
    if (gen === account.gen && connected() && account.ws === null) openStream(gen);
  }

  function closeStream() {
    if (account.retryTimer) clearTimeout(account.retryTimer);
    account.retryTimer = null;
    const ws = account.ws;
    account.ws = null;
    if (ws) ws.close();
  }

  function onFrame(gen, f) {
    switch (f.type) {
      case 'subscribed': {
        setLive(true);
        setPanelError('account', null);
        const key = keyOf(f.shard);
        if (!account.lastSeq.has(key)) {
          account.lastSeq.set(key, f.seq);
          loadRecent(gen, f.shard, f.seq);
          // Something may have moved between the first read and the subscription.
          if (account.view && account.view.shards) refreshSums(gen);
          else if (f.seq > account.shownSeq) rereadView(gen);
        }
        break;
      }
      case 'balance': {
        const key = keyOf(f.shard);
        const last = account.lastSeq.get(key);
        if (last !== undefined && f.seq <= last) break;
        account.lastSeq.set(key, f.seq);
        addEntry(Object.assign({}, f.entry, { shard: f.shard }), true);
        renderEntries();
        if (account.view && account.view.shards) {
          refreshSums(gen);
        } else if (f.seq > account.shownSeq) {
          account.shownSeq = f.seq;
          setMoney(f.balance, f.available, f.held);
          $('acct-meta').textContent = [account.view.id, account.view.currency,
            account.view.status, 'seq ' + f.seq].join(' · ');
        }
        break;
      }
      case 'error':
        if (f.code === 'unauthorized') tokenRefused(f.message);
        else setPanelError('account', 'Stream: ' + f.code + ': ' + f.message);
        break;
      default:
        break;
    }
  }

  /** Reads the entries up to `seq` of one shard (or of the account) that the view lists. */
  async function loadRecent(gen, shard, seq) {
    if (seq === 0) {
      renderEntries();
      return;
    }
    let path = '/v1/accounts/' + encodeURIComponent(account.id) + '/entries?after_seq=' +
      Math.max(0, seq - ENTRIES_SHOWN_MAX) + '&limit=' + ENTRIES_SHOWN_MAX;
    if (shard !== null && shard !== undefined) path += '&shard=' + shard;
    try {
      const page = await api(path);
      if (gen !== account.gen) return;
      for (const e of page.entries) addEntry(e, false);
      renderEntries();
    } catch (e) {
      if (gen === account.gen) failed('account', e, 'Entries of ' + account.id);
    }
  }

  function addEntry(e, fresh) {
    const k = keyOf(e.shard) + ':' + e.seq;
    if (!account.entries.has(k)) account.entries.set(k, { entry: e, fresh });
  }

  function renderEntries() {
    const all = [...account.entries.values()].sort((a, b) =>
      b.entry.at - a.entry.at || b.entry.seq - a.entry.seq);
    for (const old of all.slice(ENTRIES_SHOWN_MAX)) {
      account.entries.delete(keyOf(old.entry.shard) + ':' + old.entry.seq);
    }
    const shown = all.slice(0, ENTRIES_SHOWN_MAX);
    fillTable('entries', shown.map((item) => {
      const e = item.entry;
      const tr = document.createElement('tr');
      if (item.fresh) {
        tr.className = 'fresh';
        item.fresh = false;
      }
      const sign = KINDS_IN.has(e.kind) ? '+' : KINDS_OUT.has(e.kind) ? '−' : '';
      const cls = KINDS_IN.has(e.kind) ? 'num amount-in' : KINDS_OUT.has(e.kind) ? 'num amount-out' : 'num';
      const seq = e.shard === null || e.shard === undefined ? String(e.seq) : e.shard + ':' + e.seq;
      const about = [e.transfer_id, e.reference].filter(Boolean).join(' · ');
      tr.append(cell(seq, 'num'), cell(e.kind), cell(sign + fmtInt(e.amount), cls),
        cell(fmtInt(e.balance), 'num'), cell(fmtTime(e.at), null, new Date(e.at).toISOString()),
        cell(about, 'about', about));
      return tr;
    }));
    $('entries').hidden = shown.length === 0;
    $('entries-empty').hidden = shown.length > 0;
  }

  // ---------------------------------------------------------------- forms

  function init() {
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      sessionStorage.setItem(TOKEN_KEY, t);
      $('token').value = '';
      $('token').placeholder = t ? 'token set (this tab)' : 'no token (node without [auth])';
      startSession();
    });
    $('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      stopSession();
      $('token').placeholder = TOKEN_PLACEHOLDER;
      $('welcome').hidden = false;
      setLive(null);
    });
    $('account-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = $('account-id').value.trim();
      if (!ACCOUNT_ID.test(id)) {
        setPanelError('account', 'An account id is 1 to 64 characters of A-Z a-z 0-9 _ - . :');
        return;
      }
      if (!connected()) {
        setPanelError('account', 'Connect with a token first.');
        return;
      }
      showAccount(id);
    });
    window.addEventListener('resize', drawStats);
    drawStats();
    // `/ui#token=SECRET` (or `#token=` for a node without [auth]) connects at once, for a
    // kiosk screen or a screenshot; the fragment never reaches the server, and it is removed
    // from the address bar as soon as it is read.
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.has('token')) {
      sessionStorage.setItem(TOKEN_KEY, fragment.get('token').trim());
      history.replaceState(null, '', location.pathname + location.search);
    }
    // `#account=ID` shows that account at once.
    const shown = fragment.get('account');
    if (shown && ACCOUNT_ID.test(shown)) {
      account.id = shown;
      $('account-id').value = shown;
    }
    if (connected()) {
      $('token').placeholder = token() ? 'token set (this tab)' : 'no token (node without [auth])';
      startSession();
    } else {
      $('token').focus();
    }
  }

  init();
})();
