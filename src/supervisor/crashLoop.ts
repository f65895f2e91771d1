// The restart policy PM2's own options cannot express (docs/operations.md, "Supervision"): count the
// consecutive short runs of each worker; a run that lasted the stability window resets the count;
// past the limit the app must be stopped.

export interface CrashLoopPolicy {
  /** Restarts allowed for runs shorter than the window; the next short run stops the app. */
  readonly maxRestarts: number;
  /** A run at least this long is stable and resets the count. */
  readonly stableWindowMs: number;
}

export interface CrashVerdict {
  /** Consecutive short runs of this worker, this one included; 0 after a stable run. */
  readonly count: number;
  /** True when this exit is one too many: stop the app instead of restarting it. */
  readonly tripped: boolean;
}

export class CrashLoopDetector {
  private readonly shortRuns = new Map<string, number>();

  constructor(readonly policy: CrashLoopPolicy) {}

  /** Records a crash (any exit that was not a deliberate clean one) of `app`'s worker `worker`. */
  recordCrash(app: string, worker: string | number, uptimeMs: number): CrashVerdict {
    const key = `${app}#${worker}`;
    if (uptimeMs >= this.policy.stableWindowMs) {
      this.shortRuns.set(key, 0);
      return { count: 0, tripped: false };
    }
    const count = (this.shortRuns.get(key) ?? 0) + 1;
    this.shortRuns.set(key, count);
    return { count, tripped: count > this.policy.maxRestarts };
  }

  /** Forgets an app (stopped for good, deleted, or started afresh by an operator). */
  reset(app: string): void {
    for (const key of [...this.shortRuns.keys()]) if (key.startsWith(`${app}#`)) this.shortRuns.delete(key);
  }
}
