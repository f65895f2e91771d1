/** Probes: polled often and alone, they get a request id only when they answer an error (respond.ts). */
export const PROBE_PATHS: ReadonlySet<string> = new Set(['/health', '/livez', '/readyz', '/metrics']);

/**
 * Routes that monitors, scrapers and the status page poll: never shed by the overload guard,
 * written to the request log at DEBUG when they succeed, left out of the status page's API totals.
 */
export const MONITORING_ROUTES: ReadonlySet<string> = new Set([...PROBE_PATHS, '/api/status', '/status', '/status/summary']);

/**
 * Never rate limited: every monitoring route but /api/status, which does database work for
 * whoever asks and so counts like the rest of the API.
 */
export const RATE_LIMIT_EXEMPT_PATHS: ReadonlySet<string> = new Set([...MONITORING_ROUTES].filter((p) => p !== '/api/status'));

/** The path of a request URL, without its query string or a trailing slash. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const end = raw.indexOf('?');
  const path = end === -1 ? raw : raw.slice(0, end);
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}
