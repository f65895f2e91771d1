// npm run bench [-- --quick] [-- --only name,name] [-- --out DIR]
// Starts the service under a PM2 daemon of its own, against databases of its own, runs each
// scenario beside its baseline, prints the table and writes bench/results/<date>.md and .json.
import path from 'node:path';
import { configureLogging } from '../src/platform/logging/logger';
import { ROOT, tempDir } from '../test/helpers/service';
import { createContext, type BenchContext, type ScenarioResult } from './lib/context';
import { markdown, runInfo, writeResults } from './lib/report';
import { coldStart, memoryAtLoad } from './scenarios/process';
import { chaosDrill } from './scenarios/chaos';
import { connectionSpread } from './scenarios/spread';
import { databaseOutage, killDrill, reloadDrill } from './scenarios/drills';
import { healthThroughput } from './scenarios/health';
import { meThroughput } from './scenarios/me';
import { loginFlood } from './scenarios/logins';
import { registrations } from './scenarios/registrations';
import { statusAtScale } from './scenarios/statusScale';
import { messageOf } from '../src/platform/util/errors';


const SCENARIOS: ReadonlyArray<readonly [string, (ctx: BenchContext) => Promise<ScenarioResult>]> = [
  ['health', healthThroughput],
  ['me', meThroughput],
  ['status', statusAtScale],
  ['login', loginFlood],
  ['register', registrations],
  ['kill', killDrill],
  ['reload', reloadDrill],
  ['outage', databaseOutage],
  ['chaos', chaosDrill],
  ['spread', connectionSpread],
  ['memory', memoryAtLoad],
  ['cold', coldStart],
];

function option(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index === -1 ? undefined : process.argv[index + 1];
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const only = option('--only')?.split(',');
  const out = path.resolve(option('--out') ?? path.join(ROOT, 'bench', 'results'));
  configureLogging({ dir: tempDir('ra-bench-'), level: 'warn', maxBytes: 1e7, backups: 1, console: false });
  const results: ScenarioResult[] = [];
  for (const [name, scenario] of SCENARIOS) {
    if (only && !only.includes(name)) continue;
    process.stderr.write(`» ${name}\n`);
    const ctx = createContext(quick);
    try {
      results.push(await scenario(ctx));
    } catch (error) {
      results.push({
        scenario: name,
        measured: `failed to run: ${messageOf(error)}`,
        target: '',
        pass: false,
        figures: {},
      });
    } finally {
      await ctx.cleanup();
    }
    const last = results.at(-1);
    if (last) process.stderr.write(`  ${last.pass ? '✔' : '✖'} ${last.measured}\n`);
  }
  const info = runInfo(ROOT, quick);
  console.log(markdown(info, results));
  const files = writeResults(out, info, results);
  console.log(`Written: ${path.relative(ROOT, files.md)}, ${path.relative(ROOT, files.json)}`);
  // A missed target is reported in the table, not as a failed command.
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
