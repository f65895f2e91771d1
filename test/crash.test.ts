// An exception outside any request leaves the process in an unknown state: it is logged with its
// stack, in-flight work drains, and the process exits non-zero for the supervisor to restart.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService } from './helpers/service';
import { sleep } from './helpers/wait';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase('ra_crash');
});
test.after.always(async () => {
  await db?.drop();
});

test('an uncaught exception outside a request: stack logged, in-flight request finished, exit 1', async (t) => {
  const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1' } });
  try {
    const slow = service.request('/__fault/slow?ms=800');
    // The service shows no sign of a request being handled to wait for; 100 ms on loopback lets
    // it arrive before the crash. Were it late, it would be refused and the 200 below would fail.
    await sleep(100);
    t.is((await service.request('/__fault/crash', { method: 'POST' })).status, 202);
    const { code } = await service.exited;
    t.is(code, 1);
    const finished = await slow;
    t.is(finished.status, 200, 'the request in flight was answered before the exit');
    t.regex(service.log(), / - lifecycle - FATAL - Uncaught exception[^\n]*\n[^\n]*Injected crash outside a request\n\s+at /);
  } finally {
    await service.stop('SIGKILL');
  }
});

test('an exit code chosen by the fault switch is the process exit code', async (t) => {
  const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1' } });
  await service.request('/__fault/exit?code=3', { method: 'POST' });
  t.is((await service.exited).code, 3);
});

test('without FAULT_INJECTION the fault routes do not exist', async (t) => {
  const service = await startService({ env: db.env });
  try {
    t.is((await service.request('/__fault/crash', { method: 'POST' })).status, 404);
    t.is((await service.request('/__fault/throw')).status, 404);
  } finally {
    await service.stop();
  }
});
