// The schema's history, in order. A migration is never edited once released: add a new one.
// Each `up` runs on the one connection that holds the migration lock; DDL commits by itself in
// MySQL, so each step is written to be safe to run again if it was cut short.
import type { Connection, RowDataPacket } from 'mysql2/promise';

export interface Migration {
  readonly name: string;
  up(connection: Connection): Promise<void>;
  down(connection: Connection): Promise<void>;
}

const createUsers: Readonly<Migration> = {
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

const countUsers: Readonly<Migration> = {
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

const rateLimits: Readonly<Migration> = {
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
    // shared by every worker and host (see src/api/http/rateLimit.ts).
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

/** Whether the users table has this column / this index (MySQL has no ADD COLUMN IF NOT EXISTS). */
async function usersHas(connection: Connection, what: 'column' | 'index', name: string): Promise<boolean> {
  const [rows] = await connection.query<RowDataPacket[]>(
    what === 'column'
      ? 'SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?'
      : 'SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?',
    ['users', name],
  );
  return rows.length > 0;
}

const unicodeUsernames: Readonly<Migration> = {
  name: '004-unicode-usernames',
  async up(connection) {
    // Usernames become Unicode (src/api/auth/username.ts). An account is found by username_key: the
    // UTF-8 bytes of the canonical name (NFKC + case fold), unique and compared as binary, which
    // never ignores trailing spaces (the old ascii_general_ci key did: "alice " was "alice").
    // The display name becomes utf8mb4. Every step is skipped or harmless when already done, and
    // the order keeps a unique key in force throughout, for the workers still on the old code
    // during a reload.
    if (!(await usersHas(connection, 'column', 'username_key'))) {
      // The default '' is what the trigger below replaces; it lets an INSERT that names no key
      // through on MySQL as on MariaDB.
      // 384 bytes: USERNAME_KEY_MAX_BYTES in src/api/auth/username.ts, written out because a released
      // migration must not change when code does.
      await connection.query("ALTER TABLE users ADD COLUMN username_key VARBINARY(384) NOT NULL DEFAULT '' AFTER username");
    }
    // Rows inserted without a key (the previous release during a reload, hand-written SQL) get
    // LOWER(username), which is the canonical form of every name the old ASCII rule allowed.
    // The service always writes the key itself.
    await connection.query('DROP TRIGGER IF EXISTS users_username_key');
    await connection.query(
      'CREATE TRIGGER users_username_key BEFORE INSERT ON users FOR EACH ROW ' +
        "SET NEW.username_key = IF(NEW.username_key = '', CAST(LOWER(NEW.username) AS BINARY), NEW.username_key)",
    );
    // Existing names are ASCII (the old column's character set): LOWER is their canonical form.
    await connection.query("UPDATE users SET username_key = CAST(LOWER(username) AS BINARY) WHERE username_key = ''");
    if (!(await usersHas(connection, 'index', 'uq_users_username_key'))) {
      await connection.query('ALTER TABLE users ADD UNIQUE KEY uq_users_username_key (username_key)');
    }
    if (await usersHas(connection, 'index', 'uq_users_username')) {
      await connection.query('ALTER TABLE users DROP INDEX uq_users_username');
    }
    // Binary collation: nothing compares display names any more, so none may compare them loosely.
    await connection.query('ALTER TABLE users MODIFY username VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL');
  },
  async down(connection) {
    // Fails, changing nothing, while a non-ASCII name exists: going back would lose it.
    await connection.query('ALTER TABLE users MODIFY username VARCHAR(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL');
    if (!(await usersHas(connection, 'index', 'uq_users_username'))) {
      await connection.query('ALTER TABLE users ADD UNIQUE KEY uq_users_username (username)');
    }
    await connection.query('DROP TRIGGER IF EXISTS users_username_key');
    if (await usersHas(connection, 'column', 'username_key')) {
      await connection.query('ALTER TABLE users DROP COLUMN username_key');
    }
  },
};

const scheduledBackups: Readonly<Migration> = {
  name: '005-scheduled-backups',
  async up(connection) {
    // The lease of the scheduled backup (src/backup/lease.ts): one row per scheduled time (the
    // slot, UTC), written by the one host that took it, so the hosts sharing this database back
    // up once per slot. Times are UTC: hosts may not share a time zone, the server is one clock.
    await connection.query(`
      CREATE TABLE IF NOT EXISTS scheduled_backups (
        slot DATETIME(3) NOT NULL PRIMARY KEY,
        host_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        started_at DATETIME(3) NOT NULL,
        ended_at DATETIME(3) NULL,
        outcome ENUM('running', 'done', 'failed') CHARACTER SET ascii NOT NULL,
        file VARCHAR(255) NULL
      ) ENGINE=InnoDB`);
  },
  async down(connection) {
    await connection.query('DROP TABLE IF EXISTS scheduled_backups');
  },
};

const servingHosts: Readonly<Migration> = {
  name: '006-serving-hosts',
  async up(connection) {
    // The hosts whose api serves from this database (src/api/hosts/servingHosts.ts): each
    // checks that it signs tokens with the same JWT secret as the others. Never the secret, only a
    // fingerprint that cannot give it back; last_seen is the database server's UTC clock.
    await connection.query(`
      CREATE TABLE IF NOT EXISTS serving_hosts (
        host_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
        secret_fingerprint CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        secret_generated TINYINT(1) NOT NULL,
        version VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        last_seen DATETIME(3) NOT NULL,
        KEY ix_serving_hosts_last_seen (last_seen)
      ) ENGINE=InnoDB`);
  },
  async down(connection) {
    await connection.query('DROP TABLE IF EXISTS serving_hosts');
  },
};

export const migrations: readonly Migration[] = [
  createUsers,
  countUsers,
  rateLimits,
  unicodeUsernames,
  scheduledBackups,
  servingHosts,
];
