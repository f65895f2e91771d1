// The multi-host benchmark's results (bench/multihost.ts): two tables on the terminal, and the
// same as Markdown and JSON in bench/results/<date>-multihost.md and .json, in the style of the
// main benchmark's files (bench/lib/report.ts).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fixed } from './context';
import type { RunInfo } from './report';

/** CPU time per answered request, µs, by component of the system. */
export interface ComponentCpu {
  readonly apiWorkers: number;
  readonly haproxy: number;
  readonly mariadb: number;
  /** Each serving host's PM2 daemon, supervisor and backup app. */
  readonly pm2AndSupervisor: number;
  /** The four above: what one request costs the servers. */
  readonly total: number;
  /** The benchmark's own process (autocannon): it shares the cores too. */
  readonly loadClient: number;
}

export interface ScalingRound {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly failed: number;
  readonly cpuMicrosPerRequest: ComponentCpu;
  /** Each serving host's share of the 2xx answers (HAProxy's per-server counters), %. */
  readonly sharePercent: readonly number[];
}

export interface ScalingRow {
  readonly hosts: number;
  readonly rounds: readonly ScalingRound[];
  /** Medians over the rounds. */
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuMicrosPerRequest: ComponentCpu;
  /** Each serving host's share of the 2xx answers over all the rounds, %. */
  readonly sharePercent: readonly number[];
  readonly failed: number;
}

export interface Outcomes {
  readonly requests: number;
  readonly failed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The first few failures, in words. */
  readonly failures: readonly string[];
}

export interface CutResult {
  readonly host: string;
  readonly seconds: number;
  readonly cutAtSeconds: number;
  readonly restoredAtSeconds: number;
  readonly get: Outcomes;
  readonly post: Outcomes;
  /** From the cut until HAProxy marked the host DOWN, ms (undefined: never seen). */
  readonly downAfterMs: number | undefined;
  /** From the link's return until HAProxy marked the host UP, ms. */
  readonly upAfterMs: number | undefined;
  readonly retries: number;
  readonly redispatches: number;
}

export interface MultihostSettings {
  readonly haproxy: string;
  readonly connections: number;
  readonly rounds: number;
  readonly seconds: number;
  readonly postConnections: number;
}

export interface MultihostResults {
  readonly settings: MultihostSettings;
  readonly scaling: readonly ScalingRow[];
  readonly cut: CutResult;
}

const percent = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(whole - part > 0 ? 3 : 0)}%` : 'n/a');

function outcomesRow(what: string, outcomes: Outcomes): string {
  const { requests, failed } = outcomes;
  return `| ${what} | ${requests} | ${failed} | ${percent(requests - failed, requests)} | ${fixed(outcomes.p50Ms)} ms | ${fixed(outcomes.p99Ms)} ms |`;
}

export function multihostMarkdown(info: RunInfo, results: MultihostResults): string {
  const { settings, scaling, cut } = results;
  const at = (ms: number | undefined): string => (ms === undefined ? 'not seen' : `${(ms / 1000).toFixed(1)} s`);
  const lines = [
    `# Multi-host benchmark ${info.date.slice(0, 10)}${info.quick ? ' (quick run)' : ''}`,
    '',
    `Commit ${info.commit}; ${info.machine}; Node ${info.node}; ${settings.haproxy}; ${info.date}.`,
    '',
    `\`GET /api/me\` with a bearer token through HAProxy (deploy/haproxy.cfg), three hosts of one api worker each ` +
      `(network namespaces on one machine, sharing its cores), one MariaDB; autocannon, ${settings.connections} connections, ` +
      `${settings.rounds} rounds of ${settings.seconds} s per number of hosts, alternating; medians. ` +
      'CPU is µs of CPU time per answered request, from /proc, of the processes of the hosts in the backend, HAProxy and MariaDB.',
    '',
    '| hosts in the backend | req/s | p50 | p99 | CPU per request | api workers | HAProxy | MariaDB | PM2 + supervisor | load client | share per host | failed |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...scaling.map((row) => {
      const cpu = row.cpuMicrosPerRequest;
      const shares = row.sharePercent.map((share) => share.toFixed(0)).join('/');
      return (
        `| ${row.hosts} | ${fixed(row.requestsPerSecond)} | ${fixed(row.p50Ms)} ms | ${fixed(row.p99Ms)} ms | ${fixed(cpu.total)} µs | ` +
        `${fixed(cpu.apiWorkers)} µs | ${fixed(cpu.haproxy)} µs | ${fixed(cpu.mariadb)} µs | ${fixed(cpu.pm2AndSupervisor)} µs | ${fixed(cpu.loadClient)} µs | ${shares} % | ${row.failed} |`
      );
    }),
    '',
    `Rounds (req/s): ${scaling.map((row) => `${row.hosts} host${row.hosts > 1 ? 's' : ''} ${row.rounds.map((round) => fixed(round.requestsPerSecond)).join(', ')}`).join('; ')}.`,
    '',
    `Link of ${cut.host} cut under load: ${cut.seconds} s of load, the link down at ${cut.cutAtSeconds} s and up at ${cut.restoredAtSeconds} s. ` +
      `HAProxy marked ${cut.host} DOWN ${at(cut.downAfterMs)} after the cut and UP ${at(cut.upAfterMs)} after the link came back; ` +
      `it retried ${cut.retries} requests and redispatched ${cut.redispatches}.`,
    '',
    '| load | sent | failed | succeeded | p50 | p99 |',
    '|---|---|---|---|---|---|',
    outcomesRow(`\`GET /api/me\`, ${settings.connections} connections (autocannon)`, cut.get),
    outcomesRow(`\`POST /api/register\`, ${settings.postConnections} connections`, cut.post),
    '',
  ];
  const failures = [...cut.get.failures.map((line) => `GET: ${line}`), ...cut.post.failures.map((line) => `POST: ${line}`)];
  if (failures.length > 0) lines.push('Failures:', '', ...failures.map((line) => `- ${line}`), '');
  return lines.join('\n');
}

/** Writes <date>-multihost.md and .json (then -multihost-2, -3… the same day); returns their paths. */
export function writeMultihostResults(dir: string, info: RunInfo, results: MultihostResults): { md: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const day = path.join(dir, `${info.date.slice(0, 10)}-multihost`);
  let stem = day;
  for (let run = 2; existsSync(`${stem}.md`) || existsSync(`${stem}.json`); run++) stem = `${day}-${run}`;
  const md = `${stem}.md`;
  const json = `${stem}.json`;
  writeFileSync(md, multihostMarkdown(info, results));
  writeFileSync(json, `${JSON.stringify({ ...info, ...results }, null, 2)}\n`);
  return { md, json };
}
