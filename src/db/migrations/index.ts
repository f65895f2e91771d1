// The schema's history, in order. A migration is never edited once released: add a new one.
// Each `up` runs on the one connection that holds the migration lock; DDL commits by itself in
// MySQL, so each step is written to be safe to run again if it was cut short.
import type { Connection } from 'mysql2/promise';

export interface Migration {
  readonly name: string;
  up(connection: Connection): Promise<void>;
  down(connection: Connection): Promise<void>;
}

const createUsers: Migration = {
  name: '001-create-users',
  async up(connection) {
    // ascii_general_ci: usernames are ASCII by rule, and unique regardless of case.
    await connection.query(`
      CREATE TABLE IF NOT EXISTS users (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        username VARCHAR(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
        email VARCHAR(254) NULL,
        password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        UNIQUE KEY uq_users_username (username)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
  },
  async down(connection) {
    await connection.query('DROP TABLE IF EXISTS users');
  },
};

const countUsers: Migration = {
  name: '002-user-count',
  async up(connection) {
    // One row kept exact by triggers, so /api/status never counts a large table.
    await connection.query(`
      CREATE TABLE IF NOT EXISTS user_stats (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        total_users BIGINT UNSIGNED NOT NULL
      ) ENGINE=InnoDB`);
    await connection.query('DROP TRIGGER IF EXISTS users_count_insert');
    await connection.query('DROP TRIGGER IF EXISTS users_count_delete');
    await connection.query(
      'CREATE TRIGGER users_count_insert AFTER INSERT ON users FOR EACH ROW ' +
        'UPDATE user_stats SET total_users = total_users + 1 WHERE id = 1',
    );
    await connection.query(
      'CREATE TRIGGER users_count_delete AFTER DELETE ON users FOR EACH ROW ' +
        'UPDATE user_stats SET total_users = total_users - 1 WHERE id = 1',
    );
    await connection.query(
      'REPLACE INTO user_stats (id, total_users) SELECT 1, COUNT(*) FROM users',
    );
  },
  async down(connection) {
    await connection.query('DROP TRIGGER IF EXISTS users_count_insert');
    await connection.query('DROP TRIGGER IF EXISTS users_count_delete');
    await connection.query('DROP TABLE IF EXISTS user_stats');
  },
};

const rateLimits: Migration = {
  name: '003-rate-limits',
  async up(connection) {
    // rate-limiter-flexible's MySQL store (brute-force counters of login): exactly these three
    // columns in this order, as its statements expect. Keys are ASCII by construction.
    await connection.query(`
      CREATE TABLE IF NOT EXISTS login_limits (
        \`key\` VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        points INT NOT NULL DEFAULT 0,
        expire BIGINT UNSIGNED NULL,
        PRIMARY KEY (\`key\`),
        KEY ix_login_limits_expire (expire)
      ) ENGINE=InnoDB`);
    // Per-client request counts of the API rate limit, one row per client and minute window,
    // shared by every worker and host (see src/http/rateLimit.ts).
    await connection.query(`
      CREATE TABLE IF NOT EXISTS api_request_counts (
        window_start BIGINT UNSIGNED NOT NULL,
        client VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        hits INT UNSIGNED NOT NULL,
        PRIMARY KEY (window_start, client)
      ) ENGINE=InnoDB`);
  },
  async down(connection) {
    await connection.query('DROP TABLE IF EXISTS api_request_counts');
    await connection.query('DROP TABLE IF EXISTS login_limits');
  },
};

export const migrations: readonly Migration[] = [createUsers, countUsers, rateLimits];
