// The benchmark code on a tiny run (2 s per scenario), so it cannot rot: every scenario runs to
// the end and lands in the table and the JSON. Its figures are not judged here: speed is
// measured by `npm run bench`, not asserted by tests.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ROOT } from './helpers/service';

test('npm run bench -- --quick runs every scenario and writes the table and the JSON', (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'ra-bench-out-'));
  try {
    const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'run.ts'), '--quick', '--out', out], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 10 * 60 * 1000,
    });
    t.is(run.status, 0, run.stderr);
    const files = readdirSync(out).sort();
    t.is(files.length, 2, files.join(', '));
    const json = JSON.parse(readFileSync(path.join(out, files.find((f) => f.endsWith('.json')) ?? ''), 'utf8'));
    const md = readFileSync(path.join(out, files.find((f) => f.endsWith('.md')) ?? ''), 'utf8');
    t.true(json.quick);
    t.regex(json.commit, /^[0-9a-f]{7}/);
    // Every scenario bench/run.ts lists, none left out of the table.
    const listed = readFileSync(path.join(ROOT, 'bench', 'run.ts'), 'utf8').match(/^ {2}\['[a-z-]+', /gm) ?? [];
    t.true(listed.length >= 11, `bench/run.ts lists ${listed.length} scenarios`);
    t.is(json.results.length, listed.length);
    for (const result of json.results) {
      t.notRegex(result.measured, /^failed to run/, `${result.scenario}: ${result.measured}`);
      t.true(Object.keys(result.figures).length > 0, result.scenario);
      t.true(md.includes(`| ${result.scenario} |`), result.scenario);
    }
    t.regex(run.stdout, /\| scenario \| measured \| target \| met \|/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
