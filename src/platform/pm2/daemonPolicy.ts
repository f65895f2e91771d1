// How the PM2 daemon hands connections to the api workers. The daemon is Node's cluster primary
// and reads NODE_CLUSTER_SCHED_POLICY once, when it starts. Under the default (round-robin) it
// accepts every connection itself and passes it to a worker over IPC; a connection passed to a
// worker that dies before taking it is never answered and never closed. Under `none` each worker
// accepts from the shared socket itself, and a dying worker strands nothing. Every daemon this
// project starts gets `none` (platform/pm2/operator.ts); this tells when one was started otherwise.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/logger';

export type DaemonPolicy =
  | { readonly kind: 'none'; readonly pid: number }
  | { readonly kind: 'round-robin'; readonly pid: number; readonly setting: string | undefined }
  | { readonly kind: 'unknown'; readonly reason: string };

export const SCHED_POLICY_VARIABLE = 'NODE_CLUSTER_SCHED_POLICY';

/** The way to restart a daemon so that it reads the policy, for the operator. */
export const RESTART_ADVICE =
  `to fix, restart the daemon with the policy: \`${SCHED_POLICY_VARIABLE}=none npx pm2 update\` ` +
  '(saves the process list, restarts the daemon and its apps: a few seconds without service)';

/** The value of `name` in a NUL-separated environ block, as /proc/<pid>/environ holds it. */
export function environValue(environ: string, name: string): string | undefined {
  const prefix = `${name}=`;
  const entry = environ.split('\0').find((item) => item.startsWith(prefix));
  return entry === undefined ? undefined : entry.slice(prefix.length);
}

/**
 * Reads the policy from the environment the daemon was started with ($PM2_HOME/pm2.pid, then
 * /proc/<pid>/environ: Linux only). Node's own default is `none` on Windows only.
 */
export function readDaemonPolicy(pm2Home: string, platform: NodeJS.Platform = process.platform): DaemonPolicy {
  if (platform === 'win32') return { kind: 'unknown', reason: "Windows has no /proc (Node's default there is already none)" };
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(pm2Home, 'pm2.pid'), 'utf8').trim());
  } catch {
    return { kind: 'unknown', reason: `no readable ${path.join(pm2Home, 'pm2.pid')}` };
  }
  if (!Number.isInteger(pid) || pid <= 0) return { kind: 'unknown', reason: 'pm2.pid holds no pid' };
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return { kind: 'unknown', reason: `cannot read the environment of the daemon (pid ${pid})` };
  }
  const setting = environValue(environ, SCHED_POLICY_VARIABLE);
  return setting === 'none' ? { kind: 'none', pid } : { kind: 'round-robin', pid, setting };
}

/** One line for the operator when the daemon hands connections round-robin; else undefined. */
export function daemonPolicyWarning(policy: DaemonPolicy): string | undefined {
  if (policy.kind !== 'round-robin') return undefined;
  const started = policy.setting === undefined ? `without ${SCHED_POLICY_VARIABLE}` : `with ${SCHED_POLICY_VARIABLE}=${policy.setting.slice(0, 20)}`;
  return (
    `The PM2 daemon (pid ${policy.pid}) was started ${started}: it hands each connection to an api worker ` +
    `round-robin, and a request handed to a worker that dies hangs until the client gives up; ${RESTART_ADVICE}`
  );
}

/** At the supervisor's start: one WARN line under round-robin, one INFO line when it cannot tell. */
export function reportDaemonPolicy(policy: DaemonPolicy, log: Pick<Logger, 'warn' | 'info'>): void {
  const warning = daemonPolicyWarning(policy);
  if (warning !== undefined) log.warn(warning);
  else if (policy.kind === 'unknown') log.info(`Cannot tell how the PM2 daemon hands connections to the workers: ${policy.reason}`);
}
