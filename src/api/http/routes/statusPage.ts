// GET /status: a status page for people, one HTML answer with its CSS and script inline (no
// build step, nothing fetched from elsewhere), refreshed every 2 s from two JSON endpoints:
// /api/status (the documented health of the service and the database) and GET /status/summary
// (workers, restarts and request totals from the cluster's metrics; the page turns successive
// totals into rates). Its Content-Security-Policy allows exactly its own inline style and script.
import { createHash } from 'node:crypto';
import type { Server } from 'restify';
import type { ClusterMetrics } from '../../../platform/metrics/cluster';
import { summarize } from '../../metrics/summary';
import { SharedValue } from '../../../platform/util/async';
import type { MonitoringAccess } from '../monitoringAccess';
import type { OverloadGuard } from '../overload';
import { sendBody, sendJson } from '../respond';
import { monitoringForbidden } from './metrics';

export interface StatusPageDeps {
  readonly metrics: ClusterMetrics | undefined;
  /** Who may read /status/summary (the page itself is for anyone). */
  readonly monitoringAccess: MonitoringAccess;
  readonly overload: Pick<OverloadGuard, 'state'>;
  readonly version: string;
  readonly worker: string;
}

const STYLE = `
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f6f8fa; }
header { padding: 16px; color: #fff; background: var(--muted); }
header.ok { background: var(--ok); }
header.degraded, header.down { background: var(--bad); }
header h1 { margin: 0; font-size: 1.25rem; }
header p { margin: 4px 0 0; font-size: .9rem; opacity: .9; }
main { padding: 12px; max-width: 960px; margin: 0 auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card h2 { margin: 0; font-size: .8rem; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 1.4rem; font-weight: 600; overflow-wrap: anywhere; }
.card .note { font-size: .8rem; color: var(--muted); overflow-wrap: anywhere; }
.card.up { border-left-color: var(--ok); }
.card.up .value { color: var(--ok); }
.card.down { border-left-color: var(--bad); background: #ffebe9; }
.card.down .value { color: var(--bad); }
.card.warn { border-left-color: var(--warn); }
h3 { font-size: 1rem; margin: 18px 0 8px; }
.table { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; background: #fff; font-size: .9rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.bad { color: var(--bad); font-weight: 600; }
@media (max-width: 480px) { th, td { padding: 6px 4px; font-size: .8rem; } .card .value { font-size: 1.2rem; } }
footer { padding: 12px; text-align: center; font-size: .8rem; color: var(--muted); }
`;

const SCRIPT = `
(function () {
  'use strict';
  var REFRESH_MS = 2000;
  var previous = null;
  function $(id) { return document.getElementById(id); }
  function card(id, state, value, note) {
    var el = $(id);
    el.className = 'card' + (state ? ' ' + state : '');
    el.setAttribute('data-state', state || 'unknown');
    el.querySelector('.value').textContent = value;
    el.querySelector('.note').textContent = note || '';
  }
  function duration(seconds) {
    if (seconds == null) return '–';
    var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + (s % 60) + 's';
    return s + 's';
  }
  function getJson(path) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, 4000);
    return fetch(path, { cache: 'no-store', signal: controller.signal, headers: { accept: 'application/json' } })
      .then(function (res) { return res.json().then(function (body) { return { status: res.status, body: body }; }); })
      .finally(function () { clearTimeout(timer); });
  }
  function overall(state, text) {
    var header = document.querySelector('header');
    header.className = state;
    document.body.setAttribute('data-overall', state);
    $('overall').textContent = text;
  }
  function renderStatus(reply) {
    var body = reply.body || {};
    var services = body.services || {};
    var dbUp = services.database === 'healthy';
    var apiUp = services.api === 'healthy';
    card('database', dbUp ? 'up' : 'down', dbUp ? 'up' : 'down', dbUp ? 'answering' : 'unreachable: requests that need it get 503');
    var reasons = (body.overload || []).join('; ');
    card('service', apiUp ? 'up' : 'down', apiUp ? 'healthy' : 'overloaded', reasons || 'serving');
    var users = body.stats ? body.stats.total_users : null;
    card('users', '', users == null ? '–' : String(users), 'registered');
    if (dbUp && apiUp) overall('ok', 'All systems operational');
    else overall('degraded', !dbUp ? 'Database down' : 'Service overloaded');
  }
  // Workers, restarts and rates are for monitoring clients (METRICS_ALLOW, METRICS_TOKEN) only.
  function restricted() {
    ['uptime', 'workers', 'restarts', 'rate', 'errors'].forEach(function (id) { card(id, '', '–', 'monitoring clients only'); });
    document.body.setAttribute('data-summary', 'restricted');
  }
  function renderSummary(summary, now) {
    var cluster = summary.cluster;
    if (!cluster) {
      ['workers', 'restarts', 'rate', 'errors'].forEach(function (id) { card(id, '', '–', 'metrics are off'); });
      card('uptime', '', duration(summary.uptimeSeconds), 'this worker');
      return;
    }
    var workers = cluster.workers;
    var uptime = workers.reduce(function (max, w) { return Math.max(max, w.uptimeSeconds); }, 0);
    card('uptime', '', duration(uptime), 'version ' + summary.version);
    var missing = cluster.sources.timeout + cluster.sources.error;
    card('workers', missing > 0 ? 'warn' : 'up', String(workers.length), missing > 0 ? missing + ' not answering' : 'serving');
    card('restarts', cluster.restarts > 0 ? 'warn' : '', cluster.restarts == null ? '–' : String(cluster.restarts),
      cluster.restarts == null ? 'no supervisor' : 'after crashes');
    var totals = cluster.requests;
    if (previous && totals.total >= previous.total) {
      var seconds = (now - previous.at) / 1000;
      var requests = totals.total - previous.total;
      var errors = Math.max(0, totals.serverErrors - previous.serverErrors);
      card('rate', '', (requests / seconds).toFixed(1) + '/s', totals.total + ' API requests in all');
      var share = requests > 0 ? errors / requests : 0;
      card('errors', share > 0.05 ? 'down' : share > 0 ? 'warn' : 'up', (share * 100).toFixed(1) + '%', '5xx answers, ' + totals.serverErrors + ' in all');
    }
    previous = { total: totals.total, serverErrors: totals.serverErrors, at: now };
    var rows = workers.map(function (w) {
      var tr = document.createElement('tr');
      [w.worker, String(w.pid), duration(w.uptimeSeconds), w.database, w.overloaded ? 'overloaded' : w.draining ? 'draining' : 'serving',
        (w.heapUsedBytes / 1048576).toFixed(0) + ' MB', String(w.requests)].forEach(function (text, i) {
        var td = document.createElement('td');
        td.textContent = text;
        if ((i === 3 && text !== 'up') || (i === 4 && text !== 'serving')) td.className = 'bad';
        tr.appendChild(td);
      });
      return tr;
    });
    $('worker-rows').replaceChildren.apply($('worker-rows'), rows);
  }
  function refresh() {
    var now = Date.now();
    Promise.allSettled([getJson('/api/status'), getJson('/status/summary')]).then(function (results) {
      if (results[0].status !== 'fulfilled') {
        overall('down', 'Service unreachable');
        card('service', 'down', 'unreachable', String(results[0].reason));
      } else {
        renderStatus(results[0].value);
      }
      if (results[1].status === 'fulfilled' && results[1].value.status === 200) renderSummary(results[1].value.body, now);
      else if (results[1].status === 'fulfilled' && results[1].value.status === 403) restricted();
      $('updated').textContent = 'Updated ' + new Date(now).toLocaleTimeString();
    }).finally(function () { setTimeout(refresh, REFRESH_MS); });
  }
  refresh();
})();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>resilient-api status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-overall="unknown">
<header><h1>resilient-api</h1><p><span id="overall">Checking…</span> · <span id="updated">not updated yet</span></p></header>
<main>
<div class="grid">
  <section class="card" id="service" data-state="unknown"><h2>Service</h2><div class="value">–</div><div class="note"></div></section>
  <section class="card" id="database" data-state="unknown"><h2>Database</h2><div class="value">–</div><div class="note"></div></section>
  <section class="card" id="uptime"><h2>Uptime</h2><div class="value">–</div><div class="note"></div></section>
  <section class="card" id="workers"><h2>Workers</h2><div class="value">–</div><div class="note"></div></section>
  <section class="card" id="restarts"><h2>Restarts</h2><div class="value">–</div><div class="note"></div></section>
  <section class="card" id="rate"><h2>Requests</h2><div class="value">–</div><div class="note">measuring…</div></section>
  <section class="card" id="errors"><h2>Error rate</h2><div class="value">–</div><div class="note">measuring…</div></section>
  <section class="card" id="users"><h2>Users</h2><div class="value">–</div><div class="note"></div></section>
</div>
<h3>Workers</h3>
<div class="table"><table>
<thead><tr><th>id</th><th>pid</th><th>uptime</th><th>database</th><th>state</th><th>heap</th><th>requests</th></tr></thead>
<tbody id="worker-rows"></tbody>
</table></div>
</main>
<footer>Refreshed every 2 s from <a href="/api/status">/api/status</a> and <a href="/status/summary">/status/summary</a> · <a href="/metrics">/metrics</a></footer>
<script>${SCRIPT}</script>
</body>
</html>
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

// Cache-Control and nosniff are on every answer already (securityHeaders.ts); the page needs
// only a CSP that lets its own inline style and script run.
const PAGE_HEADERS = {
  'Content-Security-Policy':
    `default-src 'none'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}; connect-src 'self'; ` +
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

export function registerStatusPage(server: Server, deps: StatusPageDeps): void {
  server.get('/status', async (_req, res) => {
    sendBody(res, 200, 'text/html; charset=utf-8', PAGE, PAGE_HEADERS);
  });

  // Every open page polls this, and it is exempt from the rate limit: however many pages poll,
  // the cluster (every worker's registry) is gathered at most once a second per worker.
  const metrics = deps.metrics;
  const clusterSummary = metrics ? new SharedValue(async () => summarize(await metrics.view()), 1000) : undefined;
  server.get('/status/summary', async (req, res) => {
    if (!deps.monitoringAccess.allows(req)) throw monitoringForbidden();
    const cluster = clusterSummary ? await clusterSummary.get() : null;
    sendJson(
      res,
      200,
      {
        timestamp: new Date().toISOString(),
        version: deps.version,
        worker: deps.worker,
        uptimeSeconds: Math.round(process.uptime()),
        overload: deps.overload.state,
        cluster,
      },
    );
  });
}
