// The load balancers the multi-host test runs: Debian's haproxy and nginx. The system's binary
// when the package is installed; else the package's .deb files, fetched with `apt-get download`
// into a cache folder outside the checkout and unpacked with `dpkg -x` (no system install, no
// maintainer script run, nothing started), run with the unpacked libraries on LD_LIBRARY_PATH.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type LoadBalancerName = 'haproxy' | 'nginx';

export interface LoadBalancerBinary {
  readonly name: LoadBalancerName;
  readonly path: string;
  /** Environment to run it with (the unpacked libraries, when unpacked). */
  readonly env: Readonly<Record<string, string>>;
  /** The first line of its version output. */
  readonly version: string;
  /** Where it came from: "system" or the cache folder. */
  readonly source: string;
}

/**
 * The packages to unpack per binary: the package itself and the libraries it needs that a
 * bookworm machine without it may lack (haproxy links Lua and OpenTracing; the rest, OpenSSL,
 * PCRE2, zlib, are on every Debian system). The ones already installed are harmless extras.
 */
const PACKAGES: Readonly<Record<LoadBalancerName, readonly string[]>> = {
  haproxy: ['haproxy', 'liblua5.3-0', 'libopentracing-c-wrapper0', 'libopentracing1'],
  nginx: ['nginx'],
};

const SYSTEM_PATHS: Readonly<Record<LoadBalancerName, string>> = { haproxy: '/usr/sbin/haproxy', nginx: '/usr/sbin/nginx' };

/** LB_PACKAGE_CACHE, else $TMPDIR/resilient-api-lb-packages: outside the checkout, reused by later runs. */
export function packageCacheDir(): string {
  return process.env['LB_PACKAGE_CACHE'] ?? path.join(os.tmpdir(), 'resilient-api-lb-packages');
}

function versionOf(binary: string, env: Record<string, string>): string {
  // haproxy -v prints on stdout, nginx -v on stderr.
  const result = spawnSync(binary, ['-v'], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 10_000 });
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  if (result.status !== 0) throw new Error(`${binary} -v failed (exit ${result.status}): ${text}`);
  return text.split('\n')[0] ?? text;
}

function libraryPath(root: string): string {
  const lib = path.join(root, 'usr', 'lib');
  const multiarch = existsSync(lib) ? readdirSync(lib).filter((entry) => entry.endsWith('-linux-gnu')).map((entry) => path.join(lib, entry)) : [];
  return [...multiarch, lib].join(':');
}

/** apt-get download, with one `apt-get update` when the package lists are missing or stale. */
function download(packages: readonly string[], into: string): void {
  // As root, apt hands downloads to the _apt user, which may not write into a root-owned folder.
  const args = ['-o', 'APT::Sandbox::User=root', '-q', 'download', ...packages];
  const first = spawnSync('apt-get', args, { cwd: into, encoding: 'utf8', timeout: 120_000 });
  if (first.status === 0) return;
  const update = spawnSync('apt-get', ['-q', 'update'], { encoding: 'utf8', timeout: 300_000 });
  const second = spawnSync('apt-get', args, { cwd: into, encoding: 'utf8', timeout: 120_000 });
  if (second.status !== 0) {
    throw new Error(
      `apt-get download ${packages.join(' ')} failed: ${(second.stderr || first.stderr || '').trim()}` +
        (update.status === 0 ? '' : ` (apt-get update failed too: ${(update.stderr ?? '').trim()})`),
    );
  }
}

/** The binary, from the system or the cache; fetches and unpacks the packages when neither has it. */
export function loadBalancerBinary(name: LoadBalancerName): LoadBalancerBinary {
  const system = SYSTEM_PATHS[name];
  if (existsSync(system)) return { name, path: system, env: {}, version: versionOf(system, {}), source: 'system' };

  const cache = packageCacheDir();
  const debs = path.join(cache, 'debs', name);
  const root = path.join(cache, 'root', name);
  const binary = path.join(root, 'usr', 'sbin', name);
  if (!existsSync(binary)) {
    mkdirSync(debs, { recursive: true });
    download(PACKAGES[name], debs);
    mkdirSync(root, { recursive: true });
    for (const deb of readdirSync(debs).filter((file) => file.endsWith('.deb'))) {
      execFileSync('dpkg', ['-x', path.join(debs, deb), root], { stdio: 'pipe' });
    }
    if (!existsSync(binary)) throw new Error(`the ${name} package unpacked into ${root} has no usr/sbin/${name}`);
  }
  const env = { LD_LIBRARY_PATH: libraryPath(root) };
  return { name, path: binary, env, version: versionOf(binary, env), source: cache };
}
