// One scrape for the whole PM2 cluster. PM2 is the cluster master, so prom-client's
// AggregatorRegistry.clusterMetrics() (which asks workers through the master's IPC) cannot work.
// Instead every process serves its own registry as JSON on a Unix socket in one folder, named
// <label>-<pid>.sock; the worker that receives GET /metrics reads its own registry directly,
// asks every sibling socket in the folder at once (each bounded by PEER_TIMEOUT_MS) and merges
// them with AggregatorRegistry.aggregate(): counters and histograms add up, gauges follow each
// metric's aggregator or carry a `worker` label.
//
// - The folder is the registry of processes: a socket is there while its process listens.
// - The pid in the name makes every file unique: a reloaded worker (same pm_id, new process)
//   never replaces or unlinks the socket of the one it replaces, and both count while both run.
// - A socket left by a killed process (no close, so no unlink) is recognised by its dead pid,
//   removed, and never waited for; a live but stalled sibling costs at most PEER_TIMEOUT_MS.
// - Nothing runs between scrapes: no timers, no pushes, no IPC through PM2.
import { mkdir, readdir, unlink } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { AggregatorRegistry, type PrometheusContentType, Registry } from 'prom-client';
import type { Logger } from '../logging/logger';
import { registerCustom } from './lazyHistogram';
import { BurstSharedValue } from './scrapeSharing';
import { messageOf } from '../util/errors';
import { isAlive } from '../util/processAlive';

/** A sibling that has not answered within this is left out of the scrape (and counted as such). */
export const PEER_TIMEOUT_MS = 1000;
const MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024;

export type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

/** One process's metrics at one moment. */
export interface Snapshot {
  /** The socket label: `api-0` (app and PM2 id), `supervisor`, or `api` outside PM2. */
  readonly source: string;
  readonly pid: number;
  readonly metrics: MetricJson[];
}

export type SourceState = 'ok' | 'timeout' | 'gone' | 'error';

export interface ClusterView {
  readonly snapshots: Snapshot[];
  readonly sources: Record<SourceState, number>;
}

export async function snapshotOf(source: string, registry: Registry): Promise<Snapshot> {
  return { source, pid: process.pid, metrics: await registry.getMetricsAsJSON() };
}

/** Serves this process's registry to its siblings (JSON) and to operators (text, one process). */
export class MetricsSocket {
  readonly path: string;
  private server: http.Server | undefined;

  constructor(
    readonly dir: string,
    private readonly label: string,
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    this.path = path.join(dir, `${label}-${process.pid}.sock`);
  }

  /** Resolves false (with a warning) when the socket cannot be made: the process then serves alone. */
  async listen(): Promise<boolean> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await unlink(this.path).catch(() => undefined);
      const server = http.createServer((req, res) => void this.answer(req, res));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // exclusive: a cluster worker would otherwise ask the cluster master (PM2's daemon) to
        // own the socket, which then outlives the worker and hangs whoever connects.
        server.listen({ path: this.path, exclusive: true }, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      server.on('error', (error) => this.log.warn(`Metrics socket ${this.path}: ${error.message}`));
      this.server = server;
      return true;
    } catch (error) {
      this.log.warn(
        `Cannot serve metrics on ${this.path} (${messageOf(error)}); ` +
          'a scrape of a sibling will miss this process (see METRICS_SOCKET_DIR)',
      );
      return false;
    }
  }

  /** Closing a Unix socket server also removes its file. */
  close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Plain statusCode/setHeader/end: restify patches ServerResponse#writeHead in every server of
    // the process, and its version does not return the response, so nothing may be chained on it.
    const reply = (status: number, contentType: string, body: string): void => {
      res.statusCode = status;
      res.setHeader('Content-Type', contentType);
      res.end(body);
    };
    try {
      if (req.url === '/metrics.json') {
        reply(200, 'application/json', JSON.stringify(await snapshotOf(this.label, this.registry)));
      } else if (req.url === '/metrics') {
        reply(200, this.registry.contentType, await this.registry.metrics());
      } else {
        reply(404, 'text/plain', 'not found');
      }
    } catch (error) {
      if (!res.headersSent) reply(500, 'text/plain', messageOf(error));
      else res.destroy();
    }
  }
}

/** This process's snapshot plus every sibling's that answers in time. */
export async function gatherCluster(dir: string, own: Snapshot, ownSocket: string | undefined): Promise<ClusterView> {
  const sources: Record<SourceState, number> = { ok: 1, timeout: 0, gone: 0, error: 0 };
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.sock'));
  } catch {
    names = [];
  }
  const peers = names.map((name) => path.join(dir, name)).filter((file) => file !== ownSocket);
  const results = await Promise.all(peers.map((file) => askPeer(file)));
  const snapshots = [own];
  for (const result of results) {
    if (typeof result === 'string') sources[result]++;
    else {
      snapshots.push(result);
      sources.ok++;
    }
  }
  return { snapshots, sources };
}

/** The metrics of every snapshot merged as one registry, plus how complete the merge is. */
export function aggregate(view: ClusterView): Registry {
  const merged = AggregatorRegistry.aggregate<PrometheusContentType>(view.snapshots.map((snapshot) => snapshot.metrics));
  const name = 'resilient_api_metrics_cluster_sources';
  const help = 'Processes in this scrape (ok, this worker included) and those left out (timeout, gone, error)';
  registerCustom(merged, {
    name,
    help,
    type: 'gauge',
    aggregator: 'first',
    get: () => ({
      name,
      help,
      type: 'gauge',
      aggregator: 'first',
      values: Object.entries(view.sources).map(([state, value]) => ({ labels: { state }, value })),
    }),
  });
  return merged;
}

/** The peer's snapshot, or why there is none. */
async function askPeer(file: string): Promise<Snapshot | SourceState> {
  const pid = Number(/-(\d+)\.sock$/.exec(file)?.[1]);
  if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) {
    // Left by a process that died without closing it: nobody will ever answer there.
    await unlink(file).catch(() => undefined);
    return 'gone';
  }
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Snapshot | SourceState): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const req = http.get({ socketPath: file, path: '/metrics.json', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_SNAPSHOT_BYTES) req.destroy();
        else chunks.push(chunk);
      });
      res.on('end', () => {
        try {
          if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
          finish(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Snapshot);
        } catch {
          finish('error');
        }
      });
      res.on('error', () => finish('error'));
    });
    const timer = setTimeout(() => {
      finish('timeout');
      req.destroy();
    }, PEER_TIMEOUT_MS);
    req.on('error', (error: NodeJS.ErrnoException) =>
      finish(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? 'gone' : 'error'),
    );
  });
}

/**
 * The metrics a scrape of this process answers with: its own, and its siblings' when it has a
 * socket. Concurrent scrapes share one gathering (and one rendering) in flight, and a flood of
 * them reuses the last result for up to a second (scrapeSharing.ts), so scrapes cost the
 * siblings a bounded number of round trips however many arrive.
 */
export class ClusterMetrics {
  private readonly sharedView = new BurstSharedValue(() => this.gather());
  private readonly sharedText = new BurstSharedValue(async () => {
    const cluster = aggregate(await this.sharedView.get());
    return (this.deployment === undefined ? cluster : Registry.merge([cluster, this.deployment])).metrics();
  });

  /**
   * `deployment`: metrics of the deployment as a whole (the backups), read once per scrape by
   * the process that answers it rather than by every worker.
   */
  constructor(
    private readonly registry: Registry,
    private readonly label: string,
    private readonly socket: MetricsSocket | undefined,
    private readonly deployment?: Registry,
  ) {}

  view(): Promise<ClusterView> {
    return this.sharedView.get();
  }

  /** Prometheus text for the whole cluster. */
  text(): Promise<string> {
    return this.sharedText.get();
  }

  private async gather(): Promise<ClusterView> {
    const own = await snapshotOf(this.label, this.registry);
    if (!this.socket) return { snapshots: [own], sources: { ok: 1, timeout: 0, gone: 0, error: 0 } };
    return gatherCluster(this.socket.dir, own, this.socket.path);
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
