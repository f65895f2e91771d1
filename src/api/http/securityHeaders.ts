// Headers every response carries, including errors and the answers to requests Node cannot
// parse. They are set where each response is written (respond.ts, the clientError path), not by
// a middleware layer: a restify layer costs measurable throughput on every request.

/**
 * What an API's JSON needs (OWASP REST Security Cheat Sheet): never sniffed, rendered, framed
 * or cached. Cache-Control comes first so that a route may still choose its own (it is set after
 * these). Each header costs about 3% of /health throughput (measured), so headers that protect
 * documents rather than JSON are left out: Referrer-Policy (default-src 'none' loads nothing
 * that could carry a Referer) and Cross-Origin-Resource-Policy (nosniff JSON is already kept from
 * cross-origin no-cors reads).
 */
const BASE_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['Cache-Control', 'no-store'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  // For browsers that predate CSP's frame-ancestors.
  ['X-Frame-Options', 'DENY'],
];

/** One year; no includeSubDomains: this service cannot speak for its sibling hosts. */
const HSTS_VALUE = 'max-age=31536000';

let headers: ReadonlyArray<readonly [string, string]> = BASE_HEADERS;

/** Called once at start-up: HSTS only when this process itself serves HTTPS. */
export function configureSecurityHeaders(options: { readonly hsts: boolean }): void {
  headers = options.hsts ? [...BASE_HEADERS, ['Strict-Transport-Security', HSTS_VALUE]] : BASE_HEADERS;
}

/** The headers as name/value pairs, for responses written by hand. */
export function securityHeaders(): ReadonlyArray<readonly [string, string]> {
  return headers;
}

/** Anything with setHeader: a restify Response or a plain Node ServerResponse. */
export function applySecurityHeaders(res: { setHeader(name: string, value: string): unknown }): void {
  for (const [name, value] of headers) res.setHeader(name, value);
}
