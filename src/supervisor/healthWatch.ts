// Probes the service's /health like a monitor would, and reports each transition once:
// healthy → unhealthy after a few failed probes in a row, unhealthy → healthy at the first good one.
// Until /health has answered 200 once, failures are the api starting up (the supervisor starts
// beside it at `pm2 start`): they count as unhealthy only after the start-up bound.
import { EventEmitter } from 'node:events';
import { probeHealth } from '../platform/util/healthProbe';

export interface HealthWatchEvents {
  unhealthy: [reason: string];
  recovered: [];
}

export class HealthWatch extends EventEmitter<HealthWatchEvents> {
  private state: 'unknown' | 'healthy' | 'unhealthy' = 'unknown';
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly startedAt = Date.now();

  constructor(
    /** The service's base URL (localUrl); /health is appended. */
    private readonly baseUrl: string,
    private readonly intervalMs: number,
    private readonly failuresBeforeAlert: number,
    /** How long the api may take to answer 200 for the first time (PM2's listen_timeout for its start). */
    private readonly startUpMs = 0,
  ) {
    super();
  }

  start(): void {
    // One probe at a time: with an interval shorter than the probe's 2 s timeout, overlapping
    // probes of one outage would each count as a failure.
    this.timer = setInterval(() => {
      this.checking ??= this.check().finally(() => (this.checking = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async check(): Promise<void> {
    const problem = await problemOf(this.baseUrl);
    if (problem === undefined) {
      this.failures = 0;
      if (this.state === 'unhealthy') this.emit('recovered');
      this.state = 'healthy';
      return;
    }
    this.failures++;
    const startingUp = this.state === 'unknown' && Date.now() - this.startedAt < this.startUpMs;
    if (this.failures >= this.failuresBeforeAlert && this.state !== 'unhealthy' && !startingUp) {
      this.state = 'unhealthy';
      this.emit('unhealthy', problem);
    }
  }
}

/** undefined when /health says 200; otherwise what went wrong. */
async function problemOf(baseUrl: string): Promise<string | undefined> {
  const answer = await probeHealth(baseUrl);
  if (answer.problem !== undefined) return `/health ${answer.problem}`;
  return answer.status === 200 ? undefined : `/health answered ${answer.status}: ${answer.body.slice(0, 200)}`;
}
