// The whole multi-host set-up, shared by the test and the scaling benchmark (bench/multihost.ts):
// the bridge, the database namespace with its mariadbd, N hosts each under its own PM2 daemon,
// the shipped deploy/haproxy.cfg in front of them, and one account registered through it. What
// was started is recorded in `parts` as it starts, so that stopCluster can take down a set-up
// that failed half-way.
import path from 'node:path';
import { request } from '../helpers/http';
import { startHostDatabase, type HostDatabase } from './database';
import { createHost, type Host } from './hosts';
import type { LoadBalancerBinary } from './lbBinaries';
import { type RunningHaproxy, startHaproxy } from './loadBalancers';
import { BRIDGE_ADDRESS, claimRunRoot, createBridge, createNamespace, keepLogs, removeLeftovers, RUN_ROOT, SUBNET_PREFIX } from './topology';

export interface ClusterParts {
  hosts: Host[];
  db?: HostDatabase;
  haproxy?: RunningHaproxy;
}

export interface ClusterOptions {
  readonly hostCount: number;
  readonly haproxyBinary: LoadBalancerBinary;
  /** Settings every host gets on top of the database, the shared JWT secret and the trusted proxy. */
  readonly env: Readonly<Record<string, string>>;
  /** The account registered through HAProxy, whose token is returned. */
  readonly user: { readonly username: string; readonly password: string };
}

export interface ClusterReady {
  /** A login token of `user`, from a login through HAProxy. */
  readonly token: string;
  /** When every host was ready. */
  readonly readyAt: number;
  /** How long the hosts took to start, ms. */
  readonly hostsStartMs: number;
}

export const hostName = (host: Host): string => host.id;
export const upstreams = (hosts: readonly Host[]): Array<{ name: string; address: string; port: number }> =>
  hosts.map((host) => ({ name: hostName(host), address: host.address, port: host.port }));

/** Claims the run's folder and subnet, starts everything, fills `parts` as it goes. */
export async function startCluster(parts: ClusterParts, options: ClusterOptions): Promise<ClusterReady> {
  claimRunRoot();
  createBridge();
  const db = await startHostDatabase(createNamespace('db', `${SUBNET_PREFIX}.2`), path.join(RUN_ROOT, 'db'));
  parts.db = db;
  const sharedEnv = {
    ...db.env,
    JWT_SECRET: 'multihost-shared-secret-that-is-long-enough-for-hs256',
    TRUSTED_PROXIES: BRIDGE_ADDRESS,
    ...options.env,
  };
  for (let index = 1; index <= options.hostCount; index++) {
    parts.hosts.push(createHost(index, `${SUBNET_PREFIX}.${10 + index}`, { sharedEnv }));
  }
  const started = Date.now();
  await Promise.all(parts.hosts.map((host) => host.start()));
  const readyAt = Date.now();
  parts.haproxy = await startHaproxy(options.haproxyBinary, upstreams(parts.hosts), path.join(RUN_ROOT, 'haproxy'));

  const lb = parts.haproxy.url;
  const registered = await request(lb, '/api/register', { body: options.user });
  if (registered.status !== 201) throw new Error(`registration through HAProxy answered ${registered.status}: ${registered.text}`);
  const login = await request(lb, '/api/login', { body: options.user });
  if (login.status !== 200) throw new Error(`login through HAProxy answered ${login.status}: ${login.text}`);
  return { token: String(login.body.token), readyAt, hostsStartMs: readyAt - started };
}

/**
 * Stops HAProxy, every host's PM2 daemon and the database politely, keeps the logs when
 * MULTIHOST_KEEP_LOGS names a folder, then removes the namespaces, bridge and run folder
 * (killing whatever is left in them), unless another run owns them. Safe after a set-up that
 * failed half-way.
 */
export async function stopCluster(parts: ClusterParts): Promise<void> {
  try {
    await parts.haproxy?.stop();
    await Promise.all(parts.hosts.map((host) => host.pm2('kill').catch(() => undefined)));
    await parts.db?.stop();
    const keep = process.env['MULTIHOST_KEEP_LOGS'];
    if (keep) keepLogs(keep);
  } finally {
    // Not when another run owns the folder (this one failed to claim it): that run's hosts stay.
    removeLeftovers();
  }
}
