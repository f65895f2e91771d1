// Once a second, per api worker (never through the shared port, where PM2's balancer picks
// one): is its event loop alive, and is its memory within API_MAX_MEMORY_MB? A stuck worker is
// killed with SIGKILL (a stuck loop cannot handle SIGINT) for PM2 to restart after its restart
// delay; a worker past the memory bound is replaced by a graceful reload of just that worker.
// Each tick also hands PM2's list to the supervisor, which catches exits the bus did not show.
import { LIVENESS_PING_TOPIC, LIVENESS_PONG_TYPE } from '../platform/liveness';
import type { Logger } from '../platform/logging/logger';
import type { SupervisorConfig } from './config';
import { LivenessTracker, type OnlineWorker } from './liveness';
import { MemoryBound } from './memoryBound';
import type { SupervisorMetrics } from './metrics';
import type { Bus, Pm2Process } from '../platform/pm2/pm2';
import { type Clock, type Supervisor, systemClock } from './supervisor';
import { asError } from '../platform/util/errors';

/** What the checks need from PM2 and the system. */
export interface WorkerControl {
  list(): Promise<Pm2Process[]>;
  sendData(pmId: number, topic: string, data: object): Promise<void>;
  reload(pmId: number): Promise<void>;
  kill(pid: number): void;
}

const MIB = 1024 * 1024;

export class WorkerChecks {
  private readonly liveness: LivenessTracker;
  private readonly memory: MemoryBound;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private reloading = false;
  private lastTickAt: number | undefined;

  constructor(
    private readonly config: SupervisorConfig,
    private readonly control: WorkerControl,
    private readonly supervisor: Pick<Supervisor, 'reconcile' | 'noteStuckKill' | 'noteMemoryReload'>,
    private readonly log: Logger,
    private readonly metrics: Pick<SupervisorMetrics, 'countReload'>,
    private readonly clock: Pick<Clock, 'now'> = systemClock,
  ) {
    this.liveness = new LivenessTracker(config.stuckWorkerTimeoutMs);
    this.memory = new MemoryBound(config.apiMaxMemoryBytes, config.memoryReloadCooldownMs);
  }

  attach(bus: Bus): void {
    bus.on(LIVENESS_PONG_TYPE, (packet) => {
      const pid = (packet.data as { pid?: unknown } | undefined)?.pid;
      if (typeof packet.process.pm_id === 'number' && typeof pid === 'number') {
        this.liveness.answered(packet.process.pm_id, pid, this.clock.now());
      }
    });
  }

  start(): void {
    // One tick at a time: a slow PM2 answer must not pile ticks up.
    this.timer = setInterval(() => {
      this.ticking ??= this.tick()
        .catch((error: unknown) => this.log.error('Supervisor worker check failed', asError(error)))
        .finally(() => (this.ticking = undefined));
    }, this.config.livenessIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    const processes = await this.control.list();
    const now = this.clock.now();
    await this.supervisor.reconcile(processes);
    const online = processes.filter(
      (proc) => proc.name === this.config.apiName && typeof proc.pm_id === 'number' && proc.pm2_env?.status === 'online' && (proc.pid ?? 0) > 0,
    );
    const workers: OnlineWorker[] = online.map((proc) => ({ pmId: proc.pm_id as number, pid: proc.pid as number }));

    // A supervisor that was itself held up (a loaded machine) has not read the answers that came
    // meanwhile: judge no one on this tick.
    const late = this.lastTickAt !== undefined && now - this.lastTickAt > 2 * this.config.livenessIntervalMs + 1000;
    this.lastTickAt = now;
    if (late) this.liveness.pardon(now);
    const stuck = this.liveness.check(workers, now);
    for (const worker of stuck) this.killStuck(worker.pmId, worker.pid, worker.silentMs);

    const sentAt = this.clock.now();
    await Promise.all(
      workers.map((worker) => this.control.sendData(worker.pmId, LIVENESS_PING_TOPIC, { sentAt }).catch(() => undefined)),
    );

    if (!this.reloading) this.checkMemory(online, now);
  }

  private killStuck(pmId: number, pid: number, silentMs: number): void {
    const silent = `${(silentMs / 1000).toFixed(1)} s`;
    this.log.error(
      `${this.config.apiName} worker ${pmId} (pid ${pid}) has not answered for ${silent} (event loop stuck); ` +
        `killing it (SIGKILL) for PM2 to restart`,
    );
    this.supervisor.noteStuckKill(this.config.apiName, pmId, pid, `event loop stuck, no answer for ${silent}`);
    this.liveness.forget(pmId);
    try {
      this.control.kill(pid);
    } catch (error) {
      this.log.warn(`Could not kill ${this.config.apiName} worker ${pmId} (pid ${pid})`, asError(error));
    }
  }

  private checkMemory(online: readonly Pm2Process[], now: number): void {
    const verdict = this.memory.check(
      online.map((proc) => ({ pmId: proc.pm_id as number, pid: proc.pid as number, rssBytes: proc.monit?.memory ?? 0 })),
      now,
    );
    if (verdict === undefined) return;
    const { pmId, pid, rssBytes } = verdict.worker;
    const over = `${this.config.apiName} worker ${pmId} (pid ${pid}) uses ${Math.round(rssBytes / MIB)} MB (RSS), ` +
      `over API_MAX_MEMORY_MB=${Math.round(this.memory.maxBytes / MIB)}`;
    if (verdict.action === 'hold') {
      this.log.warn(
        `${over}, but it was reloaded for memory ${Math.round(verdict.reloadedAgoMs / 1000)} s ago; not reloading it again ` +
          `within ${Math.round(this.memory.cooldownMs / 60_000)} minutes of that (is the bound below what a worker needs?)`,
      );
      return;
    }
    this.log.warn(`${over}; reloading it gracefully (its replacement is ready before it drains)`);
    this.memory.reloaded(pmId, now);
    this.metrics.countReload(this.config.apiName, 'memory');
    this.reloading = true;
    this.supervisor.noteMemoryReload(this.config.apiName, pmId);
    this.control.reload(pmId).then(
      () => this.log.info(`${this.config.apiName} worker ${pmId} replaced (memory bound)`),
      (error: unknown) => this.log.error(`Could not reload ${this.config.apiName} worker ${pmId} for memory`, asError(error)),
    ).finally(() => (this.reloading = false));
  }
}
