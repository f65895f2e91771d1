// Import boundaries, checked by `npm run lint:deps` (and so by `npm test` and CI): a wrong-way
// import fails the build. src/ holds three programs, one per PM2 app (api, supervisor, backup),
// on a shared platform; see docs/architecture.md.
/** @type {import('dependency-cruiser').IConfiguration} */
const PROGRAMS = '^src/(api|supervisor|backup)/';

// The platform's layers, innermost first: a module may import its own layer and inner ones.
const PLATFORM_LAYERS = [
  ['util', '^src/platform/util/'],
  ['config', '^src/platform/(config|secretFile|version)\\.ts$'],
  ['logging', '^src/platform/logging/'],
  ['services', '^src/platform/(lifecycle|liveness|badConfiguration|alerts)\\.ts$|^src/platform/(db|metrics|pm2)/'],
  ['backups', '^src/platform/backups/'],
];

const layerRules = PLATFORM_LAYERS.slice(0, -1).map(([name, path], index) => ({
  name: `platform-${name}-is-inner`,
  comment: `platform/${name} sits under ${PLATFORM_LAYERS.slice(index + 1).map(([outer]) => outer).join(', ')}: it must not import them`,
  severity: 'error',
  from: { path },
  to: { path: PLATFORM_LAYERS.slice(index + 1).map(([, outer]) => `(${outer})`).join('|') },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle means two modules cannot be understood, or built, one without the other',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'platform-imports-no-program',
      comment: 'The platform serves every program; it must not know any of them',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: PROGRAMS },
    },
    ...['api', 'supervisor', 'backup'].map((program) => ({
      name: `${program}-stays-in-its-program`,
      comment: `The ${program} program shares code with the others only through src/platform`,
      severity: 'error',
      from: { path: `^src/${program}/` },
      to: { path: PROGRAMS, pathNot: `^src/${program}/` },
    })),
    {
      name: 'src-stands-alone',
      comment: 'The shipped code must not import scripts, benchmarks or tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(scripts|bench|test)/' },
    },
    {
      name: 'scripts-are-entry-points',
      comment: 'scripts/ are commands; what tests and benchmarks share with them lives in src/platform',
      severity: 'error',
      from: { path: '^(src|bench|test)/' },
      to: { path: '^scripts/' },
    },
    ...layerRules,
    {
      name: 'api-store-under-http',
      comment: 'Data access and the account rules do not know about HTTP',
      severity: 'error',
      from: { path: '^src/api/(store|auth|accounts)/' },
      to: { path: '^src/api/http/' },
    },
    {
      name: 'api-metrics-under-http',
      comment: 'The api\'s counters and registry are read by the HTTP layer, not the other way round',
      severity: 'error',
      from: { path: '^src/api/metrics/' },
      to: { path: '^src/api/http/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
