// Scrubs secrets out of any text before it reaches a log: passwords and tokens in JSON or
// key=value form, bearer tokens, anything shaped like a JWT, credentials in URLs, and the
// literal values of configured secrets.
//
// Log lines carry client text, so every rule runs in time linear in the line (test/redos.test.ts
// checks each pattern), and the line is bounded first. No rule may scan the same run of
// characters once per position in it: a key is matched as a whole token (a lookbehind anchors it
// at the token's start, never `\b`, which holds inside `a-b` and `a.b`), and whether the key
// names a secret is decided in code, not by backtracking.
import { cut } from '../util/clientText';

const REDACTED = '[REDACTED]';

/** Longest text redacted; beyond it a line is cut (after the literal secrets are replaced). */
export const MAX_REDACTED_CHARS = 64 * 1024;

/** A key naming a secret: password, newPassword, x-api-key, jwt_secret, Set-Cookie, … */
const SECRET_KEY = /password|passwd|pwd|secret|token|authorization|api[_-]?key|cookie/i;

/** A JSON key (a whole quoted token) and its colon, when a string value follows. */
const JSON_KEY = /"([\w-]+)"\s*:\s*(?=")/g;
/** A key (a whole token) and its `=` or `:` in query strings, headers and messages. */
const PAIR_KEY = /(?<![\w-])([\w-]+)\s*[=:]\s*/g;
/** What ends an unquoted value: whitespace, &, comma or semicolon. */
const PAIR_VALUE_END = /[\s&,;]/;
/** A credential is long: "missing bearer token" in a message is left alone. */
const BEARER = /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi;
/** A whole dotted chain of base64url segments, in which JWTs are looked for. */
const DOTTED_CHAIN = /(?<![\w.-])[\w-]*(?:\.[\w-]*)+/g;
/** scheme://user:password@ (the scheme is taken whole, so `a.b.c…` is scanned once). */
const URL_CREDENTIALS = /(?<![a-z0-9+.-])([a-z0-9+.-]+:\/\/[^:/@\s]*:)[^@/\s]+@/gi;

/** Shorter values are not masked: they would mask ordinary words. */
const MIN_SECRET_CHARS = 4;

/** No literal secrets to mask (a process before its configuration is loaded, the supervisor). */
export const NO_SECRETS: readonly string[] = Object.freeze([]);

/**
 * Values that must never be printed verbatim, such as JWT_SECRET or the database password: the
 * configured ones long enough to mask, once each. Given to the logging when it is configured.
 */
export function secretsToMask(values: ReadonlyArray<string | undefined>): readonly string[] {
  const secrets = new Set<string>();
  for (const value of values) if (value !== undefined && value.length >= MIN_SECRET_CHARS) secrets.add(value);
  return Object.freeze([...secrets]);
}

/** `text` with every secret rule applied, and each of `secrets` (from secretsToMask) masked where it appears literally. */
export function redact(text: string, secrets: readonly string[] = NO_SECRETS): string {
  let result = text;
  // Before the cut, so a secret straddling it is not left half printed.
  for (const secret of secrets) {
    if (result.includes(secret)) result = result.split(secret).join(REDACTED);
  }
  // The marker is kept out of the rules' reach (it would read as part of a value).
  const { kept, marker } = cut(result, MAX_REDACTED_CHARS);
  result = kept;
  // Each rule runs only where it could apply: most lines name no secret, carry no JWT or URL.
  const namesSecret = SECRET_KEY.test(result);
  if (namesSecret) result = redactValuesAfterKeys(result, JSON_KEY, quotedValueEnd);
  // Before the key=value rule, so "Authorization: Bearer x" loses the token, not the word.
  result = result.replace(BEARER, `Bearer ${REDACTED}`);
  if (namesSecret) result = redactValuesAfterKeys(result, PAIR_KEY, unquotedValueEnd);
  if (result.includes('eyJ')) result = result.replace(DOTTED_CHAIN, redactJwts);
  if (result.includes('://')) result = result.replace(URL_CREDENTIALS, `$1${REDACTED}@`);
  return result + marker;
}

/**
 * Replaces the value that follows each key found by `keyPattern` (a global regex whose first
 * group is the key's name) when the name is a secret's. `valueEnd` says where a value starting
 * at an index ends (the index itself when there is none). After a key that is not a secret the
 * search goes on right behind it, so a key inside its value (`url=/x?password=y`) is still seen.
 */
function redactValuesAfterKeys(text: string, keyPattern: RegExp, valueEnd: (text: string, start: number) => number): string {
  let result = '';
  let copied = 0;
  for (const match of text.matchAll(keyPattern)) {
    const key = match[1] ?? '';
    // A key inside a value already redacted is gone with it.
    if (match.index < copied || !SECRET_KEY.test(key)) continue;
    const start = match.index + match[0].length;
    const end = valueEnd(text, start);
    if (end === start) continue;
    result += text.slice(copied, start) + (text[start] === '"' ? `"${REDACTED}"` : REDACTED);
    copied = end;
  }
  return copied === 0 ? text : result + text.slice(copied);
}

/**
 * A JSON string starting at `start` (escaped quotes inside): its end after the closing quote;
 * one that never closes (a line cut short) runs to the end of its line.
 */
function quotedValueEnd(text: string, start: number): number {
  for (let index = start + 1; index < text.length; index++) {
    const character = text[index];
    if (character === '\\') index++;
    else if (character === '"') return index + 1;
    else if (character === '\n') return index;
  }
  return text.length;
}

/** An unquoted value: up to whitespace, &, comma or semicolon. A quoted one is JSON's business. */
function unquotedValueEnd(text: string, start: number): number {
  if (text[start] === '"') return start;
  let index = start;
  while (index < text.length && !PAIR_VALUE_END.test(text[index] ?? '')) index++;
  return index;
}

/**
 * JWTs in a dotted chain: a segment that begins with `eyJ` (or has `-eyJ` in it), then a
 * non-empty segment and a third one, as `header.payload.signature`. Chains are cut into
 * segments here, so no pattern rescans one per `eyJ` in it.
 */
function redactJwts(chain: string): string {
  if (!chain.includes('eyJ')) return chain; // most chains: numbers, addresses, file names
  const segments = chain.split('.');
  const kept: string[] = [];
  for (let index = 0; index < segments.length; index++) {
    const segment = segments[index] ?? '';
    const afterDash = segment.indexOf('-eyJ');
    const start = segment.startsWith('eyJ') ? 0 : afterDash === -1 ? -1 : afterDash + 1;
    if (start !== -1 && index + 2 < segments.length && segments[index + 1] !== '') {
      kept.push(segment.slice(0, start) + REDACTED);
      index += 2;
    } else {
      kept.push(segment);
    }
  }
  return kept.join('.');
}
