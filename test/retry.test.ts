// The retry helper: a synchronous throw in a later attempt (it starts from a timer) is a
// rejection, never an uncaught exception that would end the process.
import test from 'ava';
import { withRetry } from '../src/util/retry';

test('a synchronous throw in a retried attempt rejects the promise', async (t) => {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown): void => {
    uncaught.push(error);
  };
  process.on('uncaughtException', onUncaught);
  try {
    let calls = 0;
    const error = await t.throwsAsync(
      withRetry({ attempts: 3, minDelayMs: 1, maxDelayMs: 2 }, { shouldRetry: () => true }, () => {
        calls++;
        if (calls === 1) return Promise.reject(new Error('transient'));
        throw new Error('circuit open');
      }),
    );
    t.is(error?.message, 'circuit open');
    t.is(calls, 3);
    t.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});
