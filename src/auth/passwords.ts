// Password hashing with scrypt: a random salt per user, the cost stored beside the hash so it
// can be raised later, the work done on dedicated threads (off the event loop; hashPool.ts), and
// a constant-time comparison.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ScryptPool } from './hashPool';

const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
/** log2 of scrypt's N: 2^14 costs about 40 ms here, Node's default and a common choice. */
const COST_LOG2 = 14;

let concurrency = 1;
// Made at the first hash: a worker that never sees a login or registration starts no thread.
let pool: ScryptPool | undefined;

/** How many hashes this process computes at once (config.passwordHashConcurrency). */
export function setHashConcurrency(limit: number): void {
  concurrency = limit;
  pool?.close();
  pool = undefined;
}

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  pool ??= new ScryptPool(concurrency);
  return pool.derive({ password: password.normalize('NFC'), salt, keyLength: KEY_LENGTH, n, r, p });
}

/** `scrypt$N$r$p$salt$hash`, salt and hash in base64url. */
export async function hashPassword(password: string): Promise<string> {
  const n = 2 ** COST_LOG2;
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, n, BLOCK_SIZE, PARALLELISM);
  return ['scrypt', n, BLOCK_SIZE, PARALLELISM, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64url');
  const actual = await derive(password, Buffer.from(salt, 'base64url'), Number(n), Number(r), Number(p));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

let decoy: Promise<string> | undefined;

/**
 * Spends the time of one verification for an unknown user, so response time does not tell
 * whether a username exists.
 */
export async function verifyDecoy(password: string): Promise<false> {
  decoy ??= hashPassword('decoy password that matches nothing');
  await verifyPassword(password, await decoy);
  return false;
}
