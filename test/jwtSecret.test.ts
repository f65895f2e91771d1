// Where the service finds its JWT secret when JWT_SECRET is not set: production generates one
// into .jwt-secret in its working directory, once, and processes that start at the same moment
// (a cluster's workers) all end with that one secret. Each run here is a real process reading
// the compiled configuration, in a folder of its own.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ROOT, tempDir } from './helpers/service';

const CONFIG = path.join(ROOT, 'dist', 'src', 'platform', 'config.js');

interface Loaded {
  readonly code: number | null;
  /** sha256 of the secret it got: never the secret itself on a terminal. */
  readonly secretHash?: string;
  readonly source?: string;
  readonly error?: string;
}

/** One process that loads the configuration in `cwd` with `env`, and says what it got. */
function loadIn(cwd: string, env: Record<string, string>): Promise<Loaded> {
  const script =
    `const { createHash } = require('node:crypto');` +
    `try { const c = require(${JSON.stringify(CONFIG)}).loadConfig();` +
    ` console.log(JSON.stringify({ secretHash: createHash('sha256').update(c.jwt.secret).digest('hex'), source: c.jwt.source })); }` +
    ` catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
  const child = spawn(process.execPath, ['-e', script], { cwd, env: { PATH: process.env['PATH'] ?? '', ...env } });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve) =>
    child.once('close', (code) => resolve({ code, ...(JSON.parse(out.trim() || '{}') as Omit<Loaded, 'code'>) })),
  );
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

test('production without JWT_SECRET: workers starting together generate one secret in .jwt-secret (0600) and all use it', async (t) => {
  const dir = tempDir('ra-jwt-');
  const runs = await Promise.all(Array.from({ length: 8 }, () => loadIn(dir, { NODE_ENV: 'production' })));
  const kept = readFileSync(path.join(dir, '.jwt-secret'), 'utf8').trim();
  t.true(kept.length >= 32);
  t.deepEqual(new Set(runs.map((run) => run.secretHash)), new Set([sha256(kept)]), JSON.stringify(runs));
  t.is(runs.filter((run) => run.source?.endsWith('(generated now)')).length, 1, 'exactly one process wrote it');
  t.is(statSync(path.join(dir, '.jwt-secret')).mode & 0o777, 0o600);
  t.deepEqual(readdirSync(dir), ['.jwt-secret'], 'no temporary file left behind');

  // A restart reads the same file.
  t.is((await loadIn(dir, { NODE_ENV: 'production' })).secretHash, sha256(kept));
  // JWT_SECRET, when set, wins.
  t.is((await loadIn(dir, { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) })).secretHash, sha256('x'.repeat(40)));
});

test('a kept secret too short to sign with, or a folder the service cannot write, refuses to start and says why', async (t) => {
  const short = tempDir('ra-jwt-short-');
  writeFileSync(path.join(short, '.jwt-secret'), 'short\n', { mode: 0o600 });
  const refused = await loadIn(short, { NODE_ENV: 'production' });
  t.regex(refused.error ?? '', /\.jwt-secret must be at least 32 characters \(got 5\): delete it to have a new one generated/);
  t.is(readFileSync(path.join(short, '.jwt-secret'), 'utf8'), 'short\n', 'left for the operator to decide');

  // A folder no one may create files in, root included (tests may run as root).
  const denied = await loadIn('/proc', { NODE_ENV: 'production' });
  t.regex(denied.error ?? '', /JWT_SECRET is required in production .*set JWT_SECRET or JWT_SECRET_FILE, or let the service keep one in \/proc\/\.jwt-secret \(cannot: E[A-Z]+\)/);
});

test('development keeps its own secret in .dev-jwt-secret', async (t) => {
  const dir = tempDir('ra-jwt-dev-');
  const first = await loadIn(dir, { NODE_ENV: 'development' });
  const again = await loadIn(dir, { NODE_ENV: 'development' });
  t.is(first.secretHash, sha256(readFileSync(path.join(dir, '.dev-jwt-secret'), 'utf8').trim()));
  t.is(again.secretHash, first.secretHash);
  t.deepEqual(readdirSync(dir), ['.dev-jwt-secret']);
});
