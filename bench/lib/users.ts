// Users in bulk for the benchmarks: rows shaped like real ones, with hashes random rather than
// computed (the rows are what is measured, not scrypt, and random bytes compress as real hashes do).
import { randomBytes } from 'node:crypto';
import { migrate } from '../../src/db/migrate';
import { getLogger } from '../../src/logger';
import { databaseConfig, type TestDatabase } from '../../test/helpers/database';

const BATCH = 5000;

/** `scrypt$N$r$p$salt$hash` as passwords.ts writes it: 16-byte salt, `keyBytes`-byte key. */
export function fakePasswordHash(keyBytes = 32): string {
  return ['scrypt', 16384, 8, 1, randomBytes(16).toString('base64url'), randomBytes(keyBytes).toString('base64url')].join('$');
}

/** Migrates `db` and inserts `count` users named `<prefix><n>`, BATCH rows a statement. */
export async function fillUsers(db: TestDatabase, count: number, options: { prefix?: string; keyBytes?: number } = {}): Promise<void> {
  const prefix = options.prefix ?? 'user';
  await migrate(databaseConfig(db.name), getLogger('bench'));
  for (let first = 0; first < count; first += BATCH) {
    const rows = Array.from({ length: Math.min(BATCH, count - first) }, (_, i) => [
      `${prefix}${first + i}`,
      `${prefix}${first + i}@example.com`,
      fakePasswordHash(options.keyBytes),
    ]);
    await db.query('INSERT INTO users (username, email, password_hash) VALUES ?', [rows]);
  }
}
