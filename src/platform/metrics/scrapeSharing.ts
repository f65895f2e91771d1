// A scrape of /metrics asks every sibling process, and /metrics is exempt from the rate limit and
// the overload guard (monitors must never be throttled). So a flood of scrapes must not become a
// flood of gatherings: concurrent callers share the gathering in flight, and past a burst of
// gatherings within one window, callers get the last result (at most one window old) instead.
// An ordinary scraper (Prometheus every 15 s, a test reading twice) always gets a fresh result.

export interface BurstLimits {
  /** Fresh gatherings allowed per window before results are reused. */
  readonly burst: number;
  readonly windowMs: number;
}

export const SCRAPE_SHARING: Readonly<BurstLimits> = { burst: 10, windowMs: 1000 };

export class BurstSharedValue<T> {
  private last: { readonly data: T; readonly at: number } | undefined;
  private inFlight: Promise<T> | undefined;
  private windowStart = 0;
  private fetchesInWindow = 0;

  constructor(
    private readonly fetch: () => Promise<T>,
    private readonly limits: BurstLimits = SCRAPE_SHARING,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    if (this.inFlight) return this.inFlight;
    const now = this.now();
    if (now - this.windowStart >= this.limits.windowMs) {
      this.windowStart = now;
      this.fetchesInWindow = 0;
    }
    if (this.fetchesInWindow >= this.limits.burst && this.last && now - this.last.at < this.limits.windowMs) {
      return Promise.resolve(this.last.data);
    }
    this.fetchesInWindow++;
    const fetching = this.fetch()
      .then((data) => {
        this.last = { data, at: this.now() };
        return data;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    this.inFlight = fetching;
    return fetching;
  }
}
