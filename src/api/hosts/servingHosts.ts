// The hosts serving from one database must sign tokens with one JWT secret, or a token from one
// host is refused by the next (a load balancer sends a client's requests to any of them). Each
// api process compares itself with the other hosts seen lately in `serving_hosts` when the
// database first answers: a mismatch refuses to serve (a bad configuration), else it writes its
// host's row (HOST_ID, a fingerprint of the secret, whether the secret was generated here) and
// again every HEARTBEAT_MS. A mismatch seen at a heartbeat is logged once per host, not fatal.
import { createHmac } from 'node:crypto';
import type { Database } from '../../platform/db/database';
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

interface PeerRow {
  readonly host_id: string;
  readonly secret_fingerprint: string;
  readonly seen_seconds_ago: number;
}

const ADVICE = 'set the same JWT_SECRET or JWT_SECRET_FILE on every host (see docs/multi-host.md)';

export class ServingHosts {
  private readonly fingerprint: string;
  private timer: NodeJS.Timeout | undefined;
  /** Whether a check-in has reached the database yet: the first one decides whether to serve. */
  private checkedIn = false;
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

  /** The first check-in (the database answers), then the heartbeat. Refusal goes through `refuse`. */
  async start(): Promise<void> {
    if (this.timer) return;
    this.timer = setInterval(() => void this.checkIn(), this.options.heartbeatMs ?? HEARTBEAT_MS);
    this.timer.unref();
    await this.checkIn();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async checkIn(): Promise<void> {
    const { hostId } = this.options;
    let peers: PeerRow[];
    try {
      // The first check-in looks before it writes: a host that refuses to serve never appears
      // among the serving hosts, so it cannot make a good host's next worker refuse in turn.
      if (this.checkedIn) await this.recordThisHost();
      peers = await this.db.select<PeerRow & Record<string, unknown>>(
        'SELECT host_id, secret_fingerprint, TIMESTAMPDIFF(SECOND, last_seen, UTC_TIMESTAMP(3)) AS seen_seconds_ago ' +
          'FROM serving_hosts WHERE host_id <> ? AND last_seen >= UTC_TIMESTAMP(3) - INTERVAL ? SECOND ORDER BY host_id',
        [hostId, PEER_WINDOW_SECONDS],
      );
      if (!this.checkedIn && !peers.some((peer) => this.conflictWith(peer) !== undefined)) await this.recordThisHost();
    } catch (error) {
      this.options.log.warn(`Could not record this host (${hostId}) among the serving hosts (${messageOf(error)}); will try again`);
      return;
    }
    const conflicts = peers.flatMap((peer) => {
      const problem = this.conflictWith(peer);
      return problem === undefined ? [] : [{ peer: peer.host_id, problem }];
    });
    if (!this.checkedIn) {
      this.checkedIn = true;
      const first = conflicts[0];
      if (first) {
        this.stop();
        this.refuse(`Refusing to serve: ${first.problem}; ${ADVICE}`);
        return;
      }
      if (peers.length > 0) {
        this.options.log.info(
          `Serving beside host(s) ${peers.map((peer) => peer.host_id).join(', ')} with the same JWT secret (this host: ${hostId})`,
        );
      }
      return;
    }
    for (const { peer, problem } of conflicts) {
      if (this.reported.has(peer)) continue;
      this.reported.add(peer);
      this.options.log.error(`${problem}; ${ADVICE}`);
    }
  }

  private async recordThisHost(): Promise<void> {
    await this.db.modify(
      'INSERT INTO serving_hosts (host_id, secret_fingerprint, secret_generated, version, last_seen) ' +
        'VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE secret_fingerprint = VALUES(secret_fingerprint), ' +
        'secret_generated = VALUES(secret_generated), version = VALUES(version), last_seen = VALUES(last_seen)',
      [this.options.hostId, this.fingerprint, this.options.secretGenerated ? 1 : 0, this.options.version.slice(0, 64)],
    );
  }

  /** Why this host and `peer` cannot serve side by side, or undefined. Never names the secret or its fingerprint. */
  private conflictWith(peer: PeerRow): string | undefined {
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
