// The users table, and nothing else: every statement takes its values through placeholders.
import type { Database } from './database';
import { errorCode } from './errors';
import { NamedError } from '../util/errors';

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

interface UserRow {
  [column: string]: unknown;
  id: number | string;
  username: string;
  email: string | null;
  password_hash: string;
  created_at: Date;
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

export class UserRepository {
  constructor(private readonly db: Database) {}

  /** Inserts a user; a name taken in any letter case throws UsernameTakenError. */
  async create(input: { username: string; email: string | null; passwordHash: string }): Promise<User> {
    try {
      const result = await this.db.modify('INSERT INTO users (username, email, password_hash) VALUES (?, ?, ?)', [
        input.username,
        input.email,
        input.passwordHash,
      ]);
      return { id: result.insertId, username: input.username, email: input.email, createdAt: new Date() };
    } catch (error) {
      if (errorCode(error) === 'ER_DUP_ENTRY') throw new UsernameTakenError(input.username);
      throw error;
    }
  }

  /** Case-insensitive, like the unique key. */
  async findByUsername(username: string): Promise<UserWithHash | undefined> {
    const rows = await this.db.select<UserRow>(
      'SELECT id, username, email, password_hash, created_at FROM users WHERE username = ?',
      [username],
    );
    return rows[0] ? toUser(rows[0]) : undefined;
  }

  async findById(id: number): Promise<User | undefined> {
    const rows = await this.db.select<UserRow>(
      'SELECT id, username, email, password_hash, created_at FROM users WHERE id = ?',
      [id],
    );
    if (!rows[0]) return undefined;
    const { passwordHash: _hidden, ...user } = toUser(rows[0]);
    return user;
  }

  async exists(username: string): Promise<boolean> {
    const rows = await this.db.select('SELECT 1 FROM users WHERE username = ?', [username]);
    return rows.length > 0;
  }

  /** Kept by triggers in one row: constant cost however many users there are. */
  async count(): Promise<number> {
    const rows = await this.db.select<{ total_users: number | string }>(
      'SELECT total_users FROM user_stats WHERE id = 1',
    );
    return Number(rows[0]?.total_users ?? 0);
  }
}
