// The overload guard's decisions, in-process: each limit found by a sample, a stall seen by the
// next request before the sampler runs, the transitions logged once with the count of 503s,
// and recovery. (test/overload.test.ts proves the same through a real service.)
import type { Request, Response } from 'restify';
import test from 'ava';
import { RETRY_AFTER_SECONDS } from '../src/api/http/errors';
import { OverloadGuard } from '../src/api/http/overload';
import { createApiCounters } from '../src/api/metrics/counters';
import type { OverloadConfig } from '../src/platform/config';

const OFF: OverloadConfig = { maxEventLoopDelayMs: 0, maxHeapPercent: 0, maxPoolWaiting: 0 };

function setup(limits: Partial<OverloadConfig>, waiting = { count: 0 }) {
  const lines: string[] = [];
  const counters = createApiCounters();
  const guard = new OverloadGuard(
    { ...OFF, ...limits },
    () => waiting.count,
    { info: (message: string) => void lines.push(`INFO ${message}`), warn: (message: string) => void lines.push(`WARN ${message}`) },
    counters,
  );
  return { guard, lines, counters, waiting };
}

async function shedCount(counters: ReturnType<typeof createApiCounters>, reason: string): Promise<number> {
  const metric = await counters.overloadRejections.get();
  return metric.values.find((value) => value.labels['reason'] === reason)?.value ?? 0;
}

/** A stand-in for what reject() touches: the request's mark and id, and the writer's answer. */
function rejectOne(guard: OverloadGuard): { status: number; headers: Record<string, string>; body: unknown } {
  const answer = { status: 0, headers: {} as Record<string, string>, body: undefined as unknown };
  // The caller's own request id (a plain token), which the answer keeps.
  const res = { headersSent: false };
  guard.reject({ headers: { 'x-request-id': 'req-1' } } as unknown as Request, res as unknown as Response, {
    sendJsonBeforeRouting: (_res, status, body, extra) => Object.assign(answer, { status, body, headers: { ...extra } }),
  });
  return answer;
}

test('a queue for database connections over its limit is found by a sample, and passes with it', async (t) => {
  const { guard, lines, counters, waiting } = setup({ maxPoolWaiting: 5 });
  waiting.count = 5;
  guard.sample();
  t.false(guard.overloaded, 'at the limit is not over it');
  waiting.count = 6;
  guard.sample();
  t.true(guard.overloaded);
  t.deepEqual(guard.state.reasons, ['6 requests waiting for a database connection, over 5']);
  t.true(guard.shouldShed(performance.now()));

  const answer = rejectOne(guard);
  rejectOne(guard);
  t.is(answer.status, 503);
  t.deepEqual(answer.headers, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
  t.deepEqual(answer.body, { code: 'ServiceUnavailable', message: 'Server is overloaded; try again shortly', requestId: 'req-1' });
  t.is(await shedCount(counters, 'db_pool_queue'), 2);

  waiting.count = 0;
  guard.sample();
  t.false(guard.overloaded);
  t.false(guard.shouldShed(performance.now()));
  t.is(lines.length, 2, lines.join('\n'));
  t.regex(lines[0] ?? '', /^WARN Overloaded \(6 requests waiting for a database connection, over 5\): answering 503/);
  t.regex(lines[1] ?? '', /^INFO Overload over after \d+\.\d s; 2 requests were answered 503 meanwhile$/);
});

test('a heap over its share of the limit is found by a sample', (t) => {
  // Any live heap is over a thousandth of a percent of V8's limit.
  const { guard, lines } = setup({ maxHeapPercent: 0.001 });
  guard.sample();
  t.true(guard.overloaded);
  t.regex(guard.state.reasons[0] ?? '', /^heap used \d+\.\d% of its limit, over 0.001%$/);
  t.is(lines.length, 1);
});

test('a stall is seen by the first request after it, before the sampler runs again', (t) => {
  const { guard, lines } = setup({ maxEventLoopDelayMs: 1000 });
  guard.start();
  t.teardown(() => guard.stop());
  const now = performance.now();
  // The sampler is due every 250 ms: a request read 1,100 ms late is inside the bound…
  t.false(guard.shouldShed(now + 250 + 900));
  // …one read 1,300 ms after the last sample is past it.
  t.true(guard.shouldShed(now + 250 + 1300));
  t.true(guard.overloaded);
  t.regex(guard.state.reasons[0] ?? '', /^event loop delay 1\d{3} ms, over 1000 ms$/);
  t.is(lines.length, 1);
  // The next on-time sample finds the loop well: over.
  guard.sample();
  t.false(guard.overloaded);
  t.is(lines.length, 2);
});

test('with every limit off nothing is ever shed', (t) => {
  const { guard, waiting } = setup({});
  guard.start();
  t.teardown(() => guard.stop());
  waiting.count = 1000;
  guard.sample();
  t.false(guard.overloaded);
  t.false(guard.shouldShed(performance.now() + 60_000));
});

test('the first reason is the one a rejection is counted under', async (t) => {
  const { guard, counters, waiting } = setup({ maxHeapPercent: 0.001, maxPoolWaiting: 1 });
  waiting.count = 2;
  guard.sample();
  t.is(guard.state.reasons.length, 2);
  rejectOne(guard);
  t.is(await shedCount(counters, 'heap'), 1);
  t.is(await shedCount(counters, 'db_pool_queue'), 0);
});
