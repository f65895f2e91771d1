// The users table, and nothing else: every statement takes its values through placeholders.
// Accounts are found by username_key, the UTF-8 bytes of the canonical name (src/api/auth/username.ts),
// compared as binary: no collation, no trailing-space padding, so one key is one account.
import { canonicalUsername, displayUsername } from '../auth/username';
import type { Database } from '../../platform/db/database';
import { errorCode } from '../../platform/db/errors';
import { NamedError } from '../../platform/util/errors';

export interface User {
  readonly id: number;
  readonly username: string;
  readonly email: string | null;
  readonly createdAt: Date;
}

export interface UserWithHash extends User {
  readonly passwordHash: string;
}

export class UsernameTakenError extends NamedError {
  constructor(readonly username: string) {
    super(`Username is already taken: ${username}`);
  }
}

interface PublicUserRow {
  [column: string]: unknown;
  id: number | string;
  username: string;
  email: string | null;
  created_at: Date;
}

interface UserRow extends PublicUserRow {
  password_hash: string;
}

function toUser(row: UserRow): UserWithHash {
  return {
    id: Number(row.id),
    username: row.username,
    email: row.email,
    createdAt: row.created_at,
    passwordHash: row.password_hash,
  };
}

/** The key column's value: bytes, so the comparison is binary whatever the connection's collation. */
function keyOf(username: string): Buffer {
  return Buffer.from(canonicalUsername(username), 'utf8');
}

export class UserRepository {
  constructor(private readonly db: Database) {}

  /**
   * Inserts a user under the display form of the name (NFKC, case kept). A name whose canonical
   * key is taken (any letter case, any compatibility form) throws UsernameTakenError.
   */
  async create(input: { username: string; email: string | null; passwordHash: string }): Promise<User> {
    const username = displayUsername(input.username);
    try {
      const result = await this.db.modify(
        'INSERT INTO users (username, username_key, email, password_hash) VALUES (?, ?, ?, ?)',
        [username, keyOf(username), input.email, input.passwordHash],
      );
      return { id: result.insertId, username, email: input.email, createdAt: new Date() };
    } catch (error) {
      if (errorCode(error) === 'ER_DUP_ENTRY') throw new UsernameTakenError(username);
      throw error;
    }
  }

  /** By canonical key: any spelling of the name that folds to it; any other text finds no one. */
  async findByUsername(username: string): Promise<UserWithHash | undefined> {
    const rows = await this.db.select<UserRow>(
      'SELECT id, username, email, password_hash, created_at FROM users WHERE username_key = ?',
      [keyOf(username)],
    );
    return rows[0] ? toUser(rows[0]) : undefined;
  }

  async findById(id: number): Promise<User | undefined> {
    // Without the hash: every authenticated request reads this row, and none of them needs it.
    const rows = await this.db.select<PublicUserRow>('SELECT id, username, email, created_at FROM users WHERE id = ?', [id]);
    const row = rows[0];
    return row ? { id: Number(row.id), username: row.username, email: row.email, createdAt: row.created_at } : undefined;
  }

  async exists(username: string): Promise<boolean> {
    const rows = await this.db.select('SELECT 1 FROM users WHERE username_key = ?', [keyOf(username)]);
    return rows.length > 0;
  }

  /** Kept by triggers in one row: constant cost however many users there are. */
  async count(): Promise<number> {
    const rows = await this.db.select<{ total_users: number | string }>(
      'SELECT total_users FROM user_stats WHERE id = 1',
    );
    return Number(rows[0]?.total_users ?? 0);
  }

  /**
   * Stores a re-made hash (a login upgrading an old one), only if the row still holds `replacing`:
   * a password changed meanwhile is not overwritten. True when the row was updated.
   */
  async updatePasswordHash(id: number, passwordHash: string, replacing: string): Promise<boolean> {
    const result = await this.db.modify('UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?', [
      passwordHash,
      id,
      replacing,
    ]);
    return result.affectedRows > 0;
  }

  /** Removes a user only if the row still holds `passwordHash` (no password changed meanwhile). True when removed. */
  async deleteIfPasswordHash(id: number, passwordHash: string): Promise<boolean> {
    const result = await this.db.modify('DELETE FROM users WHERE id = ? AND password_hash = ?', [id, passwordHash]);
    return result.affectedRows > 0;
  }
}
