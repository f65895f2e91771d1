// API_MAX_MEMORY_MB: which api worker to replace because its RSS is past the bound. A bound set
// below what a fresh worker needs must not turn into endless reloads: each worker is reloaded
// for memory at most once per cooldown, and the refusal is reported once per cooldown too.

export interface WorkerMemory {
  readonly pmId: number;
  readonly pid: number;
  readonly rssBytes: number;
}

export type MemoryVerdict =
  | { readonly action: 'reload'; readonly worker: WorkerMemory }
  /** Past the bound again within the cooldown: say so once, do nothing. */
  | { readonly action: 'hold'; readonly worker: WorkerMemory; readonly reloadedAgoMs: number };

export class MemoryBound {
  /** When each worker (by PM2 id) was last reloaded for memory, and whether a hold was reported since. */
  private readonly reloads = new Map<number, { at: number; holdReported: boolean }>();

  constructor(
    readonly maxBytes: number,
    readonly cooldownMs: number,
  ) {}

  /** At most one verdict a call (one reload at a time), for the first worker past the bound. */
  check(workers: readonly WorkerMemory[], now: number): MemoryVerdict | undefined {
    if (this.maxBytes <= 0) return undefined;
    for (const worker of workers) {
      if (worker.rssBytes <= this.maxBytes) continue;
      const last = this.reloads.get(worker.pmId);
      if (last === undefined || now - last.at >= this.cooldownMs) return { action: 'reload', worker };
      if (!last.holdReported) {
        last.holdReported = true;
        return { action: 'hold', worker, reloadedAgoMs: now - last.at };
      }
    }
    return undefined;
  }

  /** A reload for memory was started for this worker. */
  reloaded(pmId: number, now: number): void {
    this.reloads.set(pmId, { at: now, holdReported: false });
  }
}
