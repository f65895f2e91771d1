// The results: a table on the terminal, and the same as Markdown and JSON in bench/results/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ScenarioResult } from './context';

export interface RunInfo {
  readonly date: string;
  readonly commit: string;
  readonly machine: string;
  readonly node: string;
  readonly quick: boolean;
}

export function runInfo(root: string, quick: boolean): RunInfo {
  const git = (...args: string[]): string => {
    try {
      return execFileSync('git', args, { cwd: root }).toString().trim();
    } catch {
      return 'unknown';
    }
  };
  const dirty = git('status', '--porcelain') === '' ? '' : ' (with uncommitted changes)';
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  return {
    date: new Date().toISOString(),
    commit: `${git('rev-parse', '--short', 'HEAD')}${dirty}`,
    machine: `${os.availableParallelism()} cores (${cpu}), ${Math.round(os.totalmem() / 1024 ** 3)} GiB, ${os.platform()} ${os.release()}`,
    node: process.version,
    quick,
  };
}

export function markdown(info: RunInfo, results: readonly ScenarioResult[]): string {
  const lines = [
    `# Benchmarks ${info.date.slice(0, 10)}${info.quick ? ' (quick run)' : ''}`,
    '',
    `Commit ${info.commit}; ${info.machine}; Node ${info.node}; ${info.date}.`,
    '',
    '| scenario | measured | target | met |',
    '|---|---|---|---|',
    ...results.map((r) => `| ${r.scenario} | ${r.measured} | ${r.target} | ${r.pass ? 'yes' : '**no**'} |`),
    '',
  ];
  return lines.join('\n');
}

export function writeResults(dir: string, info: RunInfo, results: readonly ScenarioResult[]): { md: string; json: string } {
  mkdirSync(dir, { recursive: true });
  // A second run on the same day gets -2, -3…: earlier results stay as they were recorded.
  const day = path.join(dir, info.date.slice(0, 10));
  let stem = day;
  for (let run = 2; existsSync(`${stem}.md`) || existsSync(`${stem}.json`); run++) stem = `${day}-${run}`;
  const md = `${stem}.md`;
  const json = `${stem}.json`;
  writeFileSync(md, markdown(info, results));
  writeFileSync(json, `${JSON.stringify({ ...info, results }, null, 2)}\n`);
  return { md, json };
}
