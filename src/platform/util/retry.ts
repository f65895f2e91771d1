// Retries on the `retry` package, for the database layer and the alert webhook:
// exponential backoff with jitter, a bounded number of attempts, and a caller-supplied
// rule for which failures deserve another attempt.
import retry from 'retry';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
}

export interface RetryHooks {
  shouldRetry(error: unknown): boolean;
  /** Called before waiting for the next attempt. */
  onRetry?(error: unknown, failedAttempt: number, attempts: number): void;
}

export const DEFAULT_BACKOFF = { minDelayMs: 50, maxDelayMs: 1000 } as const;

export function withRetry<T>(
  policy: RetryPolicy,
  hooks: RetryHooks,
  run: (attempt: number) => Promise<T>,
): Promise<T> {
  // The first attempt runs without the retry package: almost every call succeeds at once, and a
  // RetryOperation (its timeouts computed, sorted and deep-copied) per database statement was
  // about 2.5 KB of garbage per GET /api/me (heap sampling, docs/benchmarks.md). The package takes
  // over at the first failure that deserves another attempt, with the same schedule as before.
  // Every attempt runs inside a promise: a synchronous throw becomes a rejection.
  return Promise.resolve()
    .then(() => run(1))
    .catch((error: unknown) => {
      if (policy.attempts <= 1 || !hooks.shouldRetry(error)) throw error;
      return retryAfterFirstFailure(policy, hooks, run, error);
    });
}

/** Attempts 2…N on the retry package's schedule, after attempt 1 failed with `firstError`. */
function retryAfterFirstFailure<T>(policy: RetryPolicy, hooks: RetryHooks, run: (attempt: number) => Promise<T>, firstError: unknown): Promise<T> {
  const operation = retry.operation({
    retries: policy.attempts - 1,
    factor: 2,
    minTimeout: policy.minDelayMs,
    maxTimeout: policy.maxDelayMs,
    // Jitter: workers that failed together do not come back in lockstep.
    randomize: true,
  });
  return new Promise<T>((resolve, reject) => {
    // operation.attempt() runs its callback at once as attempt 1, which already failed: that
    // call only schedules attempt 2 (operation.retry() both schedules it and says one is left).
    operation.attempt((attempt) => {
      if (attempt === 1) {
        // retry() schedules nothing for a falsy error: reject then, as a last failure.
        if (!operation.retry(firstError as Error)) {
          reject(firstError);
          return;
        }
        hooks.onRetry?.(firstError, 1, policy.attempts);
        return;
      }
      // Later attempts run from the retry package's timer: a synchronous throw there would be an
      // uncaught exception, so every attempt is turned into a promise first.
      Promise.resolve()
        .then(() => run(attempt))
        .then(resolve, (error: unknown) => {
          if (hooks.shouldRetry(error) && operation.retry(error as Error)) {
            hooks.onRetry?.(error, attempt, policy.attempts);
            return;
          }
          operation.stop();
          reject(error);
        });
    });
  });
}
