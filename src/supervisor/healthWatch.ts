// Probes the service's /health like a monitor would, and reports each transition once:
// healthy → unhealthy after a few failed probes in a row, unhealthy → healthy at the first good one.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';

export interface HealthWatchEvents {
  unhealthy: [reason: string];
  recovered: [];
}

const PROBE_TIMEOUT_MS = 2000;

export class HealthWatch extends EventEmitter<HealthWatchEvents> {
  private state: 'unknown' | 'healthy' | 'unhealthy' = 'unknown';
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly intervalMs: number,
    private readonly failuresBeforeAlert: number,
  ) {
    super();
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async check(): Promise<void> {
    const problem = await probe(this.url);
    if (problem === undefined) {
      this.failures = 0;
      if (this.state === 'unhealthy') this.emit('recovered');
      this.state = 'healthy';
      return;
    }
    this.failures++;
    if (this.failures >= this.failuresBeforeAlert && this.state !== 'unhealthy') {
      this.state = 'unhealthy';
      this.emit('unhealthy', problem);
    }
  }
}

/** undefined when /health says 200; otherwise what went wrong. */
function probe(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const client = url.startsWith('https:') ? https : http;
    // Our own service on this host, possibly with a self-signed certificate.
    const req = client.get(url, { timeout: PROBE_TIMEOUT_MS, rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk.slice(0, 1000)));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(undefined);
        else resolve(`/health answered ${res.statusCode}: ${body.slice(0, 200)}`);
      });
      res.on('error', (error) => resolve(`/health failed: ${error.message}`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(`/health unreachable: ${error.code ?? error.message}`));
  });
}
