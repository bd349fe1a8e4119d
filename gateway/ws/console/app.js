// Tributary web console. Plain ES module, no build step, no dependencies: it talks to the
// broker only through the public HTTP API and the WebSocket protocol (tributary.json.v1),
// exactly as any dashboard would.

const POLL_MS = 2000; // refresh of topics, groups and clients
const TAIL_ROWS_MAX = 200; // rows kept in the live tail table (older ones are dropped)
const CHART_SECONDS = 60; // width of the rate chart, seconds

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem('tributary.token') || '';

// --- HTTP ----------------------------------------------------------------------------------

async function api(path) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(path, { headers });
  if (res.status === 401) {
    $('token-form').hidden = false;
    throw new Error('unauthorized: enter a bearer token');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body?.error?.message || res.statusText), { status: res.status, code: body?.error?.code });
  return body;
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  localStorage.setItem('tributary.token', token);
  $('token-form').hidden = true;
  refresh();
});

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '—' : String(text);
  if (cls) td.className = cls;
  return td;
}

function fmt(n) {
  return typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: 1 }) : '—';
}

function fmtBytes(n) {
  if (typeof n !== 'number') return '—';
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`;
}

// --- overview: health, clients, topics, groups ----------------------------------------------

const lastEnd = new Map(); // topic -> { endOffsets, time } for rates

async function refreshHealth() {
  const el = $('health');
  try {
    const res = await fetch('/healthz');
    el.textContent = res.ok ? 'ready' : 'starting';
    el.className = `badge ${res.ok ? 'ok' : 'bad'}`;
  } catch {
    el.textContent = 'unreachable';
    el.className = 'badge bad';
  }
}

function renderClients(stats) {
  const box = $('clients');
  box.replaceChildren();
  const conns = { ...stats.connections };
  if (conns.ws === undefined) conns.ws = stats.ws.sockets;
  for (const [name, count] of Object.entries(conns).sort()) {
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.gateway = name;
    const b = document.createElement('b');
    b.textContent = String(count);
    card.append(b, document.createTextNode(`${name} clients`));
    box.append(card);
  }
  const subs = document.createElement('div');
  subs.className = 'card';
  const b = document.createElement('b');
  b.textContent = String(stats.ws.subscriptions);
  subs.append(b, document.createTextNode('ws subscriptions'));
  box.append(subs);
  $('process').textContent = `RSS ${fmtBytes(stats.process.rssBytes)} · CPU ${stats.process.cpuSeconds.toFixed(1)} s · event-loop p99 ${stats.process.eventLoopDelayP99Ms.toFixed(1)} ms · up ${stats.uptimeSec} s`;
}

function renderTopics(topics) {
  const now = Date.now();
  const tbody = $('topics').querySelector('tbody');
  tbody.replaceChildren();
  const names = $('topic-names');
  names.replaceChildren();
  for (const t of topics) {
    const prev = lastEnd.get(t.name);
    const rate = prev && now > prev.time ? ((t.endOffsets - prev.endOffsets) * 1000) / (now - prev.time) : null;
    lastEnd.set(t.name, { endOffsets: t.endOffsets, time: now });
    const tr = document.createElement('tr');
    tr.dataset.topic = t.name;
    const name = cell(t.name + (t.internal ? ' (internal)' : ''));
    const tail = document.createElement('td');
    const btn = document.createElement('button');
    btn.className = 'link';
    btn.textContent = 'tail';
    btn.addEventListener('click', () => {
      $('tail-topic').value = t.name;
      startTail();
    });
    const details = document.createElement('button');
    details.className = 'link';
    details.textContent = 'details';
    details.addEventListener('click', () => showTopic(t.name));
    tail.append(btn, document.createTextNode(' · '), details);
    tr.append(name, cell(t.partitions, 'num'), cell(fmt(t.records), 'num'), cell(fmt(t.endOffsets), 'num'), cell(rate === null ? '…' : fmt(rate), 'num'), tail);
    tbody.append(tr);
    const opt = document.createElement('option');
    opt.value = t.name;
    names.append(opt);
  }
}

async function showTopic(name) {
  try {
    const t = await api(`/topics/${encodeURIComponent(name)}`);
    $('topic-detail').hidden = false;
    $('topic-detail').open = true;
    $('topic-detail-title').textContent = `${t.name}: ${t.partitions.length} partition(s)`;
    const tbody = $('partitions').querySelector('tbody');
    tbody.replaceChildren(
      ...t.partitions.map((p) => {
        const tr = document.createElement('tr');
        tr.append(cell(p.partition, 'num'), cell(fmt(p.logStartOffset), 'num'), cell(fmt(p.highWatermark), 'num'), cell(fmt(p.logEndOffset), 'num'));
        return tr;
      }),
    );
    $('topic-config').textContent = JSON.stringify(t.config, null, 2);
  } catch (err) {
    $('topic-detail-title').textContent = `${name}: ${err.message}`;
  }
}

async function refreshGroups() {
  const tbody = $('groups').querySelector('tbody');
  try {
    const { groups } = await api('/groups');
    $('groups-note').hidden = groups.length > 0;
    $('groups-note').textContent = 'no consumer groups yet';
    tbody.replaceChildren(
      ...groups.map((g) => {
        const tr = document.createElement('tr');
        tr.append(cell(g.groupId), cell(g.state), cell(g.protocolType), cell(fmt(g.totalLag), 'num'));
        return tr;
      }),
    );
  } catch (err) {
    tbody.replaceChildren();
    $('groups-note').hidden = false;
    $('groups-note').textContent = `groups: ${err.message}`;
  }
}

// --- uplink: the link and its partitions, from /stats (null without uplink.site) ------------

function card(value, label, key) {
  const c = document.createElement('div');
  c.className = 'card';
  if (key) c.dataset.uplink = key;
  const b = document.createElement('b');
  b.textContent = value;
  c.append(b, document.createTextNode(label));
  return c;
}

function fmtRate(n) {
  if (typeof n !== 'number') return '—';
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB/s` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB/s` : `${n} B/s`;
}

function fmtAge(s) {
  if (typeof s !== 'number') return '—';
  return s >= 86400 ? `${(s / 86400).toFixed(1)} d` : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`;
}

function renderUplink(u) {
  $('uplink-section').hidden = !u;
  if (!u) return;
  $('uplink-link').textContent = `link ${u.link}`;
  $('uplink-link').className = `badge ${u.link === 'up' ? 'ok' : 'bad'}`;
  $('uplink-site').textContent = `site ${u.site} → ${u.bootstrap.join(', ')}`;
  const cap = u.bandwidthCapBytesPerSec > 0 ? ` of ${fmtRate(u.bandwidthCapBytesPerSec)} cap` : ' (no cap)';
  $('uplink-cards').replaceChildren(
    card(fmt(u.lagRecords), 'records behind', 'lag-records'),
    card(fmtBytes(u.lagBytes), 'bytes behind', 'lag-bytes'),
    card(fmtAge(u.lagSecondsMax), 'oldest unsent', 'lag-seconds'),
    card(fmtRate(u.bandwidthBytesPerSec), `in use${cap}`, 'bandwidth'),
    card(fmt(u.droppedRecords), `dropped (${fmtBytes(u.droppedBytes)})`, 'dropped'),
    card(fmt(u.gapRecords), `retention gaps (${fmtBytes(u.gapBytes)})`, 'gaps'),
  );
  const tbody = $('uplink').querySelector('tbody');
  tbody.replaceChildren(
    ...u.partitions.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.source = `${p.source.topic}-${p.source.partition}`;
      tr.append(
        cell(`${p.source.topic}-${p.source.partition}`),
        cell(`${p.target.topic}-${p.target.partition}`),
        cell(p.state),
        cell(fmt(p.lagRecords), 'num'),
        cell(fmtBytes(p.lagBytes), 'num'),
        cell(fmtAge(p.lagSeconds), 'num'),
        cell(fmtRate(p.bandwidthBytesPerSec), 'num'),
        cell(fmt(p.droppedRecords), 'num'),
        cell(fmt(p.gapRecords), 'num'),
        cell(p.reason || ''),
      );
      return tr;
    }),
  );
  const hiddenRows = u.partitionsTotal - u.partitions.length;
  $('uplink-note').hidden = hiddenRows <= 0;
  $('uplink-note').textContent = `${hiddenRows} more partition(s) not shown (uplink.statusPartitionsMax); the figures above cover all ${u.partitionsTotal}`;
}

// --- cluster: nodes, controller, leaders and ISR, from /stats (null on a single node) ----------

/** `2: 0`, `3: 1,204 (9.1 s)`: offsets behind the leader's log end and, when behind, the time since it was caught up. */
function followerLag(f) {
  if (f.lastFetchAgoMs === null) return `${f.nodeId}: ${fmt(f.offsetsBehind)} (no fetch yet)`;
  return f.offsetsBehind === 0 ? `${f.nodeId}: 0` : `${f.nodeId}: ${fmt(f.offsetsBehind)} (${(f.caughtUpAgoMs / 1000).toFixed(1)} s)`;
}

function renderCluster(c) {
  $('cluster-section').hidden = !c;
  if (!c) return;
  const controller = c.leader ?? null;
  $('cluster-controller').textContent = controller === null ? 'no controller' : `controller ${controller}`;
  $('cluster-controller').className = `badge ${controller === null ? 'bad' : 'ok'}`;
  const under = (c.partitions || []).filter((p) => p.isr.length < p.replicas.length).length;
  $('cluster-summary').textContent = `cluster ${c.clusterId} · seen from node ${c.nodeId} (${c.role ?? 'starting'}) · term ${c.term ?? '—'} · commit ${c.commitIndex ?? '—'} · ${under} under-replicated`;
  const brokers = new Map((c.brokers || []).map((b) => [b.nodeId, b]));
  const progress = new Map((c.voters || []).map((v) => [v.id, v]));
  $('cluster-nodes').querySelector('tbody').replaceChildren(
    ...c.nodes.map((n) => {
      const b = brokers.get(n.id);
      const p = progress.get(n.id);
      const tr = document.createElement('tr');
      tr.dataset.node = String(n.id);
      tr.append(
        cell(`${n.id}${n.id === controller ? ' (controller)' : ''}${n.connected === null ? ' (this node)' : ''}`),
        cell(n.address),
        cell(b ? `${b.host}:${b.port}` : '—'),
        cell(b ? (b.fenced ? 'fenced' : 'live') : 'not registered'),
        cell(n.connected === null ? '—' : n.connected ? 'yes' : 'no'),
        cell(p && p.matchIndex !== null ? fmt(p.matchIndex) : '—', 'num'),
        cell(p && p.lag !== null ? fmt(p.lag) : '—', 'num'),
      );
      if (b?.fenced || n.connected === false) tr.className = 'bad';
      return tr;
    }),
  );
  $('cluster-lag-note').hidden = c.role === 'leader';
  // Follower lag is known to a partition's leader only: this node reports the partitions it leads.
  const led = new Map(((c.replicaLag && c.replicaLag.led) || []).map((l) => [`${l.topic}-${l.partition}`, l]));
  $('cluster-partitions').querySelector('tbody').replaceChildren(
    ...(c.partitions || []).map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.partition = `${p.topic}-${p.partition}`;
      const short = p.isr.length < p.replicas.length;
      const lag = led.get(tr.dataset.partition);
      tr.append(cell(`${p.topic}-${p.partition}`), cell(p.leader, 'num'), cell(p.leaderEpoch, 'num'), cell(p.replicas.join(', ')), cell(p.isr.join(', ')), cell(short ? 'under-replicated' : ''), cell(lag ? lag.followers.map(followerLag).join(', ') || '—' : `— (node ${p.leader}'s console)`));
      if (short) tr.className = 'bad';
      return tr;
    }),
  );
  const hidden = (c.partitionsTotal ?? 0) - (c.partitions || []).length;
  $('cluster-note').hidden = hidden <= 0;
  $('cluster-note').textContent = `${hidden} more partition(s) not shown`;
}

async function refresh() {
  refreshHealth();
  try {
    const stats = await api('/stats');
    renderClients(stats);
    renderTopics(stats.topics);
    renderUplink(stats.uplink);
    renderCluster(stats.cluster);
  } catch (err) {
    $('process').textContent = err.message;
  }
  refreshGroups();
}

// --- live tail over the WebSocket protocol --------------------------------------------------

let socket = null;
let requestId = 0;
const buckets = new Array(CHART_SECONDS).fill(0); // records per second, oldest first
let bucketSecond = Math.floor(Date.now() / 1000);

function rollBuckets() {
  const now = Math.floor(Date.now() / 1000);
  while (bucketSecond < now) {
    buckets.shift();
    buckets.push(0);
    bucketSecond++;
  }
}

function drawChart() {
  rollBuckets();
  const canvas = $('rate-chart');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth * ratio;
  const h = canvas.clientHeight * ratio;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...buckets);
  const pad = 24 * ratio;
  const barW = (w - pad) / buckets.length;
  ctx.fillStyle = '#1f6feb';
  buckets.forEach((v, i) => {
    const bh = ((h - 2 * ratio) * v) / max;
    ctx.fillRect(pad + i * barW + 1, h - bh, Math.max(1, barW - 2), bh);
  });
  ctx.fillStyle = '#6b7587';
  ctx.font = `${11 * ratio}px system-ui, sans-serif`;
  ctx.fillText(`${max}/s`, 2, 12 * ratio);
  ctx.fillText('0', 2, h - 3 * ratio);
  ctx.fillText(`last ${CHART_SECONDS} s · now ${buckets[buckets.length - 1]}/s`, pad + 4, 12 * ratio);
}

function setTailStatus(text) {
  $('tail-status').textContent = text;
}

function addRecords(frame) {
  rollBuckets();
  buckets[buckets.length - 1] += frame.records.length;
  const tbody = $('tail-records');
  for (const r of frame.records) {
    const tr = document.createElement('tr');
    tr.className = 'fresh';
    const headers = (r.headers || []).map(([k, v]) => `${k}=${v}`).join(' ');
    const h = cell(headers, 'headers');
    h.title = headers;
    tr.append(cell(new Date(r.timestamp).toLocaleTimeString()), cell(frame.partition, 'num'), cell(r.offset, 'num'), cell(r.key), cell(r.value, 'value'), h);
    tbody.prepend(tr);
  }
  while (tbody.children.length > TAIL_ROWS_MAX) tbody.lastElementChild.remove();
}

function stopTail() {
  if (socket) {
    socket.onclose = null;
    socket.close(1000, 'tail stopped');
  }
  socket = null;
  $('tail-stop').disabled = true;
  setTailStatus('not tailing');
}

function startTail() {
  const topic = $('tail-topic').value.trim();
  if (!topic) return;
  stopTail();
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) url.searchParams.set('access_token', token);
  const ws = new WebSocket(url, 'tributary.json.v1');
  socket = ws;
  $('tail-records').replaceChildren();
  buckets.fill(0);
  setTailStatus(`connecting to ${topic}…`);
  ws.onopen = () => {
    const req = { type: 'subscribe', id: `tail-${++requestId}`, topic, start: $('tail-start').value };
    const filter = $('tail-filter').value.trim();
    if (filter) req.filter = filter;
    ws.send(JSON.stringify(req));
  };
  ws.onmessage = (ev) => {
    const frame = JSON.parse(ev.data);
    switch (frame.type) {
      case 'records':
        addRecords(frame);
        break;
      case 'subscribed':
        setTailStatus(`tailing ${frame.topic} (${frame.partitions.length} partition(s))`);
        $('tail-stop').disabled = false;
        break;
      case 'heartbeat': {
        const lag = frame.subscriptions.reduce((n, s) => n + (s.lag || 0), 0);
        setTailStatus(`tailing ${topic} · lag ${lag}`);
        break;
      }
      case 'error':
        setTailStatus(`error ${frame.code}: ${frame.message}`);
        break;
    }
  };
  ws.onclose = (ev) => {
    if (socket === ws) {
      socket = null;
      $('tail-stop').disabled = true;
      setTailStatus(`closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
    }
  };
}

$('tail-form').addEventListener('submit', (e) => {
  e.preventDefault();
  startTail();
});
$('tail-stop').addEventListener('click', stopTail);

refresh();
setInterval(refresh, POLL_MS);
setInterval(drawChart, 250);
drawChart();
