// Users in bulk for the benchmarks: rows shaped like real ones, with hashes random rather than
// computed (the rows are what is measured, not argon2id, and random bytes compress as real hashes do).
import { randomBytes } from 'node:crypto';
import { migrate } from '../../src/platform/db/migrate';
import { getLogger } from '../../src/platform/logging/logger';
import { databaseConfig, type TestDatabase } from '../../test/helpers/database';

const BATCH = 5000;

/** `$argon2id$v=19$m=…,t=…,p=…$salt$hash` as passwords.ts writes it: 16-byte salt, `keyBytes`-byte hash. */
export function fakePasswordHash(keyBytes = 32): string {
  const phcBase64 = (bytes: number) => randomBytes(bytes).toString('base64').replace(/=+$/, '');
  return `$argon2id$v=19$m=19456,t=2,p=1$${phcBase64(16)}$${phcBase64(keyBytes)}`;
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
