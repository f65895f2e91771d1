// The development user `demo` never keeps its published password in production, but a real user
// who is called demo and chose another password is never removed. The compiled service, started
// in production on a database that holds such a user.
import test from 'ava';
import { PasswordHasher } from '../src/api/auth/passwords';
import { createApiCounters } from '../src/api/metrics/counters';
import { migrate } from '../src/platform/db/migrate';
import { getLogger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { startService } from './helpers/service';
import { waitFor } from './helpers/wait';

let db: TestDatabase | undefined;
test.after.always(async () => {
  await db?.drop();
});

test('production start-up keeps a user called demo whose password is not demo-password', async (t) => {
  db = await createTestDatabase('ra_demo');
  await migrate(databaseConfig(db.name), getLogger('test'));
  const hasher = new PasswordHasher({ concurrency: 1, queueLimit: 4, counters: createApiCounters() });
  try {
    await db.query("INSERT INTO users (username, password_hash) VALUES ('demo', ?)", [await hasher.hash('a-password-of-their-own')]);
  } finally {
    hasher.close();
  }
  const service = await startService({ env: { ...db.env, NODE_ENV: 'production', API_INSTANCES: '1' } });
  try {
    await waitFor('/readyz', async () => (await service.request('/readyz')).status === 200, 20_000);
    const login = await service.request('/api/login', { body: { username: 'demo', password: 'a-password-of-their-own' } });
    t.is(login.status, 200, 'the real demo user still logs in');
    t.is((await service.request('/api/login', { body: { username: 'demo', password: 'demo-password' } })).status, 401);
    t.notRegex(service.log(), /Removed user "demo"/);
  } finally {
    await service.stop();
  }
});
