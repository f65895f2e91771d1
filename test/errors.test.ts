// Every error, whatever raised it, is the same JSON envelope with the request id, in the
// header and in one log line; a 5xx says nothing internal; the process survives it.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { rawExchange, type Reply } from './helpers/http';
import { startService, type Service } from './helpers/service';
import { waitFor } from './helpers/wait';

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_errors');
  service = await startService({ env: { ...db.env, FAULT_INJECTION: '1', MAX_BODY_BYTES: '1024' } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

/**
 * The one error envelope (docs/http-api.md), and the same id in the header and in exactly one error line (the
 * request log's access line for the same request, category `request`, is not an error line).
 */
async function assertEnvelope(t: import('ava').ExecutionContext, reply: Reply, status: number, code: string) {
  t.is(reply.status, status, reply.text);
  t.regex(String(reply.headers['content-type']), /^application\/json/);
  t.deepEqual(Object.keys(reply.body).sort(), ['code', 'message', 'requestId']);
  t.is(reply.body.code, code);
  t.is(typeof reply.body.message, 'string');
  t.is(reply.headers['x-request-id'], reply.body.requestId);
  const id: string = reply.body.requestId;
  const lines = await waitFor(`a log line with ${id}`, () => {
    const found = service.log().split('\n').filter((line) => line.includes(id) && !line.includes(' - request - '));
    return found.length > 0 ? found : undefined;
  }, 3000);
  t.is(lines.length, 1, `one log line for ${id}`);
  // A server fault is an ERROR with its stack; a refusal (4xx, and 503 while the database is away) a WARN.
  const [level, verb] = status >= 500 && status !== 503 ? ['ERROR', 'failed with'] : ['WARN', 'answered'];
  t.regex(
    lines[0] ?? '',
    new RegExp(`^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d - http - ${level} - Request ${id} [A-Z]+ \\S+ ${verb} ${status} ${code}\\b`),
  );
}

const htmlPlease = { accept: 'text/html', 'content-type': 'application/json' };

test('400 for malformed JSON, even when the client asks for HTML', async (t) => {
  const reply = await service.request('/api/login', { body: '{"username": "a", ', headers: htmlPlease });
  await assertEnvelope(t, reply, 400, 'InvalidContent');
});

test('400 for a body that fails validation', async (t) => {
  const reply = await service.request('/api/register', { body: { username: 'x' }, headers: { accept: 'text/plain' } });
  await assertEnvelope(t, reply, 400, 'BadRequest');
});

test('401 for a wrong password', async (t) => {
  const reply = await service.request('/api/login', { body: { username: 'ghost', password: 'nope-nope' } });
  await assertEnvelope(t, reply, 401, 'InvalidCredentials');
});

test('401 for /api/me without a token', async (t) => {
  await assertEnvelope(t, await service.request('/api/me', { headers: { accept: 'application/xml' } }), 401, 'Unauthorized');
});

test('404 for an unknown path', async (t) => {
  await assertEnvelope(t, await service.request('/no/such/thing', { headers: { accept: 'text/html' } }), 404, 'ResourceNotFound');
});

test('405 for a known path with the wrong method', async (t) => {
  await assertEnvelope(t, await service.request('/api/login', { method: 'GET' }), 405, 'MethodNotAllowed');
});

test('409 for a taken username', async (t) => {
  await service.request('/api/register', { body: { username: 'taken', password: 'password-1' } });
  const reply = await service.request('/api/register', { body: { username: 'TAKEN', password: 'password-1' } });
  await assertEnvelope(t, reply, 409, 'Conflict');
});

test('413 for a body over the limit, announced or streamed', async (t) => {
  const big = JSON.stringify({ username: 'big', password: 'x'.repeat(5000) });
  await assertEnvelope(t, await service.request('/api/register', { body: big, headers: htmlPlease }), 413, 'PayloadTooLarge');
  // Chunked, so the size is known only while reading.
  const chunked = await service.request('/api/register', {
    body: big,
    headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'content-length': '' },
  });
  t.is(chunked.status, 413);
});

test('415 for a body that is not JSON', async (t) => {
  const reply = await service.request('/api/login', {
    body: 'username=a&password=b',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  await assertEnvelope(t, reply, 415, 'UnsupportedMediaType');
});

test('500 for a synchronous throw in a handler: nothing internal leaks, the process lives on', async (t) => {
  const reply = await service.request('/__fault/throw', { headers: { accept: 'text/html' } });
  await assertEnvelope(t, reply, 500, 'InternalServer');
  t.is(reply.body.message, 'Internal server error');
  t.notRegex(reply.text, /secret internals|at .*\.js|Error:/);
  // The stack went to the log, after the error line.
  t.regex(service.log(), new RegExp(`${reply.body.requestId}.*\\n.*Injected synchronous failure[^\\n]*\\n\\s+at `));
  t.is((await service.request('/livez')).status, 200);
  t.is(service.process.exitCode, null);
});

test('500 for a rejected promise in a handler, and the process lives on', async (t) => {
  const reply = await service.request('/__fault/reject');
  await assertEnvelope(t, reply, 500, 'InternalServer');
  t.notRegex(reply.text, /secret internals/);
  t.is((await service.request('/livez')).status, 200);
});

test('a client-supplied request id is kept; a hostile one is replaced', async (t) => {
  const kept = await service.request('/nowhere', { headers: { 'x-request-id': 'trace-abc.123' } });
  t.is(kept.body.requestId, 'trace-abc.123');
  t.is(kept.headers['x-request-id'], 'trace-abc.123');
  const replaced = await service.request('/nowhere', { headers: { 'x-request-id': 'bad id with "quotes" <and> spaces' } });
  t.regex(replaced.body.requestId, /^[0-9a-f-]{36}$/);
});

test('a request Node cannot even parse still gets a JSON 400', async (t) => {
  const { data: raw } = await rawExchange(
    service.port,
    (socket) => socket.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'),
    5000,
  );
  t.regex(raw, /^HTTP\/1\.1 400 /);
  t.regex(raw, /content-type: application\/json/i);
  const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  t.is(body.code, 'BadRequest');
  t.regex(body.requestId, /^[0-9a-f-]{36}$/);
});

test('successful API responses carry a request id too; probes only when they fail', async (t) => {
  const status = await service.request('/api/status');
  t.regex(String(status.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  t.is((await service.request('/livez')).headers['x-request-id'], undefined);
  // A probe's error is an envelope like any other, with its id in the header and the body.
  const wrongMethod = await service.request('/health', { method: 'DELETE' });
  t.is(wrongMethod.status, 405);
  t.is(wrongMethod.headers['x-request-id'], wrongMethod.body.requestId);
  t.regex(wrongMethod.body.requestId, /^[0-9a-f-]{36}$/);
});

test('an unhandled promise rejection is logged and the process keeps serving', async (t) => {
  t.is((await service.request('/__fault/unhandled-rejection', { method: 'POST' })).status, 202);
  await waitFor('the rejection in the log', () => /Unhandled promise rejection[^\n]*\n[^\n]*Injected unhandled rejection/.test(service.log()));
  t.is((await service.request('/livez')).status, 200);
  t.is(service.process.exitCode, null);
});
