// The chaos drill's engine, shared by `npm run bench` (bench/scenarios/chaos.ts) and the test
// suite (test/chaos.test.ts): steady registrations and logins from many clients while faults are
// injected on a schedule, then every acknowledged registration is looked for in the database.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { PrivateMariaDb } from '../../test/helpers/mariadb';
import type { Pm2Sandbox } from '../../test/helpers/pm2';
import { sleep, waitFor } from '../../test/helpers/wait';

/** A request unanswered this long is hung: well above the service's own bounds (5 s query timeout, 1 s health). */
export const HUNG_AFTER_MS = 10_000;
/** The clients wait longer than that, so a hung request is seen as hung and not as a client timeout. */
const CLIENT_TIMEOUT_MS = 20_000;

export type ChaosAction =
  | { readonly kind: 'kill-worker' }
  | { readonly kind: 'stop-database'; readonly forMs: number }
  | { readonly kind: 'freeze-database'; readonly forMs: number }
  | { readonly kind: 'reload' };

export interface ChaosEvent {
  /** Milliseconds after the load started. */
  readonly atMs: number;
  readonly action: ChaosAction;
}

export interface ChaosReport {
  /** How long the load ran. */
  readonly seconds: number;
  /** Registrations answered 201. */
  readonly acknowledged: number;
  /** Of those, found in the database afterwards. */
  readonly found: number;
  /** Usernames stored more than once (of this run's). */
  readonly duplicates: number;
  /** Logins of acknowledged users answered 401: a write that was lost after all. */
  readonly loginsRefused: number;
  /** Answers by status, `0` for a network error without an answer. */
  readonly byStatus: Record<string, number>;
  /** The network errors by kind: ECONNREFUSED (no worker listening), ECONNRESET or `socket hang up` (a worker died mid-request). */
  readonly networkErrors: Record<string, number>;
  /** Requests with no answer within HUNG_AFTER_MS. */
  readonly hung: number;
  readonly slowestMs: number;
  readonly requests: number;
  /** user_stats.total_users equals the number of users. */
  readonly counterExact: boolean;
  readonly healthyAtEnd: boolean;
  /** What was done, with its time, for the report. */
  readonly log: readonly string[];
}

interface Outcome {
  readonly status: number;
  readonly ms: number;
  readonly error?: string;
}

/** One request on a fresh connection (no keep-alive: every request is a connection to hand out). */
function send(baseUrl: string, path: string, body: object): Promise<Outcome> {
  const payload = JSON.stringify(body);
  const started = Date.now();
  return new Promise((resolve) => {
    const req = http.request(
      `${baseUrl}${path}`,
      {
        method: 'POST',
        agent: false,
        timeout: CLIENT_TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), connection: 'close' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started }));
        res.on('error', (error) => resolve({ status: 0, ms: Date.now() - started, error: error.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, ms: Date.now() - started, error: error.code ?? error.message }));
    req.end(payload);
  });
}

async function inject(action: ChaosAction, service: Pm2Sandbox, mariadb: PrivateMariaDb, note: (what: string) => void): Promise<void> {
  switch (action.kind) {
    case 'kill-worker': {
      const online = (await service.workers()).filter((w) => w.pm2_env.status === 'online' && w.pid > 0);
      const victim = online[Math.floor(Math.random() * online.length)];
      if (!victim) {
        note('kill: no worker online');
        return;
      }
      process.kill(victim.pid, 'SIGKILL');
      note(`SIGKILL worker ${victim.pm_id} (pid ${victim.pid})`);
      return;
    }
    case 'stop-database':
      note(`database stopped for ${action.forMs} ms`);
      await mariadb.stop();
      await sleep(action.forMs);
      await mariadb.start();
      note('database started');
      return;
    case 'freeze-database':
      note(`database frozen (SIGSTOP) for ${action.forMs} ms`);
      mariadb.freeze();
      await sleep(action.forMs);
      mariadb.thaw();
      note('database thawed');
      return;
    case 'reload':
      note('pm2 reload api');
      await service.pm2('reload', 'api');
      note('reload done');
      return;
  }
}

/**
 * Runs `clients` closed-loop clients for `seconds` (and 3 s past the last event): each registers a new user and, once
 * acknowledged, logs in as that user. Meanwhile the events run in order, each at its time.
 * Then waits for every request in flight, for /health to be 200 and every worker online, and
 * looks for each acknowledged user in the database the service used.
 */
export async function runChaos(options: {
  readonly service: Pm2Sandbox;
  readonly mariadb: PrivateMariaDb;
  readonly database: string;
  readonly workers: number;
  readonly clients: number;
  readonly seconds: number;
  readonly events: readonly ChaosEvent[];
  readonly onNote?: (line: string) => void;
}): Promise<ChaosReport> {
  const { service, mariadb } = options;
  const run = randomBytes(3).toString('hex');
  const acknowledged: string[] = [];
  const outcomes: Outcome[] = [];
  const log: string[] = [];
  const started = Date.now();
  const note = (what: string): void => {
    const line = `${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`;
    log.push(line);
    options.onNote?.(line);
  };
  let sequence = 0;
  let loginsRefused = 0;
  // The load outlasts the last event by 3 s at least, however long a reload took.
  let endAt = started + options.seconds * 1000;
  let eventsDone = false;
  const client = async (): Promise<void> => {
    while (!eventsDone || Date.now() < endAt) {
      const username = `c${run}-${sequence++}`;
      const password = 'chaos-drill-password';
      const registered = await send(service.url, '/api/register', { username, password });
      outcomes.push(registered);
      if (registered.status === 201) {
        acknowledged.push(username);
        const login = await send(service.url, '/api/login', { username, password });
        outcomes.push(login);
        if (login.status === 401) loginsRefused++;
      } else if (registered.status === 0 || registered.status >= 500) {
        await sleep(50); // a refused connection or a 503 comes back at once: do not spin
      }
    }
  };
  const load = Promise.all(Array.from({ length: options.clients }, client));
  for (const event of options.events) {
    await sleep(Math.max(0, started + event.atMs - Date.now()));
    await inject(event.action, service, mariadb, note);
  }
  endAt = Math.max(endAt, Date.now() + 3000);
  eventsDone = true;
  await load;
  const loadSeconds = (Date.now() - started) / 1000;
  note('load over');

  const healthyAtEnd = await waitFor(
    'the service healthy with every worker online',
    async () =>
      (await service.request('/health', { timeoutMs: 2000 })).status === 200 &&
      (await service.workers()).filter((w) => w.pm2_env.status === 'online').length === options.workers,
    30_000,
    250,
  ).then(
    () => true,
    () => false,
  );

  const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: 'root', database: options.database });
  try {
    const [rows] = await connection.query('SELECT username FROM users WHERE username LIKE ?', [`c${run}-%`]);
    const stored = (rows as Array<{ username: string }>).map((row) => row.username);
    const storedSet = new Set(stored);
    const [counts] = await connection.query('SELECT (SELECT total_users FROM user_stats) AS counter, (SELECT COUNT(*) FROM users) AS actual');
    const [{ counter, actual } = { counter: -1, actual: -2 }] = counts as Array<{ counter: number; actual: number }>;
    const byStatus: Record<string, number> = {};
    const networkErrors: Record<string, number> = {};
    for (const outcome of outcomes) {
      byStatus[String(outcome.status)] = (byStatus[String(outcome.status)] ?? 0) + 1;
      if (outcome.error !== undefined) networkErrors[outcome.error] = (networkErrors[outcome.error] ?? 0) + 1;
    }
    return {
      seconds: loadSeconds,
      acknowledged: acknowledged.length,
      found: acknowledged.filter((name) => storedSet.has(name)).length,
      duplicates: stored.length - storedSet.size,
      loginsRefused,
      byStatus,
      networkErrors,
      hung: outcomes.filter((o) => o.ms >= HUNG_AFTER_MS).length,
      slowestMs: Math.max(0, ...outcomes.map((o) => o.ms)),
      requests: outcomes.length,
      counterExact: Number(counter) === Number(actual),
      healthyAtEnd,
      log,
    };
  } finally {
    await connection.end();
  }
}

/** Whether a report meets the drill's targets. */
export function chaosTargetsMet(report: ChaosReport): boolean {
  return (
    report.acknowledged > 0 &&
    report.found === report.acknowledged &&
    report.duplicates === 0 &&
    report.loginsRefused === 0 &&
    report.hung === 0 &&
    (report.byStatus['500'] ?? 0) === 0 &&
    report.counterExact &&
    report.healthyAtEnd
  );
}

/** `200: 398, 201: 412, 503: 31, no answer 4 (ECONNRESET 4)` */
export function describeStatuses(byStatus: Record<string, number>, networkErrors: Record<string, number>): string {
  const kinds = Object.entries(networkErrors).map(([kind, count]) => `${kind} ${count}`).join(', ');
  return Object.entries(byStatus)
    .sort(([a], [b]) => (a === '0' ? 1e4 : Number(a)) - (b === '0' ? 1e4 : Number(b)))
    .map(([status, count]) => (status === '0' ? `no answer ${count} (${kinds})` : `${status}: ${count}`))
    .join(', ');
}

export function describeChaos(report: ChaosReport): string {
  return (
    `${report.acknowledged} registrations acknowledged (201), ${report.found} found in the database, ` +
    `${report.duplicates} duplicated, ${report.loginsRefused} acknowledged users refused at login; ` +
    `${report.requests} requests: ${describeStatuses(report.byStatus, report.networkErrors)}; ${report.hung} hung (no answer within ` +
    `${HUNG_AFTER_MS / 1000} s), slowest answer ${report.slowestMs} ms; user counter ${report.counterExact ? 'exact' : 'WRONG'}; ` +
    `${report.healthyAtEnd ? 'healthy' : 'NOT healthy'} at the end`
  );
}
