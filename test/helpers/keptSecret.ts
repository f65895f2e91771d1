// Production without JWT_SECRET keeps its secret in .jwt-secret in its working directory, which
// under PM2 and `npm start` is the project root: tests of that door cannot move the file out of
// the checkout. They take it through here instead, and the last test file using it removes it,
// unless it was there before the tests (an operator's own), so a run leaves nothing behind.
//
// Test files run in parallel processes that may share the file (one must not delete it while
// another's workers still read it), so the users are counted by pid in a folder under /tmp, with
// a note, written once by the first user of a round, of whether the file was there before. Every
// look at or change to that folder happens under a lock: two files registering or leaving at the
// same moment must not each believe they are the only user.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from '../../src/platform/util/processAlive';
import { ROOT } from './service';

export const KEPT_JWT_SECRET = path.join(ROOT, '.jwt-secret');

/** The note's name, and what it says: whether the file was there before this round of users. */
const RECORDED = 'recorded';
const PREEXISTING = 'preexisting';
const MADE_BY_TESTS = 'made by tests';

const LOCK_POLL_MS = 10;
const LOCK_TIMEOUT_MS = 60_000;
/** The lock is held for a few file operations: one this old was left by a process killed holding it. */
const STALE_LOCK_MS = 10_000;

interface UsersFolder {
  readonly dir: string;
  readonly lock: string;
}

function usersFolder(): UsersFolder {
  // One folder per checkout, so two checkouts on one machine do not count each other.
  const dir = path.join(os.tmpdir(), `resilient-api-jwt-secret-users-${Buffer.from(ROOT).toString('hex').slice(-32)}`);
  return { dir, lock: `${dir}.lock` };
}

function pauseSync(ms: number): void {
  // The callers are synchronous (test.before, test.after.always): a blocking pause, no event loop.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `work` holding the folder's lock: a directory, which only one process can create. */
function withLock<T>({ lock }: UsersFolder, work: () => T): T {
  const giveUpAt = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let heldForMs = 0;
    try {
      heldForMs = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue; // released meanwhile: try again at once
    }
    // Two processes breaking the same stale lock at once could both get in; that needs a process
    // killed inside the lock first, and the worst outcomes (a failed hook, a .jwt-secret left behind)
    // are ones CI reports.
    if (heldForMs > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
    else if (Date.now() > giveUpAt) throw new Error(`${lock} has been taken for ${LOCK_TIMEOUT_MS} ms`);
    else pauseSync(LOCK_POLL_MS);
  }
  try {
    return work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The pids registered in `dir` (a killed test process leaves its file behind). */
function registeredPids(dir: string): number[] {
  return readdirSync(dir)
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function readRecorded(dir: string): string | undefined {
  try {
    return readFileSync(path.join(dir, RECORDED), 'utf8');
  } catch {
    return undefined;
  }
}

/** The first user of a round: forget the files of killed runs, and note whether the file is there. */
function startRound(folder: UsersFolder, deadPids: readonly number[]): void {
  for (const pid of deadPids) rmSync(path.join(folder.dir, String(pid)), { force: true });
  // A killed run's note stays true while the file it made is still there (it is the tests', not
  // an operator's); any other note from a dead round is replaced by what is true now.
  const previous = readRecorded(folder.dir);
  if (previous !== undefined && !(previous === MADE_BY_TESTS && existsSync(KEPT_JWT_SECRET))) {
    rmSync(path.join(folder.dir, RECORDED), { force: true });
  }
}

/**
 * Registers this test file as a user of the project's .jwt-secret; call the function it returns
 * when the file's services are gone (test.after.always).
 */
export function useKeptJwtSecret(): () => void {
  const folder = usersFolder();
  const ownFile = path.join(folder.dir, String(process.pid));
  withLock(folder, () => {
    mkdirSync(folder.dir, { recursive: true });
    const pids = registeredPids(folder.dir).filter((pid) => pid !== process.pid);
    const livePids = pids.filter(isAlive);
    writeFileSync(ownFile, '');
    if (livePids.length === 0) startRound(folder, pids);
    // Once per round ('wx' fails when a user before this one wrote it), before any service of
    // this round can have made the file.
    try {
      writeFileSync(path.join(folder.dir, RECORDED), existsSync(KEPT_JWT_SECRET) ? PREEXISTING : MADE_BY_TESTS, { flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  });
  return () => {
    withLock(folder, () => {
      rmSync(ownFile, { force: true });
      const pids = registeredPids(folder.dir);
      if (pids.some(isAlive)) return; // another test file's workers may still read the secret
      // The last user: remove the file only when the note says the tests made it (a missing or
      // unreadable note keeps it: better a leftover that CI reports than an operator's secret lost).
      if (readRecorded(folder.dir) === MADE_BY_TESTS) rmSync(KEPT_JWT_SECRET, { force: true });
      for (const pid of pids) rmSync(path.join(folder.dir, String(pid)), { force: true });
      rmSync(path.join(folder.dir, RECORDED), { force: true });
      try {
        rmdirSync(folder.dir);
      } catch {
        // Something else in it: harmless, and not this file's to delete.
      }
    });
  };
}
