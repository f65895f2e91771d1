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
  const operation = retry.operation({
    retries: policy.attempts - 1,
    factor: 2,
    minTimeout: policy.minDelayMs,
    maxTimeout: policy.maxDelayMs,
    // Jitter: workers that failed together do not come back in lockstep.
    randomize: true,
  });
  return new Promise<T>((resolve, reject) => {
    operation.attempt((attempt) => {
      // Later attempts run from the retry package's timer: a synchronous throw there would be an
      // uncaught exception, so every attempt is turned into a promise first.
      Promise.resolve()
        .then(() => run(attempt))
        .then(resolve, (error: unknown) => {
          // operation.retry() both schedules the next attempt and says whether one is left.
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
