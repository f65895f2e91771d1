// Runs the shipped load balancer configurations in the root namespace, on a free loopback port:
// deploy/haproxy.cfg and deploy/nginx.conf rendered with only their marked blocks rewritten (the
// hosts, the listen address, where the process keeps its files). Each runs in the foreground as a
// process group of its own, recorded so that a killed run's leftovers can be removed.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../helpers/ports';
import { waitFor } from '../helpers/wait';
import type { LoadBalancerBinary } from './lbBinaries';
import { haproxyHosts, listenOn, nginxHosts, renderBlocks, replaceWith, shippedConfig, type UpstreamHost } from './render';
import { recordGroup } from './topology';

const run = promisify(execFile);

export interface RunningLoadBalancer {
  readonly url: string;
  readonly port: number;
  readonly configFile: string;
  /** The main process (its group's leader): where its CPU time is read. */
  readonly pid: number;
  /** What the process wrote (HAProxy's request log, nginx's errors). */
  output(): string;
  stop(): Promise<void>;
}

export interface RunningHaproxy extends RunningLoadBalancer {
  /** Each server's state (UP, DOWN, …) from the runtime API's `show stat`. */
  serverStates(): Promise<Record<string, string>>;
  /** The backend's totals so far: requests retried (wretr) and sent to another server (wredis). */
  retryCounts(): Promise<{ retries: number; redispatches: number }>;
  /** The runtime API's `show stat`: one record per proxy and server, by column name. */
  stat(): Promise<Array<Record<string, string>>>;
  /** One command on the runtime API (e.g. `set server api/h2 state drain`); its answer. */
  runtime(command: string): Promise<string>;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Stops a group leader politely, then its whole group for sure. */
async function stopGroup(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill(signal);
    await Promise.race([exited(child), new Promise((resolve) => setTimeout(resolve, 5000))]);
  }
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

function spawnGroup(binary: LoadBalancerBinary, args: string[], logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  const child = spawn(binary.path, args, { detached: true, env: { ...process.env, ...binary.env }, stdio: ['ignore', out, out] });
  if (child.pid === undefined) throw new Error(`${binary.name} did not start`);
  recordGroup(binary.name, child.pid);
  return child;
}

const readText = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/** One command on HAProxy's runtime API socket; resolves with the whole answer. */
function runtimeApi(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath, () => socket.end(`${command}\n`));
    let answer = '';
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer to "${command}"`)));
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

export async function startHaproxy(binary: LoadBalancerBinary, hosts: readonly UpstreamHost[], dir: string): Promise<RunningHaproxy> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const socketPath = path.join(dir, 'admin.sock');
  const configFile = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    configFile,
    renderBlocks(shippedConfig('haproxy.cfg'), {
      system: replaceWith('log stderr format raw local0 info', `stats socket ${socketPath} mode 600 level admin`),
      listen: listenOn('bind', `127.0.0.1:${port}`),
      hosts: haproxyHosts(hosts),
    }),
  );
  await run(binary.path, ['-c', '-f', configFile], { env: { ...process.env, ...binary.env } });
  const logFile = path.join(dir, 'haproxy.log');
  // -db: foreground, the test's child.
  const child = spawnGroup(binary, ['-db', '-f', configFile], logFile);
  /** `show stat`: one record per proxy and server, by column name. */
  const showStat = async (): Promise<Array<Record<string, string>>> => {
    const [header, ...rows] = (await runtimeApi(socketPath, 'show stat')).trim().split('\n');
    const columns = (header ?? '').replace(/^# /, '').split(',');
    return rows.map((row) => {
      const fields = row.split(',');
      return Object.fromEntries(columns.map((column, index) => [column, fields[index] ?? '']));
    });
  };
  const lb: RunningHaproxy = {
    url: `http://127.0.0.1:${port}`,
    port,
    configFile,
    pid: child.pid!,
    output: () => readText(logFile),
    async serverStates() {
      const states: Record<string, string> = {};
      for (const row of await showStat()) {
        if (row['pxname'] === 'api' && row['svname'] !== 'BACKEND') states[row['svname'] ?? ''] = row['status'] ?? '';
      }
      return states;
    },
    async retryCounts() {
      const backend = (await showStat()).find((row) => row['pxname'] === 'api' && row['svname'] === 'BACKEND');
      return { retries: Number(backend?.['wretr'] ?? 0), redispatches: Number(backend?.['wredis'] ?? 0) };
    },
    stat: showStat,
    runtime: (command) => runtimeApi(socketPath, command),
    stop: () => stopGroup(child, 'SIGTERM'),
  };
  await waitFor('HAProxy to see every host UP', async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}): ${lb.output()}`);
    const states = await lb.serverStates();
    return hosts.every((host) => states[host.name] === 'UP');
  }, 20_000, 200);
  return lb;
}

export interface RenderedNginx {
  readonly configFile: string;
  readonly port: number;
  readonly dir: string;
}

export async function renderNginx(hosts: readonly UpstreamHost[], dir: string): Promise<RenderedNginx> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const configFile = path.join(dir, 'nginx.conf');
  const file = (name: string): string => path.join(dir, name);
  writeFileSync(
    configFile,
    renderBlocks(shippedConfig('nginx.conf'), {
      system: replaceWith(`pid ${file('nginx.pid')};`, `error_log ${file('error.log')};`),
      paths: replaceWith(
        `access_log ${file('access.log')} upstream;`,
        `client_body_temp_path ${file('body')};`,
        `proxy_temp_path ${file('proxy')};`,
        `fastcgi_temp_path ${file('fastcgi')};`,
        `uwsgi_temp_path ${file('uwsgi')};`,
        `scgi_temp_path ${file('scgi')};`,
      ),
      listen: listenOn('listen', `127.0.0.1:${port}`),
      hosts: nginxHosts(hosts),
    }),
  );
  return { configFile, port, dir };
}

/** `nginx -t` on the rendered file: exit code and what it printed. */
export async function testNginx(binary: LoadBalancerBinary, rendered: RenderedNginx): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run(binary.path, ['-t', '-c', rendered.configFile, '-p', `${rendered.dir}/`], { env: { ...process.env, ...binary.env } });
    return { ok: true, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

export async function startNginx(binary: LoadBalancerBinary, rendered: RenderedNginx): Promise<RunningLoadBalancer> {
  const logFile = path.join(rendered.dir, 'nginx.out');
  // daemon off: the master stays the test's child (and its group's leader).
  const child = spawnGroup(binary, ['-c', rendered.configFile, '-p', `${rendered.dir}/`, '-g', 'daemon off;'], logFile);
  const url = `http://127.0.0.1:${rendered.port}`;
  const lb: RunningLoadBalancer = {
    url,
    port: rendered.port,
    configFile: rendered.configFile,
    pid: child.pid!,
    output: () => `${readText(logFile)}${readText(path.join(rendered.dir, 'error.log'))}`,
    // SIGQUIT: nginx's graceful shutdown.
    stop: () => stopGroup(child, 'SIGQUIT'),
  };
  await waitFor('nginx to listen', () => {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${lb.output()}`);
    return new Promise<boolean>((resolve) => {
      const socket = net.connect(rendered.port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
  }, 10_000, 100);
  return lb;
}
