// The retry helper: bounded attempts, and no way for an attempt to escape as an uncaught exception.
import test from 'ava';
import { withRetry } from '../src/platform/util/retry';

const policy = { attempts: 3, minDelayMs: 1, maxDelayMs: 2 };

test('retries while the rule says so, up to the bound', async (t) => {
  let calls = 0;
  const error = await t.throwsAsync(
    withRetry(policy, { shouldRetry: () => true }, async () => {
      calls++;
      throw new Error(`failure ${calls}`);
    }),
  );
  t.is(calls, 3);
  t.is(error?.message, 'failure 3');
});

test('a success on a later attempt resolves', async (t) => {
  let calls = 0;
  const value = await withRetry(policy, { shouldRetry: () => true }, async () => {
    if (++calls < 2) throw new Error('transient');
    return 'done';
  });
  t.is(value, 'done');
  t.is(calls, 2);
});

test('an attempt that throws synchronously on a retry rejects instead of crashing the process', async (t) => {
  let calls = 0;
  let uncaught: unknown;
  const onUncaught = (error: unknown): void => {
    uncaught = error;
  };
  process.once('uncaughtException', onUncaught);
  try {
    const error = await t.throwsAsync(
      withRetry(policy, { shouldRetry: () => true }, (attempt) => {
        calls++;
        if (attempt > 1) throw new Error('thrown synchronously on a retry');
        return Promise.reject(new Error('first attempt fails'));
      }),
    );
    t.is(error?.message, 'thrown synchronously on a retry');
    t.is(uncaught, undefined);
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
});
