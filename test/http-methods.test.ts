// HTTP methods as monitors and clients expect them, through real HTTP: HEAD on every GET route
// (same status and headers, no body), OPTIONS naming a path's methods, every method Node can
// parse answered with bounded metric labels, parser refusals and CONNECT answered in the
// envelope, logged and counted; and the same on a 2-worker PM2 cluster.
import http from 'node:http';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import restify from 'restify';
import { supportHeadAndOptions } from '../src/api/http/methods';
import { ResponseWriter } from '../src/api/http/respond';
import { securityHeaderPairs } from '../src/api/http/securityHeaders';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { rawExchange } from './helpers/http';
import { changes, sample, scrapeMetrics, scrapeSocket } from './helpers/metrics';
import { createPm2Sandbox } from './helpers/pm2';
import { startService, type Service } from './helpers/service';
import { waitFor } from './helpers/wait';

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_http_methods');
  // Short header and request timeouts so a slowloris 408 comes within a few seconds.
  service = await startService({ env: { ...db.env, HTTP_HEADERS_TIMEOUT_MS: '1500', HTTP_REQUEST_TIMEOUT_MS: '3000' } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

interface RawReply {
  readonly status: number;
  /** Lower-cased names; the last value of a repeated header. */
  readonly headers: Record<string, string>;
  /** Every byte after the header block. */
  readonly body: string;
}

function parseReply(data: string): RawReply {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no complete answer: ${JSON.stringify(data.slice(0, 200))}`);
  const [statusLine = '', ...lines] = data.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers, body: data.slice(end + 4) };
}

/** Each answer in what came back on one connection (pipelined answers, one after the other). */
function parseReplies(data: string): RawReply[] {
  const replies: RawReply[] = [];
  let rest = data;
  while (rest.length > 0) {
    const reply = parseReply(rest);
    const length = Number(reply.headers['content-length'] ?? NaN);
    if (!Number.isInteger(length)) throw new Error(`an answer without Content-Length: ${JSON.stringify(rest.slice(0, 200))}`);
    replies.push({ ...reply, body: reply.body.slice(0, length) });
    rest = reply.body.slice(length);
  }
  return replies;
}

/**
 * One request on its own connection, as raw bytes: what comes back, body bytes and all.
 * `from`: the loopback address to connect from (another client IP, for the once-a-minute WARN lines).
 */
async function raw(port: number, method: string, target: string, headers: Record<string, string> = {}, from?: string): Promise<RawReply> {
  const lines = Object.entries({ Host: 'localhost', Connection: 'close', ...headers }).map(([name, value]) => `${name}: ${value}\r\n`);
  const { data } = await rawExchange(port, (socket) => socket.write(`${method} ${target} HTTP/1.1\r\n${lines.join('')}\r\n`), 10_000, from);
  return parseReply(data);
}

const SECURITY_HEADERS = ['cache-control', 'x-content-type-options', 'content-security-policy', 'x-frame-options'];
const LABELLED = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'other']);
const REQUESTS = 'resilient_api_http_requests_total';

const linesWith = (log: string, text: string): string[] => log.split('\n').filter((line) => line.includes(text));

/**
 * The method labels and the number of series of the request counter in a scrape; /metrics's own
 * series are left out (a scrape counts only once answered, so the first scrape of each worker adds one).
 */
function requestSeries(text: string): { methods: Set<string>; count: number } {
  const lines = text.split('\n').filter((line) => line.startsWith(`${REQUESTS}{`) && !line.includes('route="/metrics"'));
  return { methods: new Set(lines.map((line) => /method="([^"]*)"/.exec(line)?.[1] ?? '?')), count: lines.length };
}

/** A valid bearer token, so HEAD /api/me is also compared on its 200. */
async function token(): Promise<string> {
  const credentials = { username: 'head-user', password: 'a-long-enough-password' };
  const registered = await service.request('/api/register', { body: credentials });
  const login = await service.request('/api/login', { body: credentials });
  if (registered.status !== 201 || login.status !== 200) throw new Error(`no token: ${registered.status}, ${login.text}`);
  return String(login.body.token);
}

test.serial('HEAD on every GET route: the status and headers of GET, and not one byte of body', async (t) => {
  const bearer = { Authorization: `Bearer ${await token()}` };
  const targets: Array<{ path: string; headers?: Record<string, string> }> = [
    { path: '/health' },
    { path: '/livez' },
    { path: '/readyz' },
    { path: '/api/status' },
    { path: '/status' },
    { path: '/status/summary' },
    { path: '/metrics' },
    { path: '/api/me' },
    { path: '/api/me', headers: bearer },
  ];
  // Every other GET route the service documents in its OpenAPI document.
  const openapi = await service.request('/openapi.json');
  t.is(openapi.status, 200, 'the OpenAPI document is served');
  const paths = Object.entries((openapi.body?.paths ?? {}) as Record<string, Record<string, unknown>>);
  t.true(paths.length > 0, 'the document has paths');
  for (const [documented, operations] of paths) {
    if (operations['get'] !== undefined && !targets.some((target) => target.path === documented)) targets.push({ path: documented });
  }
  t.true(targets.some((target) => target.path === '/openapi.json'), 'the document lists itself');
  for (const { path: target, headers = {} } of targets) {
    const what = `${target}${headers['Authorization'] ? ' (with a token)' : ''}`;
    const withId = { ...headers, 'X-Request-Id': `head-${target.replace(/\W/g, '-')}` };
    const get = await raw(service.port, 'GET', target, withId);
    const head = await raw(service.port, 'HEAD', target, withId);
    t.is(head.status, get.status, what);
    t.not(head.status, 405, what);
    t.is(head.body, '', `${what}: no body`);
    t.true(get.body.length > 0, `${what}: GET has a body`);
    t.is(head.headers['content-type'], get.headers['content-type'], what);
    t.is(head.headers['x-request-id'], get.headers['x-request-id'], what);
    t.is(head.headers['www-authenticate'], get.headers['www-authenticate'], what);
    t.is(head.headers['retry-after'], get.headers['retry-after'], what);
    for (const name of SECURITY_HEADERS) t.is(head.headers[name], get.headers[name], `${what}: ${name}`);
    // The length of the body GET sends (the same body, unless it holds a clock or a counter).
    t.regex(head.headers['content-length'] ?? '', /^[1-9]\d*$/, what);
    if (['/status', '/api/me', '/openapi.json'].includes(target)) t.is(head.headers['content-length'], String(Buffer.byteLength(get.body)), what);
  }
  // HEAD counts under its own method and the route template.
  const text = await scrapeMetrics(service);
  t.true((sample(text, `${REQUESTS}{method="HEAD",route="/health",status_code="200"}`) ?? 0) >= 1);
  t.true((sample(text, `${REQUESTS}{method="HEAD",route="/api/me",status_code="401"}`) ?? 0) >= 1);
});

test.serial('OPTIONS names the methods of a path; a wrong method is a 405 naming them too', async (t) => {
  const cases: Array<[string, string]> = [
    ['/health', 'GET, HEAD, OPTIONS'],
    ['/api/status', 'GET, HEAD, OPTIONS'],
    ['/api/login', 'OPTIONS, POST'],
    ['/api/register', 'OPTIONS, POST'],
    ['/api/me', 'GET, HEAD, OPTIONS'],
  ];
  for (const [target, allow] of cases) {
    const options = await raw(service.port, 'OPTIONS', target);
    t.is(options.status, 204, target);
    t.is(options.headers['allow'], allow, target);
    t.is(options.body, '', target);
    for (const name of SECURITY_HEADERS) t.truthy(options.headers[name], `${target}: ${name}`);
    const wrong = await service.request(target, { method: allow.includes('GET') ? 'PUT' : 'GET' });
    t.is(wrong.status, 405, target);
    t.is(wrong.headers['allow'], allow, target);
    t.is(wrong.body.code, 'MethodNotAllowed');
  }
  const server = await raw(service.port, 'OPTIONS', '*');
  t.is(server.status, 204);
  t.is(server.headers['allow'], 'GET, HEAD, OPTIONS, POST');
  t.truthy(server.headers['x-request-id']);
  t.is((await raw(service.port, 'OPTIONS', '/no/such/path')).status, 404);
  const text = await scrapeMetrics(service);
  t.is(sample(text, `${REQUESTS}{method="OPTIONS",route="unmatched",status_code="204"}`), 1, 'OPTIONS * is counted');
  t.true((sample(text, `${REQUESTS}{method="OPTIONS",route="/api/login",status_code="204"}`) ?? 0) >= 1);
  await waitFor('the request line of OPTIONS *', () => / - request - INFO - OPTIONS \(unmatched\) \* 204 /.test(service.log()));
});

test.serial('every method Node parses, on three paths: each answered, and the request series stay bounded', async (t) => {
  const probe = async (): Promise<Map<string, number>> => {
    const statuses = new Map<string, number>();
    for (const target of ['/health', '/api/login', '/no/such/path']) {
      for (const method of http.METHODS) {
        const reply = await raw(service.port, method, target);
        statuses.set(`${method} ${target}`, reply.status);
        if (reply.status >= 400 && method !== 'HEAD') {
          t.deepEqual(Object.keys(JSON.parse(reply.body) as object).sort(), ['code', 'message', 'requestId'], `${method} ${target}`);
        }
      }
    }
    return statuses;
  };
  const statuses = await probe();
  t.is(statuses.get('GET /health'), 200);
  t.is(statuses.get('HEAD /health'), 200);
  t.is(statuses.get('OPTIONS /health'), 204);
  t.is(statuses.get('PROPFIND /health'), 405, 'a known path: 405, whatever the method');
  t.is(statuses.get('CONNECT /health'), 405);
  t.is(statuses.get('DELETE /no/such/path'), 404, 'a method the service knows, on an unknown path');
  t.is(statuses.get('PROPFIND /no/such/path'), 501, 'a method the service does not know at all');
  t.is(statuses.get('CONNECT /no/such/path'), 501);
  t.is(statuses.get('TRACE /no/such/path'), 501);
  t.true([...statuses.values()].every((status) => status >= 200 && status < 600), 'every request answered');

  const first = await scrapeMetrics(service);
  const after = requestSeries(first);
  t.deepEqual([...after.methods].filter((method) => !LABELLED.has(method)), [], 'no method label outside the fixed set');
  t.true(after.methods.has('other'));
  // The same probe again: more counts, not one more series.
  await probe();
  const second = await scrapeMetrics(service);
  const again = requestSeries(second);
  t.is(again.count, after.count, 'series do not grow with methods');
  t.true(Math.abs(second.length - first.length) < 200, `size ${first.length} → ${second.length} bytes`);
  t.is(changes(first, second)(`${REQUESTS}{method="other",route="unmatched",status_code="501"}`), http.METHODS.length - 7);
  t.log(`${http.METHODS.length} methods × 3 paths, twice: ${again.count} request series, /metrics ${second.length} bytes`);
});

test.serial('requests Node\'s parser refuses are answered, logged and counted under route="unparsed"', async (t) => {
  // A client of its own: the WARN line about refusals is written once per client IP per minute.
  const from = '127.0.0.2';
  const before = await scrapeMetrics(service);
  const refusals: Array<[number, string]> = [
    [431, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    [400, 'GET /health HTTP/1.1 trailing junk\r\nHost: x\r\n\r\n'],
    [400, 'GET /he\x01alth HTTP/1.1\r\nHost: x\r\n\r\n'],
    [413, `POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(20_000)}\r\nx\r\n0\r\n\r\n`],
  ];
  const ids: string[] = [];
  for (const [status, request] of refusals) {
    const reply = parseReply((await rawExchange(service.port, (socket) => socket.write(request), 10_000, from)).data);
    t.is(reply.status, status, JSON.stringify(request.slice(0, 40)));
    const body = JSON.parse(reply.body) as { code: string; message: string; requestId: string };
    t.is(reply.headers['x-request-id'], body.requestId);
    for (const name of SECURITY_HEADERS) t.truthy(reply.headers[name], name);
    ids.push(body.requestId);
  }
  // A slowloris: headers never finished (HTTP_HEADERS_TIMEOUT_MS=1500).
  let timer: NodeJS.Timeout | undefined;
  const slow = await rawExchange(service.port, (socket) => {
    socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n');
    timer = setInterval(() => socket.writable && socket.write('X'), 200);
  }, 10_000, from).finally(() => clearInterval(timer));
  const timedOut = parseReply(slow.data);
  t.is(timedOut.status, 408);
  ids.push(timedOut.headers['x-request-id'] ?? '?');

  const delta = changes(before, await scrapeMetrics(service));
  const unparsed = (status: number): number => delta(`${REQUESTS}{method="other",route="unparsed",status_code="${status}"}`);
  t.is(unparsed(431), 1);
  t.is(unparsed(400), 2);
  t.is(unparsed(413), 1);
  t.is(unparsed(408), 1);
  t.is(delta(`resilient_api_http_request_duration_seconds_count{method="other",route="unparsed",status_code="400"}`), 2);
  const lines = await waitFor('a request line for each refusal', () => {
    const found = ids.map((id) => linesWith(service.log(), `id=${id}`));
    return found.every((list) => list.length === 1) ? found.map((list) => list[0] ?? '') : undefined;
  });
  t.regex(lines[0] ?? '', / - request - INFO - - \(unparsed\) 431 \d+\.\d ms id=[0-9a-f-]{36} ip=127\.0\.0\.2$/);
  // Timed from the connection's start: past SLOW_REQUEST_MS (1 s), so a slow-request warning.
  t.regex(lines[4] ?? '', / - request - WARN - Slow request: - \(unparsed\) 408 \d{4,}\.\d ms id=[0-9a-f-]{36} ip=127\.0\.0\.2 \(SLOW_REQUEST_MS=\d+\)$/);
  // And the reason in the WARN line of the http category: for this client's first refusal only,
  // the next ones of the minute are counted and in the request log, not in a WARN line each.
  const log = service.log();
  t.is(linesWith(log, `Request ${ids[0] ?? '?'} could not be parsed (HPE_HEADER_OVERFLOW); answered 431`).length, 1);
  for (const id of ids.slice(1)) t.deepEqual(linesWith(log, `Request ${id} `), [], `no WARN line for ${id}`);
});

test.serial('pipelined requests before a malformed one get their answers whole, in order, then its 400, then the connection closes', async (t) => {
  const from = '127.0.0.4';
  const before = await scrapeMetrics(service);
  const request = (target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
  // All in one write: Node parses the malformed request before either answer has been written.
  const exchange = await rawExchange(service.port, (socket) => socket.write(`${request('/health')}${request('/livez')}GET /x HTTP/1.1 junk\r\nHost: x\r\n\r\n`), 10_000, from);
  const replies = parseReplies(exchange.data);
  t.deepEqual(replies.map((reply) => reply.status), [200, 200, 400], 'the connection then closed, nothing after the 400');
  t.is(JSON.parse(replies[0]?.body ?? '').status, 'healthy');
  t.is(JSON.parse(replies[1]?.body ?? '').status, 'alive');
  const refusal = JSON.parse(replies[2]?.body ?? '') as { code: string; requestId: string };
  t.is(refusal.code, 'BadRequest');
  t.is(replies[2]?.headers['connection'], 'close');

  // An earlier request that asked for the connection to close: its answer, and the connection closes as asked.
  const closing = await rawExchange(service.port, (socket) => socket.write(`${request('/health')}${request('/livez', 'Connection: close\r\n')}GET /x HTTP/1.1 junk\r\n\r\n`), 10_000, from);
  t.deepEqual(parseReplies(closing.data).map((reply) => reply.status), [200, 200]);

  const delta = changes(before, await scrapeMetrics(service));
  t.is(delta(`${REQUESTS}{method="other",route="unparsed",status_code="400"}`), 2, 'both refusals counted, the unanswered one too');
  t.is(delta(`${REQUESTS}{method="GET",route="/livez",status_code="200"}`), 2);
  const warning = await waitFor('the WARN line of the first refusal', () => linesWith(service.log(), `Request ${refusal.requestId} could not be parsed`)[0]);
  t.regex(warning, / - http - WARN - Request [0-9a-f-]{36} could not be parsed \(HPE_[A-Z_]+\); answered 400 BadRequest$/);
});

test.serial('a request body that arrives too slowly: a 408 in place of its answer, and the server closes the connection', async (t) => {
  const before = await scrapeMetrics(service);
  let timer: NodeJS.Timeout | undefined;
  let sent = 0;
  // The headers at once, then a byte every 200 ms of a body announced as 100 (HTTP_REQUEST_TIMEOUT_MS=3000).
  const slow = await rawExchange(service.port, (socket) => {
    socket.write('POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
    timer = setInterval(() => {
      if (socket.writable) socket.write(' ', () => (sent += 1));
    }, 200);
  }, 15_000, '127.0.0.5').finally(() => clearInterval(timer));
  const replies = parseReplies(slow.data);
  t.deepEqual(replies.map((reply) => reply.status), [408], 'the 408 alone: no other answer before or after it');
  t.deepEqual(Object.keys(JSON.parse(replies[0]?.body ?? '{}') as object).sort(), ['code', 'message', 'requestId']);
  t.true(sent < 99, `closed by the server while the client was still sending (${sent} bytes of body sent)`);
  t.true(slow.ms < 10_000, `closed ${slow.ms} ms after the headers`);
  const delta = changes(before, await scrapeMetrics(service));
  t.is(delta(`${REQUESTS}{method="other",route="unparsed",status_code="408"}`), 1);
});

test.serial('CONNECT gets a JSON answer (501, or 405 on a path the service has), logged and counted', async (t) => {
  const from = '127.0.0.3';
  const before = await scrapeMetrics(service);
  const tunnel = await raw(service.port, 'CONNECT', 'example.com:443', { 'X-Request-Id': 'connect-1' }, from);
  t.is(tunnel.status, 501);
  t.is(tunnel.headers['content-type'], 'application/json');
  t.is(tunnel.headers['x-request-id'], 'connect-1');
  for (const name of SECURITY_HEADERS) t.truthy(tunnel.headers[name], name);
  t.deepEqual(JSON.parse(tunnel.body), { code: 'NotImplemented', message: 'CONNECT is not supported by this service', requestId: 'connect-1' });

  const known = await raw(service.port, 'CONNECT', '/health', { 'X-Request-Id': 'connect-2' }, from);
  t.is(known.status, 405);
  t.is(known.headers['allow'], 'GET, HEAD, OPTIONS');
  t.is(JSON.parse(known.body).code, 'MethodNotAllowed');
  // The path as restify's router reads it for GET: a trailing slash, percent-encoding.
  for (const target of ['/health/', '/h%65alth', '/health?probe=1']) {
    const same = await raw(service.port, 'CONNECT', target, {}, from);
    t.is(same.status, 405, target);
    t.is(same.headers['allow'], 'GET, HEAD, OPTIONS', target);
    t.is((await raw(service.port, 'GET', target)).status, 200, `GET ${target}`);
  }
  t.is((await raw(service.port, 'CONNECT', '/health/extra', {}, from)).status, 501);

  // A target with control characters never reaches the CONNECT answer: Node's parser refuses it
  // (HPE_INVALID_URL), so it is the parser refusal's JSON 400, and nothing of it is a log line.
  const forged = await raw(service.port, 'CONNECT', 'evil.example:443\x1b[2K', { 'X-Request-Id': 'connect-3' }, from);
  t.is(forged.status, 400);

  const delta = changes(before, await scrapeMetrics(service));
  t.true(delta(`${REQUESTS}{method="other",route="unmatched",status_code="501"}`) >= 2);
  // Like every 405 (no route matched), under route="unmatched".
  t.is(delta(`${REQUESTS}{method="other",route="unmatched",status_code="405"}`), 4);
  await waitFor('the CONNECT lines', () => linesWith(service.log(), 'id=connect-2').length === 1);
  const log = service.log();
  t.regex(linesWith(log, 'id=connect-1')[0] ?? '', / - request - INFO - CONNECT \(unmatched\) example\.com:443 501 \d+\.\d ms id=connect-1 ip=127\.0\.0\.3$/);
  t.regex(log, / - http - WARN - Request connect-1 CONNECT example\.com:443 answered 501 NotImplemented/);
  t.regex(linesWith(log, 'id=connect-2')[0] ?? '', / - request - INFO - CONNECT \(unmatched\) \/health 405 /);
  // This client's first CONNECT has its WARN line; the rest of the minute's are in the request log only.
  t.deepEqual(linesWith(log, 'Request connect-2 '), []);
  t.false(log.includes('\x1b'), 'no escape character reached the log');
});

test.serial('a request asking for an Upgrade (websocket, h2c) is answered as the ordinary request it also is', async (t) => {
  const reply = await raw(service.port, 'GET', '/livez', { Connection: 'Upgrade, close', Upgrade: 'websocket' });
  t.is(reply.status, 200);
  t.is(JSON.parse(reply.body).status, 'alive');
});

test('a route with a HEAD or OPTIONS of its own keeps it, registered before or after its GET', async (t) => {
  const server = restify.createServer({ name: '' });
  supportHeadAndOptions(server, new ResponseWriter(securityHeaderPairs({ hsts: false }), () => undefined));
  const answer = (text: string) => (_req: restify.Request, res: restify.Response, next: restify.Next) => {
    res.setHeader('X-Handler', text);
    res.setHeader('Content-Length', text.length);
    res.sendRaw(200, text);
    next();
  };
  server.get('/after', answer('get'));
  server.head('/after', answer('own head'));
  server.head('/before', answer('own head'));
  server.get('/before', answer('get'));
  server.opts('/own-options', answer('own options'));
  server.post('/own-options', answer('post'));
  server.get('/plain', answer('get'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as { port: number }).port;
    for (const target of ['/after', '/before']) {
      t.is((await raw(port, 'HEAD', target)).headers['x-handler'], 'own head', target);
      t.is((await raw(port, 'GET', target)).body, 'get', target);
      t.is((await raw(port, 'OPTIONS', target)).headers['allow'], 'GET, HEAD, OPTIONS', target);
    }
    t.is((await raw(port, 'OPTIONS', '/own-options')).body, 'own options');
    t.is((await raw(port, 'HEAD', '/plain')).headers['x-handler'], 'get', 'the GET handler answers HEAD');
    t.is((await raw(port, 'HEAD', '/plain')).body, '');
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test.serial('a 2-worker PM2 cluster: HEAD answers on both workers, and every method leaves the series bounded', async (t) => {
  const clusterDb = await createTestDatabase('ra_http_methods_pm2');
  const sandbox = await createPm2Sandbox({ ...clusterDb.env, API_INSTANCES: '2' });
  try {
    await sandbox.startEcosystem('production', 2);
    // A fresh connection per request: PM2 hands connections to the workers in turn.
    for (let i = 0; i < 6; i++) {
      const head = await raw(sandbox.port, 'HEAD', '/health');
      t.is(head.status, 200);
      t.is(head.body, '');
      t.is(head.headers['content-type'], 'application/json');
    }
    const probe = async (): Promise<void> => {
      for (const target of ['/health', '/api/login', '/no/such/path']) {
        for (const method of http.METHODS) await raw(sandbox.port, method, method === 'CONNECT' ? 'example.com:443' : target);
      }
    };
    const socketDir = path.join(sandbox.home, 'resilient-api', String(sandbox.port));
    const workerSizes = async (): Promise<number[]> =>
      Promise.all(readdirSync(socketDir).filter((name) => name.startsWith('api-')).map((name) => scrapeSocket(path.join(socketDir, name)).then((text) => text.length)));

    await probe();
    await raw(sandbox.port, 'GET', `/health`, { 'X-Big': 'a'.repeat(20_000) });
    const first = await scrapeMetrics(sandbox, 5000);
    const series = requestSeries(first);
    t.deepEqual([...series.methods].filter((method) => !LABELLED.has(method)), []);
    const perWorker = await workerSizes();
    t.is(perWorker.length, 2);
    await probe();
    const second = await scrapeMetrics(sandbox, 5000);
    t.is(requestSeries(second).count, series.count, 'the cluster scrape does not grow with methods');
    t.true((sample(second, `${REQUESTS}{method="other",route="unparsed",status_code="431"}`) ?? 0) >= 1, 'the refusal of one worker is in the cluster scrape');
    t.true((sample(second, `${REQUESTS}{method="HEAD",route="/health",status_code="200"}`) ?? 0) >= 6);
    t.log(
      `after ${3 * http.METHODS.length} requests (every method of http.METHODS on 3 paths): per-worker /metrics ${perWorker.join(' and ')} bytes, ` +
        `cluster scrape ${first.length} bytes, ${series.count} request series; after a second round ${second.length} bytes`,
    );
  } finally {
    await sandbox.destroy();
    await clusterDb.drop();
  }
});
