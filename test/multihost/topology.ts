// The multi-host test's network: a Linux bridge in the root namespace with one address (where the
// load balancer's connections to the hosts come from), and one network namespace per host and
// for the database, each joined to the bridge by a veth pair. Everything is named with PREFIX,
// lives under RUN_ROOT, and is removed at the end, or at the start of the next run when a run was
// killed. Only processes inside these namespaces, and load balancers this test started (their
// process groups, recorded under RUN_ROOT), are ever signalled.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const PREFIX = 'ramh';
/** Short on purpose: PM2's socket paths live under it, and a long socket path hangs the daemon. */
export const RUN_ROOT = `/tmp/${PREFIX}`;
const OWNER_FILE = path.join(RUN_ROOT, 'owner.pid');
/** A folder of `<name>.pgid` files: the load balancers' process groups. */
const GROUPS_DIR = path.join(RUN_ROOT, 'groups');

/** A private range no interface or route of this machine uses (checked before use). */
export const SUBNET_PREFIX = '10.77.0';
export const SUBNET = `${SUBNET_PREFIX}.0/24`;
export const BRIDGE = `${PREFIX}-br`;
export const BRIDGE_ADDRESS = `${SUBNET_PREFIX}.1`;

export interface Namespace {
  readonly name: string;
  readonly address: string;
  /** The root-namespace end of its veth pair, on the bridge: set it down to cut the link. */
  readonly link: string;
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `ip`, ignoring failure (removing what may not exist). */
function ipQuiet(...args: string[]): void {
  spawnSync('ip', args, { stdio: 'ignore' });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The namespaces and links of PREFIX present now. */
function ourNamespaces(): string[] {
  return ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(`${PREFIX}-`));
}

/** Kills the load balancers a previous run recorded, if their group leader is still that binary. */
function killRecordedGroups(): void {
  if (!existsSync(GROUPS_DIR)) return;
  for (const file of readdirSync(GROUPS_DIR)) {
    const pgid = Number(readFileSync(path.join(GROUPS_DIR, file), 'utf8').trim());
    const binary = file.replace(/\.pgid$/, '');
    if (!Number.isInteger(pgid) || pgid <= 1 || !alive(pgid)) continue;
    let exe = '';
    try {
      exe = readlinkSync(`/proc/${pgid}/exe`);
    } catch {
      continue;
    }
    if (path.basename(exe) !== binary) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Records a load balancer's process group (its pid: it was spawned detached, as a group leader). */
export function recordGroup(binary: string, pgid: number): void {
  mkdirSync(GROUPS_DIR, { recursive: true });
  writeFileSync(path.join(GROUPS_DIR, `${binary}.pgid`), String(pgid));
}

/**
 * Removes everything a run leaves: processes in our namespaces (PM2 daemons and their apps,
 * mariadbd), recorded load balancers, the namespaces, the bridge, RUN_ROOT. Safe to call twice.
 */
export function removeTopology(): void {
  for (const ns of ourNamespaces()) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split('\n').map(Number).filter((value) => Number.isInteger(value) && value > 1)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  killRecordedGroups();
  for (const ns of ourNamespaces()) ipQuiet('netns', 'del', ns);
  ipQuiet('link', 'del', BRIDGE);
  // Veth ends left in the root namespace by an interrupted set-up.
  for (const line of ip('-o', 'link', 'show').split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name?.startsWith(`${PREFIX}-`)) ipQuiet('link', 'del', name);
  }
  rmSync(RUN_ROOT, { recursive: true, force: true });
}

/**
 * Copies the run's logs (each host's backend.log and supervisor.log, PM2's own log, the load
 * balancers' logs and rendered configurations) to `destination` before they are removed: set
 * MULTIHOST_KEEP_LOGS=<folder> to read them after a failed run. The database's files are left out.
 */
export function keepLogs(destination: string): void {
  if (!existsSync(RUN_ROOT)) return;
  cpSync(RUN_ROOT, destination, {
    recursive: true,
    filter: (source) => {
      const stat = lstatSync(source);
      if (stat.isDirectory()) return source !== path.join(RUN_ROOT, 'db');
      return stat.isFile() && !source.endsWith('.sql.gz');
    },
  });
}

/** After a run: removes what a killed test process left, unless another run is in progress. */
export function removeLeftovers(): void {
  if (existsSync(OWNER_FILE)) {
    const owner = Number(readFileSync(OWNER_FILE, 'utf8').trim());
    if (owner !== process.pid && alive(owner)) return;
  }
  removeTopology();
}

/** Takes RUN_ROOT for this process, after removing a killed run's leftovers; refuses while another run lives. */
export function claimRunRoot(): void {
  if (existsSync(OWNER_FILE)) {
    const owner = Number(readFileSync(OWNER_FILE, 'utf8').trim());
    if (owner !== process.pid && alive(owner)) {
      throw new Error(`another multi-host run (pid ${owner}) is in progress: its namespaces and ${RUN_ROOT} are in use`);
    }
  }
  removeTopology();
  const used = ip('-4', '-o', 'addr', 'show') + ip('-4', 'route', 'show');
  if (used.includes(`${SUBNET_PREFIX}.`)) {
    throw new Error(`${SUBNET} is already used on this machine (ip addr / ip route); the multi-host test needs it free`);
  }
  mkdirSync(RUN_ROOT, { recursive: true });
  writeFileSync(OWNER_FILE, String(process.pid));
}

export function createBridge(): void {
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${BRIDGE_ADDRESS}/24`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
}

/** A namespace with loopback up and `eth0` at `address`, joined to the bridge. */
export function createNamespace(shortName: string, address: string): Namespace {
  const name = `${PREFIX}-${shortName}`;
  const link = `${PREFIX}-${shortName}-v`;
  const inner = `${PREFIX}-${shortName}-i`;
  ip('netns', 'add', name);
  ip('link', 'add', link, 'type', 'veth', 'peer', 'name', inner);
  ip('link', 'set', inner, 'netns', name);
  ip('link', 'set', link, 'master', BRIDGE);
  ip('link', 'set', link, 'up');
  ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  ip('netns', 'exec', name, 'ip', 'link', 'set', inner, 'name', 'eth0');
  ip('netns', 'exec', name, 'ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  ip('netns', 'exec', name, 'ip', 'link', 'set', 'eth0', 'up');
  return { name, address, link };
}

/** Cuts (down) or restores (up) a namespace's link to the bridge. */
export function setLink(ns: Namespace, state: 'up' | 'down'): void {
  ip('link', 'set', ns.link, state);
}
