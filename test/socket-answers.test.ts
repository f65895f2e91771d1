// Answers written on the socket (src/api/http/socketAnswers.ts) around requests the server holds,
// as the rate limit holds one for a sync: through a real Node HTTP server on a port and raw
// sockets, in process, so a test can hold and resume a request and look at the server's side of
// the connection. And the once-per-client throttle of their WARN lines.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import type { Logger } from '../src/platform/logging/logger';
import type { SocketAnswer } from '../src/api/http/requestLog';
import { securityHeaderPairs } from '../src/api/http/securityHeaders';
import { answerOnSocket } from '../src/api/http/socketAnswers';
import { OncePerInterval } from '../src/platform/util/oncePerInterval';
import { rawExchange } from './helpers/http';
import { waitFor } from './helpers/wait';

interface Held {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/** A server whose every request is held until the test answers it, with answerOnSocket as the service has it. */
async function holdingServer(options: http.ServerOptions): Promise<{ port: number; held: Held[]; answers: SocketAnswer[]; warnings: string[]; close(): Promise<void> }> {
  const held: Held[] = [];
  const answers: SocketAnswer[] = [];
  const warnings: string[] = [];
  const node = http.createServer(options, (req, res) => void held.push({ req, res }));
  // answerOnSocket writes only WARN lines: a recorder of those stands in for a log4js Logger.
  const log = { warn: (text: string) => void warnings.push(text) } as unknown as Logger;
  answerOnSocket(node, {
    log,
    observe: (answer) => void answers.push(answer),
    clientIp: (req) => req.socket.remoteAddress ?? '?',
    routes: { allowedAt: () => undefined, allMethods: () => [] },
    tls: false,
    securityHeaders: securityHeaderPairs({ hsts: false }),
  });
  await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
  return {
    port: (node.address() as AddressInfo).port,
    held,
    answers,
    warnings,
    close: () => {
      node.closeAllConnections();
      return new Promise((resolve) => node.close(() => resolve()));
    },
  };
}

const answer = (res: ServerResponse, text: string): void => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
};

test('a held request before a malformed one: its answer when resumed, whole, then the 400', async (t) => {
  const server = await holdingServer({});
  try {
    const exchange = rawExchange(server.port, (socket) => socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1 junk\r\n\r\n'), 10_000);
    const first = await waitFor('the first request, held', () => server.held[0]);
    // Resumed some time after the refusal, as the rate limit resumes a request after its sync.
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.is(server.answers.length, 0, 'the refusal waits for the answer due before it');
    answer(first.res, 'the first answer');
    const { data } = await exchange;
    const [head = '', ...rest] = data.split('HTTP/1.1 400 Bad Request\r\n');
    t.true(head.startsWith('HTTP/1.1 200 OK\r\n'), head);
    t.true(head.endsWith('\r\n\r\nthe first answer'), 'the first answer complete, with nothing inside it');
    t.is(rest.length, 1, 'then the 400');
    t.is(server.answers[0]?.status, 400);
    t.regex(server.warnings[0] ?? '', /could not be parsed \(HPE_[A-Z_]+\); answered 400 BadRequest$/);
  } finally {
    await server.close();
  }
});

test('a body too slow while its request is held: the 408, the connection destroyed, the held answer goes nowhere', async (t) => {
  const server = await holdingServer({ requestTimeout: 1000, headersTimeout: 500, connectionsCheckingInterval: 100 });
  try {
    let timer: NodeJS.Timeout | undefined;
    const exchange = rawExchange(server.port, (socket) => {
      socket.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{');
      timer = setInterval(() => socket.writable && socket.write(' '), 100);
    }, 10_000).finally(() => clearInterval(timer));
    const slow = await waitFor('the slow request, held', () => server.held[0]);
    const { data } = await exchange;
    t.true(data.startsWith('HTTP/1.1 408 Request Timeout\r\n'), data.slice(0, 60));
    t.regex(data, /"code":"RequestTimeout"/);
    // The server's side is gone, not half-open: the held request's answer cannot reach anyone.
    await waitFor('the held response closed with its connection', () => slow.res.destroyed);
    t.true(slow.req.socket.destroyed, 'the server side destroyed');
    answer(slow.res, 'too late');
    t.false(data.includes('too late'));
    t.deepEqual(server.answers.map((a) => a.status), [408]);
  } finally {
    await server.close();
  }
});

test('one pass per key per interval; the ones held back are counted and reported with the next pass', (t) => {
  const once = new OncePerInterval(60_000, 3);
  t.deepEqual(once.take('a', 0), { pass: true, held: 0 });
  t.deepEqual(once.take('a', 1000), { pass: false });
  t.deepEqual(once.take('a', 59_999), { pass: false });
  t.deepEqual(once.take('b', 59_999), { pass: true, held: 0 }, 'another key passes');
  t.deepEqual(once.take('a', 60_000), { pass: true, held: 2 }, 'a minute later, with the count of those held back');
  t.deepEqual(once.take('a', 60_001), { pass: false });
});

test('at most maxKeys keys are remembered, the least recently passed one forgotten first', (t) => {
  const once = new OncePerInterval(60_000, 2);
  once.take('a', 0);
  once.take('b', 0);
  t.deepEqual(once.take('a', 1), { pass: false }, 'remembered');
  once.take('c', 2);
  // 'a' passed before 'b' did: it is the one forgotten, and passes again sooner.
  t.deepEqual(once.take('b', 3), { pass: false });
  t.deepEqual(once.take('a', 4), { pass: true, held: 0 });
});
