// Shared request counts of the API rate limit: one row per client and window in
// api_request_counts. A batch of many clients is one statement with one JSON parameter
// (JSON_TABLE: MariaDB 10.6+, MySQL 8), so the SQL text never varies with the batch size and
// stays a single prepared statement.
import type { Database } from '../../platform/db/database';

export interface RequestCountStore {
  /**
   * Adds `increments` to the window's shared counts (none: adds nothing); resolves with the new
   * totals of those clients and, given `alsoFrom`, of every client whose total has reached it.
   */
  add(windowStart: number, increments: ReadonlyMap<string, number>, alsoFrom?: number): Promise<Map<string, number>>;
  /** Forgets windows that started before `windowStart`. */
  purgeBefore(windowStart: number): Promise<void>;
}

const BATCH_ROWS = `JSON_TABLE(?, '$[*]' COLUMNS (c VARCHAR(64) PATH '$[0]', n INT PATH '$[1]')) AS batch`;

export class RequestCountRepository implements RequestCountStore {
  constructor(private readonly db: Database) {}

  async add(windowStart: number, increments: ReadonlyMap<string, number>, alsoFrom?: number): Promise<Map<string, number>> {
    const batch = JSON.stringify([...increments]);
    if (increments.size > 0) {
      await this.db.modify(
        `INSERT INTO api_request_counts (window_start, client, hits) SELECT ?, batch.c, batch.n FROM ${BATCH_ROWS} ` +
          'ON DUPLICATE KEY UPDATE hits = api_request_counts.hits + VALUES(hits)',
        [windowStart, batch],
      );
    }
    // The clients past `alsoFrom`: a range read of the window's rows (the primary key's prefix).
    const rows = await this.db.select<{ client: string; hits: number }>(
      `SELECT r.client, r.hits FROM ${BATCH_ROWS} JOIN api_request_counts r ON r.client = batch.c AND r.window_start = ? ` +
        'UNION SELECT client, hits FROM api_request_counts WHERE window_start = ? AND hits >= ?',
      [batch, windowStart, windowStart, alsoFrom ?? Number.MAX_SAFE_INTEGER],
    );
    return new Map(rows.map((row) => [row.client, Number(row.hits)]));
  }

  async purgeBefore(windowStart: number): Promise<void> {
    await this.db.modify('DELETE FROM api_request_counts WHERE window_start < ?', [windowStart]);
  }
}
