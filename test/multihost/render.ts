// Renders a shipped load balancer configuration (deploy/haproxy.cfg, deploy/nginx.conf) for a
// test run: only its marked blocks (`# BEGIN name` … `# END name`) are rewritten, so every
// other line the test runs is the operator's line.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/service';

export interface UpstreamHost {
  /** The name HAProxy shows (HOST_ID). */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** Rewrites the lines of one block (its marker lines excluded). */
export type BlockRewrite = (lines: readonly string[]) => readonly string[];

export function shippedConfig(file: 'haproxy.cfg' | 'nginx.conf'): string {
  return readFileSync(path.join(ROOT, 'deploy', file), 'utf8');
}

/** The lines between `# BEGIN name` and `# END name`; throws when the block is missing. */
export function blockLines(text: string, name: string): readonly string[] {
  const lines = text.split('\n');
  const begin = lines.findIndex((line) => new RegExp(`^\\s*# BEGIN ${name}\\b`).test(line));
  const end = lines.findIndex((line, index) => index > begin && new RegExp(`^\\s*# END ${name}\\b`).test(line));
  if (begin === -1 || end === -1) throw new Error(`no "# BEGIN ${name}" … "# END ${name}" block in the shipped configuration`);
  return lines.slice(begin + 1, end);
}

/** The text with each named block's lines rewritten; the marker lines and everything else kept. */
export function renderBlocks(text: string, rewrites: Readonly<Record<string, BlockRewrite>>): string {
  let rendered = text;
  for (const [name, rewrite] of Object.entries(rewrites)) {
    const lines = rendered.split('\n');
    const begin = lines.findIndex((line) => new RegExp(`^\\s*# BEGIN ${name}\\b`).test(line));
    const end = lines.findIndex((line, index) => index > begin && new RegExp(`^\\s*# END ${name}\\b`).test(line));
    if (begin === -1 || end === -1) throw new Error(`no "# BEGIN ${name}" … "# END ${name}" block in the shipped configuration`);
    rendered = [...lines.slice(0, begin + 1), ...rewrite(lines.slice(begin + 1, end)), ...lines.slice(end)].join('\n');
  }
  return rendered;
}

const indentOf = (line: string): string => /^\s*/.exec(line)?.[0] ?? '';

/** The block's first directive line (comments skipped): the template of a host line. */
function templateLine(lines: readonly string[], directive: string): string {
  const template = lines.find((line) => new RegExp(`^\\s*${directive}\\s`).test(line));
  if (template === undefined) throw new Error(`the hosts block has no "${directive}" line to follow`);
  return template;
}

/** HAProxy: `server <name> <address:port> <options…>`, one per host, options as shipped. */
export function haproxyHosts(hosts: readonly UpstreamHost[]): BlockRewrite {
  return (lines) => {
    const template = templateLine(lines, 'server');
    return hosts.map((host) => template.replace(/^(\s*server\s+)\S+(\s+)\S+/, `$1${host.name}$2${host.address}:${host.port}`));
  };
}

/** nginx: `server <address:port> <parameters…>;`, one per host, parameters as shipped. */
export function nginxHosts(hosts: readonly UpstreamHost[]): BlockRewrite {
  return (lines) => {
    const template = templateLine(lines, 'server');
    return hosts.map((host) => template.replace(/^(\s*server\s+)[^\s;]+/, `$1${host.address}:${host.port}`));
  };
}

/** Replaces the listen address of the block's `bind` (HAProxy) or `listen` (nginx) line. */
export function listenOn(directive: 'bind' | 'listen', address: string): BlockRewrite {
  return (lines) => {
    const template = templateLine(lines, directive);
    return [template.replace(new RegExp(`^(\\s*${directive}\\s+)[^\\s;]+`), `$1${address}`)];
  };
}

/** Replaces a block with the given lines, at the block's own indentation. */
export function replaceWith(...replacement: string[]): BlockRewrite {
  return (lines) => {
    const indent = indentOf(lines.find((line) => line.trim() !== '') ?? '');
    return replacement.map((line) => `${indent}${line}`);
  };
}
