// The version an operator reads in /health and /metrics is the package's, and the changelog says
// what that version changed: a bump without its changelog entry (or the reverse) fails here.
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { ROOT, startService, type Service } from './helpers/service';

const packageVersion = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const changelog = readFileSync(path.join(ROOT, 'CHANGELOG.md'), 'utf8');

/** `## [1.2.3] - 2026-12-01` headings, newest first as written. */
function releases(text: string): Array<{ version: string; date: string }> {
  return [...text.matchAll(/^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$/gm)].map((match) => ({
    version: match[1] ?? '',
    date: match[2] ?? '',
  }));
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

test('the newest changelog release is the package version, and releases run newest first', (t) => {
  const listed = releases(changelog);
  t.true(listed.length >= 3, 'the changelog lists its releases');
  t.is(listed[0]?.version, packageVersion, 'package.json was bumped together with a changelog entry');
  t.regex(changelog, /^## \[Unreleased\]$/m, 'a place for the next changes');
  for (let i = 1; i < listed.length; i++) {
    const [newer, older] = [listed[i - 1], listed[i]];
    if (newer === undefined || older === undefined) continue;
    t.true(compareVersions(newer.version, older.version) > 0, `${newer.version} above ${older.version}`);
    t.true(newer.date >= older.date, `${newer.version} is not dated before ${older.version}`);
  }
});

test.serial('/health and the worker info metric report the package version', async (t) => {
  const db: TestDatabase = await createTestDatabase('ra_version');
  let service: Service | undefined;
  try {
    service = await startService({ env: db.env });
    const health = await service.request('/health');
    t.is(health.status, 200);
    t.is(health.body.version, packageVersion);
    const metrics = await service.request('/metrics');
    t.regex(metrics.text, new RegExp(`^resilient_api_worker_info\\{[^}]*version="${packageVersion.replaceAll('.', '\\.')}"[^}]*\\} 1$`, 'm'));
  } finally {
    await service?.stop();
    await db.drop();
  }
});
