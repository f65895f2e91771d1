// Access tokens: HS256 JWTs signed with JWT_SECRET, carrying the user id, an issuer and an
// expiry. Verification pins the algorithm, so `alg: none` and key-confusion tricks fail.
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { NamedError } from '../util/errors';

export interface TokenSettings {
  readonly secret: string;
  readonly ttlSeconds: number;
  readonly issuer: string;
}

export interface TokenClaims {
  readonly userId: number;
  readonly username: string;
}

export class InvalidTokenError extends NamedError {
  constructor(readonly reason: string) {
    super(`Invalid token: ${reason}`);
  }
}

const ALGORITHM = 'HS256';

export class TokenService {
  private readonly key: Uint8Array;

  constructor(private readonly settings: TokenSettings) {
    this.key = new TextEncoder().encode(settings.secret);
  }

  get ttlSeconds(): number {
    return this.settings.ttlSeconds;
  }

  issue(claims: TokenClaims): Promise<string> {
    return new SignJWT({ name: claims.username })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setSubject(String(claims.userId))
      .setIssuer(this.settings.issuer)
      .setIssuedAt()
      .setExpirationTime(`${this.settings.ttlSeconds}s`)
      .sign(this.key);
  }

  async verify(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALGORITHM],
        issuer: this.settings.issuer,
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      const userId = Number(payload.sub);
      if (!Number.isSafeInteger(userId) || userId <= 0 || typeof payload['name'] !== 'string') {
        throw new InvalidTokenError('malformed claims');
      }
      return { userId, username: payload['name'] };
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new InvalidTokenError('expired');
      throw new InvalidTokenError(error instanceof joseErrors.JOSEError ? error.code : 'unreadable');
    }
  }
}
