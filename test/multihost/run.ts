// `npm run test:multihost`: the multi-host test under ava with a configuration of its own, then a
// last clean-up of the namespaces, bridge, daemons and load balancers, also when the test process
// was killed (an ava timeout) before its own clean-up ran. Arguments go to ava (e.g. --tap).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../helpers/service';
import { removeLeftovers } from './topology';

function main(): number {
  if (process.getuid?.() !== 0) {
    console.error(
      '✖ npm run test:multihost needs root: it creates network namespaces, veth pairs and a bridge (ip netns, ip link). ' +
        'Run it as root (CI does), e.g. sudo npm run test:multihost',
    );
    return 1;
  }
  const ava = path.join(ROOT, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
  const result = spawnSync(process.execPath, [ava, '--config', path.join('test', 'multihost', 'ava.config.mjs'), ...process.argv.slice(2)], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  removeLeftovers();
  return result.status ?? 1;
}

process.exitCode = main();
