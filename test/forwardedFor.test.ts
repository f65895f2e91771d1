// X-Forwarded-For from a peer outside TRUSTED_PROXIES (a load balancer nobody told the service
// about): the header is ignored, the operator is told once per process, and the rate limit goes
// on counting the peer's own address.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService, type Service } from './helpers/service';
import { awayFromMinuteEnd, waitFor } from './helpers/wait';

const LIMIT = 4;
let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_xff');
  service = await startService({ env: { ...db.env, RATE_LIMIT_PER_MINUTE: String(LIMIT) } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

test('X-Forwarded-For from an untrusted peer: one warning naming the peer, and the peer is what the limit counts', async (t) => {
  await awayFromMinuteEnd();
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 1; i++) {
    const reply = await service.request('/api/status', { headers: { 'x-forwarded-for': `198.51.100.${i + 1}, 10.9.8.7` } });
    statuses.push(reply.status);
  }
  t.deepEqual(statuses, [...Array(LIMIT).fill(200), 429], 'every request counted against 127.0.0.1');

  const warning =
    /WARN - X-Forwarded-For received from 127\.0\.0\.1, which is not in TRUSTED_PROXIES: the header is ignored and the client is taken to be 127\.0\.0\.1\. If 127\.0\.0\.1 is your load balancer, add it to TRUSTED_PROXIES \(said once per process\)/g;
  const log = await waitFor('the warning', () => (warning.test(service.log()) ? service.log() : undefined));
  t.is(log.match(warning)?.length, 1, 'once per process, not once per request');
  t.false(log.includes('198.51.100.1,') || /WARN .*198\.51\.100/.test(log), "the header's text is not echoed in a warning");
});
