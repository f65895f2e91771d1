// The supervisor's rotation of log files, on real files: renaming (the writers reopen on PM2's
// reloadLogs) and copy-and-truncate (for PM2's pm2.log, whose daemon keeps it open).
import test from 'ava';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyTruncateIfLarge, rotateIfLarge } from '../src/supervisor/logFiles';

const tempDir = (): string => mkdtempSync(path.join(os.tmpdir(), 'ra-rotation-'));

test('rotateIfLarge renames past the size bound, shifts older files and keeps at most `keep` of them', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'backend.log');
  writeFileSync(file, 'small\n');
  t.false(await rotateIfLarge(file, 100, 2));
  t.false(existsSync(`${file}.1`));
  for (const generation of ['first', 'second', 'third']) {
    writeFileSync(file, `${generation}\n`.repeat(50));
    t.true(await rotateIfLarge(file, 100, 2));
    t.false(existsSync(file), 'the writers create the fresh file when they reopen');
  }
  t.regex(readFileSync(`${file}.1`, 'utf8'), /^third/);
  t.regex(readFileSync(`${file}.2`, 'utf8'), /^second/);
  t.false(existsSync(`${file}.3`));
  t.false(await rotateIfLarge(path.join(dir, 'missing.log'), 100, 2));
});

test('copyTruncateIfLarge keeps the content in .1 and a writer holding the file open goes on at its new start', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pm2.log');
  // As the PM2 daemon holds pm2.log: opened once, in append mode.
  const daemon = openSync(file, 'a');
  t.teardown(() => closeSync(daemon));
  writeSync(daemon, 'old line\n'.repeat(20));
  t.false(await copyTruncateIfLarge(file, 1000, 3));
  t.true(await copyTruncateIfLarge(file, 100, 3));
  t.is(readFileSync(`${file}.1`, 'utf8'), 'old line\n'.repeat(20));
  t.is(statSync(file).size, 0);
  writeSync(daemon, 'new line\n');
  t.is(readFileSync(file, 'utf8'), 'new line\n', 'no hole of zeros before the new line');
});
