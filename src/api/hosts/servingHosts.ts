// The hosts serving from one database must sign tokens with one JWT secret, or a token from one
// host is refused by the next (a load balancer sends a client's requests to any of them). Each
// api process checks itself against the other hosts seen lately in `serving_hosts` when the
// database first answers: a mismatch refuses to serve (a bad configuration), else it writes its
// host's row (HOST_ID, a fingerprint of the secret, whether the secret was generated here), and
// again every HEARTBEAT_MS. Once serving, a mismatch seen at a heartbeat is logged once per host,
// never fatal: the worker may be answering requests.
import { createHmac } from 'node:crypto';
import type { Database, Queryable } from '../../platform/db/database';
import { errorCode } from '../../platform/db/errors';
import type { Logger } from '../../platform/logging/logger';
import { messageOf } from '../../platform/util/errors';

export const HEARTBEAT_MS = 30_000;
/** A host seen within this is serving (three heartbeats: one late or lost write is no departure). */
export const PEER_WINDOW_SECONDS = 90;

/** What the fingerprint is computed over: fixed, so every host with one secret gets one fingerprint. */
const FINGERPRINT_LABEL = 'resilient-api serving-hosts jwt-secret fingerprint v1';

/**
 * HMAC-SHA256 keyed with the secret over a fixed label, cut to 128 bits: equal secrets give equal
 * fingerprints, and the fingerprint cannot give the secret back (nor be checked against guesses
 * faster than HMAC allows, which a secret of 32 characters or more makes hopeless).
 */
export function secretFingerprint(secret: string): string {
  return createHmac('sha256', secret).update(FINGERPRINT_LABEL).digest('hex').slice(0, 32);
}

export interface ServingHostOptions {
  readonly hostId: string;
  readonly secret: string;
  /** The secret was generated on this host (the kept file), not configured: no other host can share it. */
  readonly secretGenerated: boolean;
  readonly version: string;
  readonly log: Logger;
  readonly heartbeatMs?: number;
}

interface HostRow {
  readonly host_id: string;
  readonly secret_fingerprint: string;
  readonly seen_seconds_ago: number;
  /** 1 when seen within PEER_WINDOW_SECONDS. */
  readonly recent: number;
}

/**
 * Every row, not only the recent ones: read `FOR UPDATE` at the first check-in, a scan of the
 * whole (small) table locks every row and the gaps between them, so a host checking in at the
 * same moment waits for this one's decision, or deadlocks with it and is rolled back.
 */
const HOSTS_SQL =
  'SELECT host_id, secret_fingerprint, TIMESTAMPDIFF(SECOND, last_seen, UTC_TIMESTAMP(3)) AS seen_seconds_ago, ' +
  '(last_seen >= UTC_TIMESTAMP(3) - INTERVAL ? SECOND) AS recent FROM serving_hosts ORDER BY host_id';

const ADVICE = 'set the same JWT_SECRET or JWT_SECRET_FILE on every host (see docs/multi-host.md)';

export class ServingHosts {
  private readonly fingerprint: string;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  /** stop() was called (a shutdown, or a refusal): no heartbeat starts after it. */
  private stopped = false;
  /** A heartbeat is under way: a slow database does not pile them up. */
  private beating = false;
  /** Peers whose conflict is already logged (once each). */
  private readonly reported = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly options: ServingHostOptions,
    /** Called at the first check-in when this host must not serve, with why; expected to end the process. */
    private readonly refuse: (problem: string) => void,
  ) {
    this.fingerprint = secretFingerprint(options.secret);
  }

  /**
   * The first check-in (the database answers), then the heartbeat. Refusal goes through `refuse`,
   * only here: once this has returned, the worker serves, and nothing later refuses.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const conflict = await this.firstCheckIn();
    if (conflict !== undefined) {
      this.stop();
      this.refuse(`Refusing to serve: ${conflict}; ${ADVICE}`);
      return;
    }
    if (this.stopped) return;
    // heartbeat() catches its own failures; the catch here only guards against a logger that throws.
    this.timer = setInterval(() => void this.heartbeat().catch(() => undefined), this.options.heartbeatMs ?? HEARTBEAT_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /**
   * Reads the hosts and, with no conflict, records this one, in one transaction: a host refused
   * never appears among the serving hosts (it cannot make a good host's next worker refuse in
   * turn), and two hosts starting together cannot both find the table empty and both serve.
   * Resolves with the conflict, or undefined to serve (also when the database failed: serving
   * then goes on unchecked, and the heartbeats report a conflict).
   */
  private async firstCheckIn(): Promise<string | undefined> {
    const { hostId, log } = this.options;
    // Database.transaction repeats a deadlocked transaction DB_RETRIES times; with DB_RETRIES=1
    // it does not, and the loser of a deadlock must still look again, not serve unchecked.
    for (let attempt = 1; ; attempt++) {
      try {
        const { peers, conflict } = await this.db.transaction((tx) => this.checkAndRecord(tx));
        if (conflict === undefined && peers.length > 0) {
          log.info(`Serving beside host(s) ${peers.join(', ')} with the same JWT secret (this host: ${hostId})`);
        }
        return conflict;
      } catch (error) {
        if (attempt === 1 && isDeadlock(error)) continue;
        log.warn(
          `Could not check this host (${hostId}) against the serving hosts (${messageOf(error)}); serving, ` +
            'and checking again at each heartbeat',
        );
        return undefined;
      }
    }
  }

  private async checkAndRecord(tx: Queryable): Promise<{ peers: readonly string[]; conflict: string | undefined }> {
    const rows = await tx.select<HostRow & Record<string, unknown>>(`${HOSTS_SQL} FOR UPDATE`, [PEER_WINDOW_SECONDS]);
    const peers = this.recentPeers(rows);
    const conflict = peers.map((peer) => this.conflictWith(peer)).find((problem) => problem !== undefined);
    if (conflict === undefined) await this.recordThisHost(tx);
    return { peers: peers.map((peer) => peer.host_id), conflict };
  }

  /** Records this host and logs a conflict with any other once per host; never throws, never refuses. */
  private async heartbeat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    const { hostId, log } = this.options;
    try {
      await this.recordThisHost(this.db);
      const peers = this.recentPeers(await this.db.select<HostRow & Record<string, unknown>>(HOSTS_SQL, [PEER_WINDOW_SECONDS]));
      for (const peer of peers) {
        const problem = this.conflictWith(peer);
        if (problem === undefined || this.reported.has(peer.host_id)) continue;
        this.reported.add(peer.host_id);
        log.error(`${problem}; ${ADVICE}`);
      }
    } catch (error) {
      log.warn(`Could not record this host (${hostId}) among the serving hosts (${messageOf(error)}); will try again`);
    } finally {
      this.beating = false;
    }
  }

  private recentPeers(rows: readonly HostRow[]): HostRow[] {
    return rows.filter((row) => row.host_id !== this.options.hostId && Number(row.recent) === 1);
  }

  private async recordThisHost(on: Queryable): Promise<void> {
    await on.modify(
      'INSERT INTO serving_hosts (host_id, secret_fingerprint, secret_generated, version, last_seen) ' +
        'VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE secret_fingerprint = VALUES(secret_fingerprint), ' +
        'secret_generated = VALUES(secret_generated), version = VALUES(version), last_seen = VALUES(last_seen)',
      [this.options.hostId, this.fingerprint, this.options.secretGenerated ? 1 : 0, this.options.version.slice(0, 64)],
    );
  }

  /** Why this host and `peer` cannot serve side by side, or undefined. Never names the secret or its fingerprint. */
  private conflictWith(peer: HostRow): string | undefined {
    const { hostId } = this.options;
    const seen = `seen ${Number(peer.seen_seconds_ago)} s ago`;
    if (this.options.secretGenerated) {
      return (
        `host ${hostId} signs tokens with a JWT secret it generated itself, while host ${peer.host_id} also serves from ` +
        `this database (${seen}): a token from one host would be refused by the other`
      );
    }
    if (peer.secret_fingerprint !== this.fingerprint) {
      return (
        `host ${hostId} signs tokens with a different JWT secret than host ${peer.host_id}, which also serves from ` +
        `this database (${seen}): a token from one host would be refused by the other`
      );
    }
    return undefined;
  }
}

/** A deadlock, as Database reports it once its own retries are spent (the server's error as the cause). */
function isDeadlock(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined;
  return errorCode(error) === 'ER_LOCK_DEADLOCK' || errorCode(cause) === 'ER_LOCK_DEADLOCK';
}
