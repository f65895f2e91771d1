// Whether a process still runs, from its pid alone: for files that name their owner by pid (a
// worker's metrics socket, a test file's claim on a shared file), to tell a live owner from one
// that died without cleaning up.

/** True while `pid` runs (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, but another user's (a pid reused by someone else is possible, and harmless).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
