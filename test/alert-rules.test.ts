// The shipped alert rules (monitoring/alerts.yml): promtool accepts them and their unit tests
// (monitoring/alerts.test.yml) pass, every alert has a test that fires and one that stays
// quiet, and every metric a rule reads is really exposed by a running 2-worker cluster, whose
// scrape `promtool check metrics` accepts. Then the backup metrics of that cluster: a backup
// that never ran, one that succeeded, runs that fail, and the backup app removed from PM2.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { sample, scrapeMetrics } from './helpers/metrics';
import { createPm2Sandbox, PM2_BIN, type Pm2Sandbox } from './helpers/pm2';
import { freePort } from './helpers/ports';
import { findPromtool } from './helpers/promtool';
import { ROOT, tempDir } from './helpers/service';
import { createTestCertificate, type TestCertificate } from './helpers/tls';
import { waitFor } from './helpers/wait';

const run = promisify(execFile);
const RULES = path.join(ROOT, 'monitoring', 'alerts.yml');
const RULE_TESTS = path.join(ROOT, 'monitoring', 'alerts.test.yml');
/** Metrics a rule may read that the service does not expose: Prometheus makes them. */
const FROM_PROMETHEUS = new Set(['up']);
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance']);

/** Runs promtool (helpers/promtool.ts finds or fetches it); a machine without it fails with what to install, never skips. */
async function promtool(args: string[], input?: string): Promise<{ code: number; output: string }> {
  const binary = await findPromtool();
  return new Promise((resolve, reject) => {
    const child = execFile(binary, args, { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      // execFile's error carries the exit status as `code`, or the spawn failure's name.
      const code: unknown = error?.code;
      if (code === 'ENOENT') {
        reject(new Error(`${binary} could not be started`));
        return;
      }
      resolve({ code: error ? (typeof code === 'number' ? code : 1) : 0, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(input ?? '');
  });
}

/** The PromQL of every rule, from `expr: …` on one line or `expr: |` and the lines indented under it. */
function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split('\n');
  const expressions: string[] = [];
  lines.forEach((line, index) => {
    const match = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!match) return;
    const [, indent = '', rest = ''] = match;
    if (rest !== '|' && rest !== '>') {
      expressions.push(rest);
      return;
    }
    const block: string[] = [];
    for (const next of lines.slice(index + 1)) {
      if (next.trim() !== '' && next.search(/\S/) <= indent.length) break;
      block.push(next);
    }
    expressions.push(block.join('\n'));
  });
  return expressions;
}

interface Selector {
  readonly metric: string;
  /** Label matchers with `=`: a series with each of these values must exist. */
  readonly equals: ReadonlyArray<readonly [string, string]>;
}

/** Metric names, with their exact-match labels, that PromQL text reads (names of functions and keywords have no `_`). */
function selectorsOf(expression: string): Selector[] {
  const selectors: Selector[] = [];
  for (const match of expression.matchAll(/\b(resilient_api_[a-z_]+|up)\b(\{[^}]*\})?/g)) {
    const equals = [...(match[2] ?? '').matchAll(/(\w+)\s*=\s*"([^"]*)"/g)]
      .filter((m) => !TARGET_LABELS.has(m[1] ?? ''))
      .map((m) => [m[1] ?? '', m[2] ?? ''] as const);
    selectors.push({ metric: match[1] ?? '', equals });
  }
  return selectors;
}

/** The sample lines of one metric in Prometheus text, as label maps. */
function seriesOf(text: string, metric: string): Array<Record<string, string>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${metric}{`) || line.startsWith(`${metric} `))
    .map((line) => Object.fromEntries([...(/\{(.*)\}/.exec(line)?.[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]])));
}

const rulesText = readFileSync(RULES, 'utf8');
const alertNames = [...rulesText.matchAll(/^\s*- alert:\s*(\w+)\s*$/gm)].map((match) => match[1] ?? '');

test('promtool check rules accepts the rules file', async (t) => {
  const { code, output } = await promtool(['check', 'rules', RULES]);
  t.is(code, 0, output);
  t.regex(output, new RegExp(`SUCCESS: ${alertNames.length} rules found`));
});

test('promtool test rules: every alert fires when it should and stays quiet when it should not', async (t) => {
  const { code, output } = await promtool(['test', 'rules', RULE_TESTS]);
  t.is(code, 0, `promtool test rules ${path.relative(ROOT, RULE_TESTS)}:\n${output}`);
  // Each alert has both kinds of case: one where it fires (exp_alerts with an entry) and one where it must not.
  const cases = [...readFileSync(RULE_TESTS, 'utf8').matchAll(/alertname:\s*(\w+)\s*\n\s*exp_alerts:\s*(\[\])?/g)];
  for (const name of alertNames) {
    const own = cases.filter((match) => match[1] === name);
    t.true(own.some((match) => match[2] === undefined), `${name} has a case where it fires`);
    t.true(own.some((match) => match[2] === '[]'), `${name} has a case where it stays quiet`);
  }
  t.deepEqual([...new Set(cases.map((match) => match[1]))].sort(), [...alertNames].sort(), 'tests name only alerts of the rules file');
});

test('the alert rules quoted in the docs pass promtool check rules too', async (t) => {
  const docs = path.join(ROOT, 'docs', 'metrics-and-alerts.md');
  const snippets = [...readFileSync(docs, 'utf8').matchAll(/```yaml\n(- alert:[\s\S]*?)```/g)].map((match) => match[1] ?? '');
  t.true(snippets.length >= 1, 'the docs quote an optional rule');
  const dir = tempDir('ra-doc-rules-');
  for (const [index, snippet] of snippets.entries()) {
    const file = path.join(dir, `snippet-${index}.yml`);
    const indented = snippet.split('\n').map((line) => (line === '' ? '' : `      ${line}`)).join('\n');
    writeFileSync(file, `groups:\n  - name: docs\n    rules:\n${indented}`);
    const { code, output } = await promtool(['check', 'rules', file]);
    t.is(code, 0, `${path.relative(ROOT, docs)} snippet ${index + 1}:\n${output}`);
  }
});

test('every alert has a severity, a summary, a description and a runbook link into docs/alerts.md', (t) => {
  t.true(alertNames.length >= 10, alertNames.join(', '));
  const blocks = rulesText.split(/^\s*- alert:\s*/m).slice(1);
  for (const block of blocks) {
    const name = /^\w+/.exec(block)?.[0] ?? '?';
    t.regex(block, /\n\s+severity: (critical|warning)\n/, name);
    t.regex(block, /\n\s+summary: '.+'\n/, name);
    t.regex(block, /\n\s+description: >-\n\s+\S/, name);
    t.regex(block, new RegExp(`\\n\\s+runbook_url: 'docs/alerts\\.md#${name.toLowerCase()}'`), name);
  }
});

test('the rules read only metrics the service exposes or Prometheus makes (parsing check)', (t) => {
  const selectors = ruleExpressions(rulesText).flatMap(selectorsOf);
  t.true(selectors.length >= alertNames.length, 'every rule reads some metric');
  for (const { metric } of selectors) t.true(metric.startsWith('resilient_api_') || FROM_PROMETHEUS.has(metric), metric);
});

// A live 2-worker production cluster under PM2, over HTTPS, with its own backup folder.
let db: TestDatabase | undefined;
let sandbox: Pm2Sandbox | undefined;
let certificate: TestCertificate | undefined;
let backupDir = '';

async function cluster(): Promise<Pm2Sandbox> {
  if (sandbox) return sandbox;
  db = await createTestDatabase('ra_alert_rules');
  certificate = createTestCertificate();
  backupDir = path.join(tempDir('ra-alert-rules-'), 'backups');
  sandbox = await createPm2Sandbox({ ...db.env, ...certificate.env, API_INSTANCES: '2', BACKUP_DIR: backupDir });
  await sandbox.startEcosystem('production', 2);
  return sandbox;
}

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
  certificate?.remove();
});

const scrape = async (): Promise<string> => scrapeMetrics(await cluster(), 10_000);

test.serial('every metric a rule reads is exposed by a running cluster, and promtool check metrics accepts its scrape', async (t) => {
  const pm2 = await cluster();
  // The backup app registered its schedule and exited: the supervisor counts its runs from now on.
  await waitFor('the supervisor to count the backup app', async () => sample(await scrape(), 'resilient_api_exits_total{app="backup",reason="failed"}') === 0, 20_000, 250);
  t.is((await pm2.request('/api/status')).status, 200);
  const text = await scrape();

  const selectors = ruleExpressions(rulesText).flatMap(selectorsOf);
  const missing: string[] = [];
  for (const { metric, equals } of selectors) {
    if (FROM_PROMETHEUS.has(metric)) continue;
    const series = seriesOf(text, metric);
    const wanted = `${metric}{${equals.map(([name, value]) => `${name}="${value}"`).join(',')}}`;
    if (!series.some((labels) => equals.every(([name, value]) => labels[name] === value))) missing.push(wanted);
  }
  t.deepEqual(missing, [], 'series the rules read but the scrape lacks');
  // The metrics the descriptions send an operator to exist as well.
  for (const named of new Set(rulesText.match(/resilient_api_[a-z_]+/g) ?? [])) t.true(seriesOf(text, named).length > 0, named);

  const { code, output } = await promtool(['check', 'metrics'], text);
  t.is(code, 0, output);
  t.is(output.trim(), '', 'no lint findings');

  // The certificate the workers serve: made by the helper for one day.
  const expiry = sample(text, 'resilient_api_tls_certificate_expiry_timestamp_seconds') ?? 0;
  const left = expiry - Date.now() / 1000;
  t.true(left > 23 * 3600 && left <= 24 * 3600 + 60, `expires in ${Math.round(left)} s`);
  // Restarts are counted by reason, each at 0 before the first.
  for (const reason of ['crash', 'signal', 'stuck', 'memory']) t.is(sample(text, `resilient_api_restarts_total{app="api",reason="${reason}"}`), 0, reason);
  t.is(sample(text, 'resilient_api_password_hash_jobs{state="waiting"}'), 0);
  t.is(sample(text, 'resilient_api_password_hash_rejections_total{operation="hash"}'), 0);
});

test.serial('backup metrics: none yet, a success, failing runs, and the backup app removed from PM2', async (t) => {
  const pm2 = await cluster();
  const SUCCESS = 'resilient_api_backup_last_success_timestamp_seconds{kind="scheduled"}';
  const FAILURE = 'resilient_api_backup_last_failure_timestamp_seconds';
  const FAILURES = 'resilient_api_backup_failures_total';
  const APP_FAILED = 'resilient_api_exits_total{app="backup",reason="failed"}';

  // No backup has ever run: the success time is 0, so `time() - it` is 56 years and the age alert fires.
  let text = await scrape();
  t.is(sample(text, SUCCESS), 0);
  t.is(sample(text, 'resilient_api_backup_last_success_timestamp_seconds{kind="predeploy"}'), 0);
  t.is(sample(text, FAILURES), 0);
  t.is(sample(text, FAILURE), 0);
  t.is(sample(text, 'resilient_api_backup_last_success_size_bytes{kind="scheduled"}'), undefined);

  // `npm run backup` (the job outside PM2): a scheduled backup, seen by every worker's scrape.
  const before = Math.floor(Date.now() / 1000);
  await run(process.execPath, [path.join(ROOT, 'dist', 'src', 'backup', 'main.js')], { cwd: ROOT, env: pm2.env, timeout: 120_000 });
  text = await scrape();
  const succeeded = sample(text, SUCCESS) ?? 0;
  t.true(succeeded >= before && succeeded <= Date.now() / 1000, `success at ${succeeded}, run started at ${before}`);
  t.true((sample(text, 'resilient_api_backup_last_success_size_bytes{kind="scheduled"}') ?? 0) > 100);
  const duration = sample(text, 'resilient_api_backup_last_success_duration_seconds{kind="scheduled"}');
  t.true(duration !== undefined && duration > 0 && duration < 120, `duration ${duration}`);
  t.is(sample(text, FAILURES), 0);

  // Every backup fails: the app relaunched with a database port where nothing listens (and
  // BACKUP_ON_START=1, so the launch itself backs up, as a deploy's does).
  const closedPort = String(await freePort());
  const failing = { ...pm2.env, MYSQL_PORT: closedPort, BACKUP_ON_START: '1' };
  const relaunch = async (): Promise<void> => {
    await pm2.pm2('delete', 'backup');
    await run(process.execPath, [PM2_BIN, 'start', path.join(ROOT, 'ecosystem.config.js'), '--only', 'backup', '--env', 'production'], {
      cwd: ROOT,
      env: failing,
      timeout: 60_000,
    });
  };
  await relaunch();
  text = await waitFor('the failed run in the metrics', async () => {
    const now = await scrape();
    return sample(now, FAILURES) === 1 && sample(now, APP_FAILED) === 1 ? now : undefined;
  }, 60_000, 500).catch((error: unknown) => {
    throw new Error(`${String(error)}\nbackend.log:\n${pm2.backendLog().slice(-3000)}`);
  });
  t.regex(pm2.backendLog(), / - backup - ERROR - Backup of .* failed: /);
  const failedAt = sample(text, FAILURE) ?? 0;
  // What ResilientApiBackupFailing compares: the last failure is newer than the last success.
  t.true(failedAt > succeeded, `failure at ${failedAt}, success at ${succeeded}`);
  t.is(sample(text, SUCCESS), succeeded, 'the last success stays what it was');

  // A second failing run: the counter goes on.
  await relaunch();
  await waitFor('the second failure', async () => sample(await scrape(), FAILURES) === 2, 60_000, 500);

  // The backup app removed from PM2 altogether: nothing runs, and the metrics keep saying when
  // the last backup was taken (the age grows until the alert fires).
  await pm2.pm2('delete', 'backup');
  t.false((await pm2.list()).some((proc) => proc.name === 'backup'));
  text = await scrape();
  t.is(sample(text, SUCCESS), succeeded);
  t.is(sample(text, FAILURES), 2);
  t.true((sample(text, FAILURE) ?? 0) >= failedAt);
});
