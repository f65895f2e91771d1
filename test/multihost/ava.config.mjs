// ava's configuration for `npm run test:multihost` only (given with --config, which makes ava
// ignore package.json's "ava" section): the multi-host files, which `npm test` never picks up
// (its glob is test/**/*.test.ts). Paths are relative to the project folder (package.json's).
export default {
  files: ['test/multihost/**/*.multihost.ts'],
  extensions: { ts: 'commonjs' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  // One file, its steps serial: they share one set of namespaces.
  concurrency: 1,
  timeout: '3m',
};
