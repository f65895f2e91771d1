// Several hosts serving from one database must sign tokens with one JWT secret: the api checks
// itself against the other hosts seen lately (serving_hosts) and refuses to serve, as a bad
// configuration (exit 78), when its secret differs or was generated on this host. Real api
// processes, told apart by HOST_ID, on one database; and HOST_ID's own validation.
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ServingHosts, secretFingerprint } from '../src/api/hosts/servingHosts';
import { ConfigError, loadConfig } from '../src/platform/config';
import { Database } from '../src/platform/db/database';
import { migrate } from '../src/platform/db/migrate';
import type { Logger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { startService, type Service, tempDir } from './helpers/service';
import { waitFor } from './helpers/wait';

const SHARED_SECRET = 'shared-secret-of-every-host-0123456789abcdef';
const OTHER_SECRET = 'another-secret-of-a-misconfigured-host-987654';

let db: TestDatabase;
const services: Service[] = [];

test.before(async () => {
  db = await createTestDatabase('ra_hosts');
});

test.after.always(async () => {
  await Promise.all(services.map((service) => service.stop()));
  await db.drop();
});

async function host(hostId: string, env: Record<string, string>, options: { cwd?: string; wait?: boolean } = {}): Promise<Service> {
  const started = await startService({
    env: { ...db.env, HOST_ID: hostId, RATE_LIMIT_PER_MINUTE: '0', ...env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.wait === false ? { waitFor: 'none' as const } : {}),
  });
  services.push(started);
  return started;
}

test('HOST_ID: the hostname by default; 1 to 64 of letters, digits, . _ - else a bad configuration', (t) => {
  t.regex(loadConfig({ NODE_ENV: 'test' }).hostId, /^[A-Za-z0-9._-]{1,64}$/);
  t.is(loadConfig({ NODE_ENV: 'test', HOST_ID: 'web-1.eu_west' }).hostId, 'web-1.eu_west');
  for (const bad of ['has space', 'a/b', 'x'.repeat(65), 'é']) {
    const error = t.throws(() => loadConfig({ NODE_ENV: 'test', HOST_ID: bad }), { instanceOf: ConfigError });
    t.regex(error?.message ?? '', /HOST_ID must be 1 to 64 letters, digits, '\.', '_' or '-'/);
  }
});

test('the fingerprint is one per secret and gives nothing of it away', (t) => {
  t.is(secretFingerprint(SHARED_SECRET), secretFingerprint(SHARED_SECRET));
  t.not(secretFingerprint(SHARED_SECRET), secretFingerprint(OTHER_SECRET));
  t.regex(secretFingerprint(SHARED_SECRET), /^[0-9a-f]{32}$/);
  t.false(secretFingerprint(SHARED_SECRET).includes(Buffer.from(SHARED_SECRET).toString('hex').slice(0, 8)));
});

test.serial('hosts with one JWT_SECRET both serve, and a token from one works on the other', async (t) => {
  const h1 = await host('h1', { JWT_SECRET: SHARED_SECRET });
  const h2 = await host('h2', { JWT_SECRET: SHARED_SECRET });
  t.is((await h1.request('/api/register', { body: { username: 'roamer', password: 'roamer-password' } })).status, 201);
  const session = await h1.request('/api/login', { body: { username: 'roamer', password: 'roamer-password' } });
  t.is(session.status, 200);
  const me = await h2.request('/api/me', { headers: { authorization: `Bearer ${session.body.token}` } });
  t.is(me.status, 200);
  t.is(me.body.username, 'roamer');
  await waitFor('h2 to see h1', () => /INFO - Serving beside host\(s\) h1 with the same JWT secret \(this host: h2\)/.test(h2.log()));
  const rows = await db.query<Array<{ host_id: string; secret_generated: number }>>(
    'SELECT host_id, secret_generated FROM serving_hosts ORDER BY host_id',
  );
  t.deepEqual(rows.map((row) => [row.host_id, Number(row.secret_generated)]), [['h1', 0], ['h2', 0]]);
});

test.serial('a host with a different JWT_SECRET refuses to serve: exit 78, both hosts named, no secret in the log', async (t) => {
  const h3 = await host('h3', { JWT_SECRET: OTHER_SECRET }, { wait: false });
  t.is((await h3.exited).code, 78);
  const said = `${h3.log()}\n${h3.output()}`;
  t.regex(
    said,
    /FATAL - Invalid configuration: Refusing to serve: host h3 signs tokens with a different JWT secret than host h1, which also serves from this database \(seen \d+ s ago\): a token from one host would be refused by the other; set the same JWT_SECRET or JWT_SECRET_FILE on every host/,
  );
  t.deepEqual(await db.query("SELECT host_id FROM serving_hosts WHERE host_id = 'h3'"), [], 'a refused host is not listed as serving');
  for (const secret of [SHARED_SECRET, OTHER_SECRET]) {
    t.false(said.includes(secret));
    t.false(said.includes(secretFingerprint(secret)));
  }
});

test.serial('a production host with a generated secret (no JWT_SECRET) refuses to serve beside another host', async (t) => {
  const cwd = tempDir('ra-hosts-cwd-');
  const h4 = await host(
    'h4',
    { NODE_ENV: 'production', JWT_SECRET: '', METRICS_ENABLED: '0', BACKUP_DIR: path.join(cwd, 'backups') },
    { cwd, wait: false },
  );
  t.is((await h4.exited).code, 78);
  t.regex(
    `${h4.log()}\n${h4.output()}`,
    /FATAL - Invalid configuration: Refusing to serve: host h4 signs tokens with a JWT secret it generated itself, while host h1 also serves from this database \(seen \d+ s ago\): .*set the same JWT_SECRET or JWT_SECRET_FILE on every host/,
  );
  t.true(existsSync(path.join(cwd, '.jwt-secret')), 'the generated secret is kept in its working directory');
  t.deepEqual(await db.query("SELECT host_id FROM serving_hosts WHERE host_id = 'h4'"), [], 'a refused host is not listed as serving');
});

test.serial('a conflict that appears while serving is logged once per host, and serving goes on', async (t) => {
  const { log, lines } = keptLog();
  const errors = (): string[] => lines.filter((line) => !line.startsWith('INFO '));
  const database = new Database(databaseConfig(db.name), log);
  database.schemaReady = true;
  const { host: h5, refusals } = checkingHost(database, 'h5', SHARED_SECRET, log);
  try {
    await h5.start();
    t.deepEqual(refusals, [], 'same secret as h1 and h2: serves');
    // h6 arrives with another secret (and would refuse itself); h5 keeps serving and says so once.
    await db.query(
      "INSERT INTO serving_hosts (host_id, secret_fingerprint, secret_generated, version, last_seen) VALUES ('h6', ?, 0, 'test', UTC_TIMESTAMP(3))",
      [secretFingerprint(OTHER_SECRET)],
    );
    await waitFor('the conflict line', () => errors().length > 0);
    const beats = await db.query<Array<{ last_seen: Date }>>("SELECT last_seen FROM serving_hosts WHERE host_id = 'h5'");
    await waitFor('three more heartbeats', async () => {
      const now = await db.query<Array<{ last_seen: Date }>>("SELECT last_seen FROM serving_hosts WHERE host_id = 'h5'");
      return now[0] !== undefined && beats[0] !== undefined && now[0].last_seen.getTime() - beats[0].last_seen.getTime() >= 300;
    });
    t.deepEqual(errors(), [
      'ERROR host h5 signs tokens with a different JWT secret than host h6, which also serves from this database (seen 0 s ago): ' +
        'a token from one host would be refused by the other; set the same JWT_SECRET or JWT_SECRET_FILE on every host (see docs/multi-host.md)',
    ]);
    t.deepEqual(refusals, []);
  } finally {
    h5.stop();
    await database.close();
  }
});

/** An api's serving-hosts check of `hostId` on `database`, heartbeating every 100 ms, with the refusals it made. */
function checkingHost(database: Database, hostId: string, secret: string, log: Logger): { host: ServingHosts; refusals: string[] } {
  const refusals: string[] = [];
  const host = new ServingHosts(
    database,
    { hostId, secret, secretGenerated: false, version: 'test', log, heartbeatMs: 100 },
    (problem) => void refusals.push(problem),
  );
  return { host, refusals };
}

/** A logger that keeps what ServingHosts writes (error, warn, info; a log4js Logger has many more members). */
function keptLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = {
    error: (text: string) => void lines.push(`ERROR ${text}`),
    warn: (text: string) => void lines.push(`WARN ${text}`),
    info: (text: string) => void lines.push(`INFO ${text}`),
  } as unknown as Logger;
  return { log, lines };
}

test.serial('two hosts with different secrets checking in at the same moment: exactly one serves, every time', async (t) => {
  // A database of its own: h1 and h2 above keep heartbeating into the file's database.
  const race = await createTestDatabase('ra_hosts_race');
  const { log, lines } = keptLog();
  // DB_RETRIES=1: the deadlock's loser must look again by itself, not rely on Database's retries.
  const databases = [1, 2].map(() => {
    const database = new Database({ ...databaseConfig(race.name), retries: 1 }, log);
    database.schemaReady = true;
    return database;
  });
  try {
    await migrate(databaseConfig(race.name), log);
    for (let round = 1; round <= 10; round++) {
      await race.query('DELETE FROM serving_hosts');
      const contenders = databases.map((database, index) => checkingHost(database, `r${index}`, index === 0 ? SHARED_SECRET : OTHER_SECRET, log));
      await Promise.all(contenders.map(({ host }) => host.start()));
      for (const { host } of contenders) host.stop();
      const refused = contenders.flatMap(({ refusals }, index) => refusals.map(() => `r${index}`));
      const rows = await race.query<Array<{ host_id: string }>>('SELECT host_id FROM serving_hosts');
      t.is(refused.length, 1, `round ${round}: one refuses (${refused.join(', ')})`);
      t.is(rows.length, 1, `round ${round}: one is recorded`);
      t.not(rows[0]?.host_id, refused[0], `round ${round}: the one recorded is the one serving`);
    }
    t.deepEqual(lines.filter((line) => line.startsWith('WARN Could not check')), [], 'no check-in gave up');
  } finally {
    await Promise.all(databases.map((database) => database.close()));
    await race.drop();
  }
});

test.serial('two api processes with different secrets started together: one serves, the other exits 78, every round', async (t) => {
  const race = await createTestDatabase('ra_hosts_procs');
  const started: Service[] = [];
  try {
    for (let round = 1; round <= 3; round++) {
      await race.query('DELETE FROM serving_hosts').catch(() => undefined); // no table before the first round migrates
      const pair = await Promise.all(
        [SHARED_SECRET, OTHER_SECRET].map((secret, index) =>
          startService({
            env: { ...race.env, HOST_ID: `p${index}`, JWT_SECRET: secret, RATE_LIMIT_PER_MINUTE: '0' },
            waitFor: 'none',
          }),
        ),
      );
      started.push(...pair);
      // Each ends up refused (exit 78) or serving (/livez answers: the check precedes listening).
      const outcomes = await Promise.all(
        pair.map((service) =>
          waitFor(
            'the process to serve or exit',
            async () => {
              if (service.process.exitCode !== null) return `exit ${service.process.exitCode}`;
              return (await service.request('/livez', { timeoutMs: 1000 }).catch(() => undefined))?.status === 200 ? 'serving' : undefined;
            },
            30_000,
          ),
        ),
      );
      t.deepEqual([...outcomes].sort(), ['exit 78', 'serving'], `round ${round}: ${outcomes.join(', ')}`);
      const serving = outcomes.indexOf('serving');
      const rows = await race.query<Array<{ host_id: string }>>('SELECT host_id FROM serving_hosts');
      t.deepEqual(rows.map((row) => row.host_id), [`p${serving}`], `round ${round}: only the serving host is recorded`);
      t.regex(pair[1 - serving]?.log() ?? '', /FATAL - Invalid configuration: Refusing to serve: host p\d signs tokens with a different JWT secret than host p\d/);
      await Promise.all(pair.map((service) => service.stop()));
    }
  } finally {
    await Promise.all(started.map((service) => service.stop()));
    await race.drop();
  }
});

test.serial('a first check-in that failed does not refuse later: the conflict is logged once, serving goes on', async (t) => {
  const { log, lines } = keptLog();
  const database = new Database(databaseConfig(db.name), log);
  const { host: h7, refusals } = checkingHost(database, 'h7', OTHER_SECRET, log);
  try {
    // The database refuses statements at the first check-in (as with its circuit open): h7 serves unchecked.
    await h7.start();
    database.schemaReady = true;
    t.true(lines.some((line) => line.startsWith('WARN Could not check this host (h7) against the serving hosts')));
    // h1 and h2 (the shared secret) are serving: the heartbeats log the conflict once per host and record h7.
    await waitFor('the conflicts', () => lines.some((line) => line.startsWith('ERROR')));
    const recorded = async (): Promise<number | undefined> => {
      const [row] = await db.query<Array<{ last_seen: Date }>>("SELECT last_seen FROM serving_hosts WHERE host_id = 'h7'");
      return row?.last_seen.getTime();
    };
    const first = await waitFor('h7 recorded', recorded);
    await waitFor('three more heartbeats', async () => ((await recorded()) ?? 0) - first >= 300);
    // One line per other host serving with the shared secret (h1, h2, and h5 while its row is recent).
    const errors = lines.filter((line) => line.startsWith('ERROR'));
    const peers = errors.map((line) => /than host (\S+), which/.exec(line)?.[1]);
    t.deepEqual(new Set(peers).size, errors.length, 'once per host');
    t.true(peers.includes('h1') && peers.includes('h2'), peers.join(', '));
    for (const line of errors) {
      t.regex(
        line,
        /^ERROR host h7 signs tokens with a different JWT secret than host h\d, which also serves from this database \(seen \d+ s ago\): a token from one host would be refused by the other; set the same JWT_SECRET or JWT_SECRET_FILE on every host \(see docs\/multi-host\.md\)$/,
      );
    }
    t.deepEqual(refusals, [], 'never refused once serving');
  } finally {
    h7.stop();
    await database.close();
    await db.query("DELETE FROM serving_hosts WHERE host_id = 'h7'");
  }
});
