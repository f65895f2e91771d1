// Small promise helpers shared by the health checks and the login limiter.
import { NamedError } from './errors';

export class DeadlineError extends NamedError {
  constructor(readonly ms: number) {
    super(`no result within ${ms} ms`);
  }
}

/**
 * Settles like `promise`, or rejects with DeadlineError after `ms`. A rejection passes through
 * as it is, Error or not (rate-limiter-flexible rejects with a plain RateLimiterRes).
 */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  if (ms <= 0) return Promise.reject(new DeadlineError(ms));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineError(ms)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A value fetched at most once per `maxAgeMs`; concurrent callers share the fetch in flight.
 * The last good value stays readable (`lastKnown`) when a fetch fails.
 */
export class SharedValue<T> {
  private value: { data: T; at: number } | undefined;
  private inFlight: Promise<T> | undefined;

  constructor(
    private readonly fetch: () => Promise<T>,
    private readonly maxAgeMs: number,
  ) {}

  get lastKnown(): T | undefined {
    return this.value?.data;
  }

  get(): Promise<T> {
    if (this.value && Date.now() - this.value.at < this.maxAgeMs) return Promise.resolve(this.value.data);
    this.inFlight ??= this.fetch()
      .then((data) => {
        this.value = { data, at: Date.now() };
        return data;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
