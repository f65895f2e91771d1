// The development user `demo` / `demo-password` (docs/operations.md): created when development starts, and
// removed when production starts if it still has that published password (a development run
// once seeded it into this database, or the database is a copy of a development one). A real
// user who happens to be called demo and chose another password is left alone.
import { UsernameTakenError, type UserRepository } from '../store/users';
import type { Logger } from '../../platform/logging/logger';
import type { PasswordHasher } from './passwords';

export const DEMO_USER = { username: 'demo', password: 'demo-password' } as const;

export async function seedDemoUser(users: UserRepository, passwords: PasswordHasher, log: Logger): Promise<void> {
  if (await users.exists(DEMO_USER.username)) return;
  try {
    await users.create({ username: DEMO_USER.username, email: null, passwordHash: await passwords.hash(DEMO_USER.password) });
    log.info(`Development seed: created user "${DEMO_USER.username}"`);
  } catch (error) {
    if (!(error instanceof UsernameTakenError)) throw error;
  }
}

/**
 * Removes the demo user if its password is still the published one, checked with the service's
 * own verification (whatever hash the row holds). Every worker runs this at start-up; the delete
 * is conditional on the hash it checked, so one of them removes it and says so.
 */
export async function removeDemoUser(users: UserRepository, passwords: PasswordHasher, log: Logger, database: string): Promise<void> {
  const user = await users.findByUsername(DEMO_USER.username);
  if (!user || !(await passwords.verify(DEMO_USER.password, user.passwordHash))) return;
  if (await users.deleteIfPasswordHash(user.id, user.passwordHash)) {
    log.warn(
      `Removed user "${DEMO_USER.username}" (id ${user.id}) from ${database}: it had the development demo password, ` +
        'which must never open an account in production',
    );
  }
}
