// Prometheus' own linter and rule tester for the tests, found the way the browser is
// (browser.ts): PROMTOOL when set, a promtool on PATH, else the one inside Debian's `prometheus`
// package, fetched once with `apt-get download` (no root, nothing installed) and unpacked into a
// folder in the temp directory that later runs reuse. So `npm test` passes on a fresh Debian
// machine with nothing installed by hand; elsewhere it fails saying what to install.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the unpacked promtool is kept between runs (outside the checkout). */
const CACHE_DIR = path.join(os.tmpdir(), 'resilient-api-promtool');
const CACHED = path.join(CACHE_DIR, 'promtool');

async function onPath(): Promise<string | undefined> {
  try {
    const { stdout } = await run('sh', ['-c', 'command -v promtool']);
    const found = stdout.trim();
    return found === '' ? undefined : found;
  } catch {
    return undefined;
  }
}

/** Fetches Debian's prometheus package into a private folder and keeps its promtool. */
async function fromDebianPackage(): Promise<string> {
  const staging = mkdtempSync(path.join(os.tmpdir(), 'resilient-api-promtool-'));
  try {
    await run('apt-get', ['download', '-qq', 'prometheus'], { cwd: staging, timeout: 120_000 });
    const [deb] = (await run('sh', ['-c', 'ls *.deb'], { cwd: staging })).stdout.trim().split('\n');
    if (deb === undefined || deb === '') throw new Error('apt-get download left no .deb');
    await run('dpkg-deb', ['-x', deb, 'root'], { cwd: staging, timeout: 120_000 });
    const unpacked = path.join(staging, 'root', 'usr', 'bin');
    // Renaming a whole folder is atomic: a concurrent run sees no promtool or a complete one.
    const ready = path.join(staging, 'ready');
    renameSync(unpacked, ready);
    rmSync(path.join(ready, 'prometheus'), { force: true }); // the server itself is not needed
    try {
      renameSync(ready, CACHE_DIR);
    } catch (error) {
      // Another run got there first: use its copy.
      if (!existsSync(CACHED)) throw error;
    }
    return CACHED;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The promtool to run; throws with what to install when there is none to be had. */
export async function findPromtool(): Promise<string> {
  const configured = process.env['PROMTOOL'];
  if (configured !== undefined && configured !== '') {
    if (!existsSync(configured)) throw new Error(`PROMTOOL=${configured} does not exist`);
    return configured;
  }
  const installed = await onPath();
  if (installed !== undefined) return installed;
  if (existsSync(CACHED)) return CACHED;
  try {
    return await fromDebianPackage();
  } catch (error) {
    throw new Error(
      'promtool is not installed and could not be fetched from Debian\'s prometheus package ' +
        `(${error instanceof Error ? error.message.split('\n')[0] : String(error)}): install Prometheus ` +
        '(`apt-get install prometheus` on Debian/Ubuntu) or set PROMTOOL to a promtool binary',
    );
  }
}
