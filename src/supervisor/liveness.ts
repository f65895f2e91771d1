// Which api workers have a stuck event loop: each online worker is pinged over PM2's IPC every
// second and answers from its event loop (src/platform/liveness.ts). A worker silent for the timeout is
// stuck. Pure bookkeeping: the caller pings, kills and logs.

export interface OnlineWorker {
  readonly pmId: number;
  readonly pid: number;
}

export interface StuckWorker extends OnlineWorker {
  /** Since the last answer, or since the worker was first seen online when it never answered. */
  readonly silentMs: number;
}

export class LivenessTracker {
  /** The current run of each worker, by PM2 id: its pid and when it last answered. */
  private readonly runs = new Map<number, { pid: number; answeredAt: number }>();

  constructor(private readonly timeoutMs: number) {}

  /** A pong; one from another run (a reloaded worker still draining) does not count. */
  answered(pmId: number, pid: number, now: number): void {
    const run = this.runs.get(pmId);
    if (run !== undefined && run.pid === pid) run.answeredAt = now;
  }

  /**
   * Called once a tick with the workers PM2 reports online (only those: a worker still starting,
   * migrating under a lock, is not stuck); returns the ones silent past the timeout. A worker
   * seen for the first time, or with a new pid, gets a full timeout from now.
   */
  check(online: readonly OnlineWorker[], now: number): StuckWorker[] {
    const present = new Set<number>();
    const stuck: StuckWorker[] = [];
    for (const worker of online) {
      present.add(worker.pmId);
      const run = this.runs.get(worker.pmId);
      if (run === undefined || run.pid !== worker.pid) {
        this.runs.set(worker.pmId, { pid: worker.pid, answeredAt: now });
        continue;
      }
      const silentMs = now - run.answeredAt;
      if (silentMs >= this.timeoutMs) stuck.push({ ...worker, silentMs });
    }
    for (const pmId of [...this.runs.keys()]) if (!present.has(pmId)) this.runs.delete(pmId);
    return stuck;
  }

  /** Every worker gets a full timeout from now (the watcher itself could not listen for a while). */
  pardon(now: number): void {
    for (const run of this.runs.values()) run.answeredAt = now;
  }

  /** A worker was killed: its next run starts afresh. */
  forget(pmId: number): void {
    this.runs.delete(pmId);
  }
}
