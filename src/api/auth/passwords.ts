// Password hashing: argon2id at or above OWASP's minimum, in the standard PHC string
// (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, random 16-byte salt), computed on dedicated
// threads behind a bounded queue (hashPool.ts). Hashes stored by earlier versions
// (`scrypt$N$r$p$salt$hash`) still verify, and needsRehash() tells the login to replace them.
import { timingSafeEqual } from 'node:crypto';
import { parseOptions } from '@node-rs/argon2';
import type { ApiCounters } from '../metrics/counters';
import { HashPool } from './hashPool';

export { HashQueueFullError } from './hashPool';

export interface Argon2idCost {
  /** KiB of memory per hash. */
  readonly memoryCost: number;
  /** Passes over that memory. */
  readonly timeCost: number;
  readonly parallelism: number;
}

/**
 * OWASP Password Storage Cheat Sheet's minimum for argon2id: 19 MiB, 2 passes, 1 lane. About
 * as long to compute here as the scrypt (N = 2^14) it replaces, with a little more memory.
 */
export const CURRENT_ARGON2ID_COST: Argon2idCost = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

// The package's Algorithm and Version are const enums, which isolated (tsx) compilation cannot inline.
const ARGON2ID = 2;
const VERSION_0X13 = 1;
const MIN_SALT_BYTES = 16;
const MIN_OUTPUT_BYTES = 32;

/** `scrypt$N$r$p$salt$hash` (base64url), as stored before argon2id. */
const SCRYPT_HASH = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]*)\$([A-Za-z0-9_-]+)$/;
/**
 * Bounds on a stored hash's cost, so a bad row cannot make one check take gigabytes or seconds:
 * scrypt's memory is 128·N·r bytes (at most 64 MiB here, four times what 2^14 with r = 8 took),
 * argon2's is its memoryCost in KiB (at most four times today's), and its passes are bounded too.
 */
const SCRYPT_MAX_MEMORY_BYTES = 64 * 1024 * 1024;
const SCRYPT_MAX_R = 32;
const SCRYPT_MAX_P = 16;
const ARGON2_MAX_MEMORY_KIB = 4 * 19456;
const ARGON2_MAX_TIME_COST = 8;
const ARGON2_MAX_PARALLELISM = 4;

const DECOY_PASSWORD = 'decoy password that matches nothing';

export interface PasswordHasherOptions {
  /** Hashes computed at once (config.passwordHashConcurrency). */
  readonly concurrency: number;
  /** Hashes allowed to wait for a thread before more are refused (config.passwordHashQueueLimit). */
  readonly queueLimit: number;
  /** Defaults to CURRENT_ARGON2ID_COST; tests make weaker hashes with it. */
  readonly cost?: Argon2idCost;
  /** Counts the hashes refused for a full queue (answered 503). */
  readonly counters: Pick<ApiCounters, 'passwordHashRejections'>;
}

export class PasswordHasher {
  private readonly pool: HashPool;
  private readonly cost: Argon2idCost;
  /** Made at the first unknown user, with the current cost, so a decoy check costs what a real one does. */
  private decoyHash: Promise<string> | undefined;

  constructor(options: PasswordHasherOptions) {
    this.pool = new HashPool({ concurrency: options.concurrency, queueLimit: options.queueLimit, counters: options.counters });
    this.cost = options.cost ?? CURRENT_ARGON2ID_COST;
  }

  /** The PHC string for a new password. Rejects with HashQueueFullError when too many wait. */
  hash(password: string): Promise<string> {
    return this.pool.run({ kind: 'argon2id-hash', password: password.normalize('NFC'), ...this.cost });
  }

  /** Whether `password` matches `stored` (argon2 PHC or the older scrypt form); false for a malformed hash. */
  async verify(password: string, stored: string): Promise<boolean> {
    const normalized = password.normalize('NFC');
    if (stored.startsWith('$argon2')) {
      if (!parsedArgon2(stored)) return false;
      return this.pool.run({ kind: 'argon2-verify', password: normalized, stored });
    }
    const scrypt = parsedScrypt(stored);
    if (!scrypt) return false;
    const actual = await this.pool.run({ kind: 'scrypt', password: normalized, salt: scrypt.salt, keyLength: scrypt.hash.length, ...scrypt.cost });
    return actual.length === scrypt.hash.length && timingSafeEqual(actual, scrypt.hash);
  }

  /**
   * Spends the time of one verification for an unknown user (through the same queue, at the
   * same cost), so response time does not tell whether a username exists.
   */
  async verifyDecoy(password: string): Promise<false> {
    this.decoyHash ??= this.hash(DECOY_PASSWORD);
    // A failed first hash (a full queue) must not stay cached as the decoy.
    const decoy = await this.decoyHash.catch((error: unknown) => {
      this.decoyHash = undefined;
      throw error;
    });
    await this.verify(password, decoy);
    return false;
  }

  /** True when `stored` is not argon2id at least as costly as the current cost: replace it at the next login. */
  needsRehash(stored: string): boolean {
    const options = parsedArgon2(stored);
    if (!options) return true;
    return (
      options.algorithm !== ARGON2ID ||
      options.version !== VERSION_0X13 ||
      options.memoryCost < this.cost.memoryCost ||
      options.timeCost < this.cost.timeCost ||
      options.parallelism < this.cost.parallelism ||
      options.saltLen < MIN_SALT_BYTES ||
      options.outputLen < MIN_OUTPUT_BYTES
    );
  }

  /** Hashes computed now and waiting, for tests, diagnostics and /metrics. */
  get load(): { readonly running: number; readonly waiting: number } {
    return this.pool.load;
  }

  /** Ends the hash threads; later calls reject. */
  close(): void {
    this.pool.close();
  }
}

function parsedArgon2(stored: string): ReturnType<typeof parseOptions> | undefined {
  if (!stored.startsWith('$argon2')) return undefined;
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(stored);
  } catch {
    return undefined;
  }
  const withinBounds =
    options.memoryCost <= ARGON2_MAX_MEMORY_KIB &&
    options.timeCost <= ARGON2_MAX_TIME_COST &&
    options.parallelism <= ARGON2_MAX_PARALLELISM;
  return withinBounds ? options : undefined;
}

function parsedScrypt(stored: string): { cost: { n: number; r: number; p: number }; salt: Buffer; hash: Buffer } | undefined {
  const match = SCRYPT_HASH.exec(stored);
  if (!match) return undefined;
  const [, n, r, p, salt, hash] = match.map(String);
  const cost = { n: Number(n), r: Number(r), p: Number(p) };
  const powerOfTwo = cost.n > 1 && (cost.n & (cost.n - 1)) === 0;
  const memory = 128 * cost.n * cost.r;
  if (!powerOfTwo || memory > SCRYPT_MAX_MEMORY_BYTES || cost.r < 1 || cost.r > SCRYPT_MAX_R || cost.p < 1 || cost.p > SCRYPT_MAX_P) {
    return undefined;
  }
  return { cost, salt: Buffer.from(salt ?? '', 'base64url'), hash: Buffer.from(hash ?? '', 'base64url') };
}
