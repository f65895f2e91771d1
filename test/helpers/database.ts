// A database of its own for each test file, on the shared MariaDB, dropped afterwards.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { DatabaseConfig } from '../../src/platform/config';

export const SHARED_DB = {
  host: process.env['TEST_MYSQL_HOST'] ?? '127.0.0.1',
  port: Number(process.env['TEST_MYSQL_PORT'] ?? 3306),
  user: process.env['TEST_MYSQL_USER'] ?? 'root',
  password: process.env['TEST_MYSQL_PASSWORD'] ?? '',
};

/** The service's view of a database on the shared server, for calling src/db code directly. */
export function databaseConfig(database: string): DatabaseConfig {
  return {
    ...SHARED_DB,
    database,
    connectTimeoutMs: 2000,
    queryTimeoutMs: 5000,
    retries: 3,
    poolSize: 2,
    healthIntervalMs: 500,
    // No slow-query warnings in tests unless a test asks for them.
    slowQueryMs: 0,
  };
}

export interface TestDatabase {
  readonly name: string;
  /** Environment variables that point the service at this database. */
  readonly env: Record<string, string>;
  query<T = mysql.RowDataPacket[]>(sql: string, params?: unknown[]): Promise<T>;
  drop(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export async function createTestDatabase(
  prefix = 'ra_test',
  server: { host: string; port: number; user: string; password: string } = SHARED_DB,
): Promise<TestDatabase> {
  const name = uniqueName(prefix);
  const admin = await mysql.createConnection({ ...server, multipleStatements: false });
  await admin.query(`CREATE DATABASE \`${name}\``);
  await admin.end();
  const pool = mysql.createPool({ ...server, database: name, connectionLimit: 2 });
  return {
    name,
    env: {
      MYSQL_HOST: server.host,
      MYSQL_PORT: String(server.port),
      MYSQL_USER: server.user,
      MYSQL_PASSWORD: server.password,
      MYSQL_DATABASE: name,
    },
    async query<T>(sql: string, params: unknown[] = []): Promise<T> {
      const [rows] = await pool.query(sql, params);
      return rows as T;
    },
    async drop() {
      await pool.end().catch(() => undefined);
      const conn = await mysql.createConnection(server);
      await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await conn.end();
    },
  };
}
