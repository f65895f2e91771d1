// Access tokens: HS256 JWTs signed with JWT_SECRET, carrying the user id (`sub`), the name, the
// issuer, the issue time and the expiry. Verification is strict, so that a token is accepted in
// exactly one spelling and with exactly the claims this service issues:
// - the exact compact JWS serialization: three canonical unpadded base64url segments, nothing
//   around them (jose decodes leniently: a trailing "=", whitespace or other low bits in the
//   signature's last character would otherwise give another spelling of the same token);
// - HS256 only (`alg: none` and key-confusion tricks fail), signed with our key, our issuer;
// - `sub` a canonical positive integer ("0x2", "1.0", " 3", "3e0" are not user ids);
// - `iat` and `exp` whole seconds, `iat` not in the future (beyond CLOCK_SKEW_SECONDS), `exp` not
//   passed, and `exp - iat` not longer than the configured lifetime (no ten-year tokens).
// A refusal carries a reason from a fixed set (a metric label) and a fixed detail for the log;
// neither quotes the token.
import { webcrypto } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import type { AuthFailureReason } from '../metrics/counters';
import { NamedError } from '../../platform/util/errors';

export interface TokenSettings {
  readonly secret: string;
  readonly ttlSeconds: number;
  readonly issuer: string;
}

export interface TokenClaims {
  readonly userId: number;
  readonly username: string;
}

/** Why a presented token was refused; 'missing' and 'unknown_user' are decided by the route. */
export type TokenRefusal = Exclude<AuthFailureReason, 'missing' | 'unknown_user'>;

export class InvalidTokenError extends NamedError {
  /** `detail` is a fixed text for the log: it never quotes the token or its claims. */
  constructor(
    readonly reason: TokenRefusal,
    readonly detail: string,
  ) {
    super(`Invalid token: ${reason} (${detail})`);
  }
}

const ALGORITHM = 'HS256';

/**
 * How far in the future an `iat` may be. Tokens issued on one host are verified on every other
 * (they share the secret), and clocks kept by NTP differ by well under a second; 30 s spares a
 * host whose clock runs a little ahead without letting anyone mint tokens dated for later.
 */
export const CLOCK_SKEW_SECONDS = 30;

/**
 * Longest token read. One issued here is under 500 characters (a 32-character name of 4-byte
 * characters included); the bound keeps a header-sized blob from being decoded and hashed.
 */
export const MAX_TOKEN_CHARS = 2048;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const SEGMENT_NAMES = ['header', 'payload', 'signature'] as const;
/** A user id as issued: no sign, no leading zero, no exponent, no space, at most 16 digits. */
const USER_ID = /^[1-9][0-9]{0,15}$/;

/**
 * Why `token` is not exactly a compact JWS (RFC 7515 §7.1: three base64url segments without
 * padding, joined by dots), or undefined when it is. Each segment must also be canonical: decoded
 * and encoded again it gives itself back, so unused low bits in the last character are zero.
 */
export function compactJwsProblem(token: string): string | undefined {
  if (token.length > MAX_TOKEN_CHARS) return `longer than ${MAX_TOKEN_CHARS} characters`;
  const segments = token.split('.');
  if (segments.length !== 3) return `${segments.length} dot-separated segments instead of 3`;
  for (const [index, segment] of segments.entries()) {
    const name = SEGMENT_NAMES[index] ?? 'segment';
    if (!BASE64URL.test(segment)) return `the ${name} is empty or not unpadded base64url`;
    if (!isCanonicalBase64url(segment)) return `the ${name} is not canonical base64url`;
  }
  return undefined;
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Whether decoding `segment` (already checked to be base64url) and encoding it again gives it
 * back: a length of 4n + 1 holds no whole byte more, and the last character of 4n + 2 (4n + 3)
 * characters carries 4 (2) bits that no byte uses, which must be zero. Read off the last
 * character instead of a decode and encode per segment: three buffers and strings per request.
 */
function isCanonicalBase64url(segment: string): boolean {
  const unusedBits = [0, -1, 4, 2][segment.length % 4] ?? -1;
  if (unusedBits <= 0) return unusedBits === 0;
  const last = BASE64URL_ALPHABET.indexOf(segment.charAt(segment.length - 1));
  return (last & ((1 << unusedBits) - 1)) === 0;
}

/** The user id a `sub` names, or undefined unless it is a canonical positive safe integer. */
export function userIdOf(subject: unknown): number | undefined {
  if (typeof subject !== 'string' || !USER_ID.test(subject)) return undefined;
  const id = Number(subject);
  return Number.isSafeInteger(id) ? id : undefined;
}

/**
 * What this service requires of a payload jose has verified (signature, algorithm, issuer,
 * presence of sub, iat and exp, exp not passed): whole-second times, an issue time not in the
 * future, a lifetime within `ttlSeconds`, a canonical user id and a name.
 */
export function claimsOf(payload: JWTPayload, nowSeconds: number, ttlSeconds: number): TokenClaims {
  const { iat, exp } = payload;
  if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp)) {
    throw new InvalidTokenError('claims', 'iat or exp is not a whole number of seconds');
  }
  const issuedAt = iat as number;
  const expiresAt = exp as number;
  if (issuedAt > nowSeconds + CLOCK_SKEW_SECONDS) {
    throw new InvalidTokenError('not_yet_valid', `iat more than ${CLOCK_SKEW_SECONDS} s in the future`);
  }
  if (expiresAt - issuedAt > ttlSeconds) {
    throw new InvalidTokenError('lifetime', `exp - iat longer than the token lifetime of ${ttlSeconds} s`);
  }
  if (expiresAt <= issuedAt) throw new InvalidTokenError('lifetime', 'exp not after iat');
  const userId = userIdOf(payload.sub);
  if (userId === undefined) throw new InvalidTokenError('subject', 'sub is not a canonical user id');
  const username = payload['name'];
  if (typeof username !== 'string') throw new InvalidTokenError('claims', 'name claim missing or not a string');
  return { userId, username };
}

/** A jose refusal as one of ours: its error classes and codes, never its message. */
function refusalOf(error: unknown): InvalidTokenError {
  if (error instanceof joseErrors.JWTExpired) return new InvalidTokenError('expired', 'exp has passed');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return new InvalidTokenError('not_yet_valid', 'nbf is in the future');
    if (error.claim === 'sub') return new InvalidTokenError('subject', 'no sub claim');
    // claim and reason are jose's own words ('iss', 'missing'), not text from the token.
    return new InvalidTokenError('claims', `${error.claim} claim ${error.reason}`);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return new InvalidTokenError('algorithm', `alg is not ${ALGORITHM}`);
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return new InvalidTokenError('signature', 'signature does not match');
  if (error instanceof joseErrors.JOSEError) return new InvalidTokenError('malformed', error.code);
  return new InvalidTokenError('malformed', 'unreadable');
}

export class TokenService {
  /**
   * Imported once: jose imports a raw Uint8Array secret again on every sign and verify (a Web
   * Crypto importKey per request, measured at 3-5% of GET /api/me's CPU).
   */
  private readonly key: Promise<webcrypto.CryptoKey>;

  constructor(private readonly settings: TokenSettings) {
    this.key = webcrypto.subtle.importKey('raw', new TextEncoder().encode(settings.secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
  }

  get ttlSeconds(): number {
    return this.settings.ttlSeconds;
  }

  async issue(claims: TokenClaims, now: Date = new Date()): Promise<string> {
    // One clock reading for both times, so exp - iat is the lifetime exactly (two readings
    // either side of a second's end would make it one more, which verify() refuses).
    const issuedAt = Math.floor(now.getTime() / 1000);
    return new SignJWT({ name: claims.username })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setSubject(String(claims.userId))
      .setIssuer(this.settings.issuer)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + this.settings.ttlSeconds)
      .sign(await this.key);
  }

  /** The claims of a token this service would issue; InvalidTokenError with the reason otherwise. */
  async verify(token: string, now: Date = new Date()): Promise<TokenClaims> {
    const shape = compactJwsProblem(token);
    if (shape !== undefined) throw new InvalidTokenError('malformed', shape);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await this.key, {
        algorithms: [ALGORITHM],
        issuer: this.settings.issuer,
        requiredClaims: ['sub', 'iat', 'exp'],
        currentDate: now,
      }));
    } catch (error) {
      throw refusalOf(error);
    }
    return claimsOf(payload, Math.floor(now.getTime() / 1000), this.settings.ttlSeconds);
  }
}
