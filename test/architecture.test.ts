// The architecture's two rules, checked on the sources: no module but a program's main holds
// mutable state, and the import boundaries (.dependency-cruiser.cjs) really fail a wrong-way
// import (npm run lint:deps checks the project itself; here a small tree proves the rules bite).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import ts from 'typescript';
import { ROOT } from './helpers/service';

const run = promisify(execFile);

/** Where a program builds its objects: the one place module-level state is allowed. */
const PROGRAM_MAINS = new Set(['src/api/main.ts', 'src/supervisor/main.ts', 'src/backup/main.ts']);

/**
 * The process-wide singletons Node or a library makes so, each explained where it is declared
 * (and in docs/architecture.md). Anything else is built by a program's main and passed in.
 */
const NAMED_SINGLETONS = new Set([
  // log4js.configure() is process-wide; the synchronous last-words writer follows it.
  'src/platform/logging/logger.ts syncSinkOfLog4jsConfiguration',
]);

/** Classes whose instances hold nothing that changes: a module may keep one. */
const STATELESS_CLASSES = new Set(['RegExp', 'TextEncoder', 'TextDecoder']);

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(relative);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [relative] : [];
  });
}

/** A declared type that promises no mutation: Readonly…, ReadonlyArray, readonly T[]. */
function isReadonlyType(type: ts.TypeNode | undefined): boolean {
  if (!type) return false;
  if (ts.isTypeOperatorNode(type) && type.operator === ts.SyntaxKind.ReadonlyKeyword) return true;
  return ts.isTypeReferenceNode(type) && /^Readonly/.test(type.typeName.getText());
}

/** `x as const`, or a value frozen where it is made. */
function isFrozenValue(init: ts.Expression): boolean {
  if (ts.isAsExpression(init) && init.type.getText() === 'const') return true;
  return ts.isCallExpression(init) && init.expression.getText() === 'Object.freeze';
}

/**
 * The top-level statements of a file that hold (or may hold) mutable state: a let or var; a new
 * of anything but a stateless class; an array or object literal not typed read-only, `as const`
 * or frozen; a static class field that is not readonly; and a statement run for its effect at
 * import time (registering something in a library, say). A function call's result is not
 * judged here (zod schemas, symbols, paths): it cannot be told from the syntax.
 */
function mutableState(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const at = (node: ts.Node, name: string): string =>
    `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1} ${name}`;
  for (const statement of source.statements) {
    if (ts.isExpressionStatement(statement)) {
      found.push(`${at(statement, statement.expression.getText().slice(0, 40))}: a statement run at import time`);
      continue;
    }
    if (ts.isClassDeclaration(statement)) {
      for (const member of statement.members) {
        const modifiers = ts.canHaveModifiers(member) ? (ts.getModifiers(member) ?? []) : [];
        const isStatic = modifiers.some((m) => m.kind === ts.SyntaxKind.StaticKeyword);
        const isReadonly = modifiers.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword);
        if (ts.isPropertyDeclaration(member) && isStatic && !isReadonly) found.push(`${at(member, member.name.getText())}: a static field`);
      }
      continue;
    }
    if (!ts.isVariableStatement(statement)) continue;
    const list = statement.declarationList;
    const isConst = (list.flags & ts.NodeFlags.Const) !== 0;
    for (const declaration of list.declarations) {
      const name = declaration.name.getText();
      if (NAMED_SINGLETONS.has(`${file.split(path.sep).join('/')} ${name}`)) continue;
      const where = at(declaration, name);
      if (!isConst) {
        found.push(`${where}: a module-level let/var`);
        continue;
      }
      const init = declaration.initializer;
      if (!init || isReadonlyType(declaration.type) || isFrozenValue(init)) continue;
      if (ts.isNewExpression(init) && !STATELESS_CLASSES.has(init.expression.getText())) {
        found.push(`${where}: a module-level new ${init.expression.getText()}`);
      } else if (ts.isArrayLiteralExpression(init) || ts.isObjectLiteralExpression(init)) {
        found.push(`${where}: a module-level ${ts.isArrayLiteralExpression(init) ? 'array' : 'object'} that is not read-only`);
      }
    }
  }
  return found;
}

test('no module of src/ but a program main holds mutable state', (t) => {
  const files = sourceFiles('src').filter((file) => !PROGRAM_MAINS.has(file.split(path.sep).join('/')));
  t.true(files.length > 50, 'the scan found the sources');
  t.deepEqual(files.flatMap(mutableState), []);
});

test('the scan sees what it forbids', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const relative = path.relative(ROOT, path.join(dir, 'sample.ts'));
  writeFileSync(
    path.join(dir, 'sample.ts'),
    [
      'let counter = 0;',
      'const cache = new Map<string, number>();',
      'const seen: string[] = [];',
      'const settings = { retries: 3 };',
      'registerSomething();',
      'class Pool { static instances = 0; static readonly LIMIT = 4; }',
      'const WORDS: ReadonlySet<string> = new Set(["a"]);',
      'const PATTERN = new RegExp("x");',
      'const LEVELS = ["a", "b"] as const;',
      'const DEFAULTS: Readonly<{ retries: number }> = { retries: 3 };',
      'const FROZEN = Object.freeze({ retries: 3 });',
      'export const LIMIT = 3;',
    ].join('\n'),
  );
  t.deepEqual(
    mutableState(relative).map((line) => line.replace(/^.*:\d+ /, '')),
    [
      'counter: a module-level let/var',
      'cache: a module-level new Map',
      'seen: a module-level array that is not read-only',
      'settings: a module-level object that is not read-only',
      'registerSomething(): a statement run at import time',
      'instances: a static field',
    ],
  );
});

test('every module of the platform sits in one of its layers', (t) => {
  // The layer rules name the layers by path; a module in none would escape all of them.
  interface Rule { readonly name: string; readonly from: { readonly path?: string }; readonly to: { readonly path?: string } }
  const config = require(path.join(ROOT, '.dependency-cruiser.cjs')) as { forbidden: readonly Rule[] };
  const layerPaths = config.forbidden
    .filter((rule) => /^platform-.*-is-inner$/.test(rule.name))
    .flatMap((rule) => [rule.from.path, rule.to.path])
    .filter((pattern): pattern is string => pattern !== undefined)
    .map((pattern) => new RegExp(pattern));
  t.true(layerPaths.length >= 4, 'the layer rules were found');
  const platform = sourceFiles('src/platform').map((file) => file.split(path.sep).join('/'));
  t.deepEqual(platform.filter((file) => !layerPaths.some((layer) => layer.test(file))), []);
});

test('a wrong-way import fails the boundary check', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-deps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'src/platform/util/clock.ts': 'export const now = (): number => Date.now();\n',
    'src/platform/config.ts': "import { now } from './util/clock';\nexport const started = now();\n",
    // Each of these breaks one rule.
    'src/platform/util/bad.ts': "import { started } from '../config';\nexport const x = started;\n",
    'src/platform/db/pool.ts': "import { answer } from '../../api/answer';\nexport const y = answer;\n",
    'src/api/answer.ts': "import { job } from '../backup/job';\nexport const answer = job;\n",
    'src/backup/job.ts': "import { helper } from '../../scripts/helper';\nexport const job = helper;\n",
    'scripts/helper.ts': 'export const helper = 1;\n',
  };
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' } }));
  writeFileSync(path.join(dir, 'ecosystem.config.js'), 'module.exports = { apps: [] };\n');
  const cli = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  const result = await run(process.execPath, [cli, 'src', 'scripts', '--config', path.join(ROOT, '.dependency-cruiser.cjs')], { cwd: dir }).then(
    () => ({ failed: false, output: '' }),
    (error: { stdout?: string }) => ({ failed: true, output: error.stdout ?? '' }),
  );
  t.true(result.failed, 'depcruise exits non-zero');
  for (const rule of ['platform-util-is-inner', 'platform-imports-no-program', 'api-stays-in-its-program', 'src-stands-alone']) {
    t.regex(result.output, new RegExp(`error ${rule}:`), rule);
  }
  t.notRegex(result.output, /src\/platform\/config\.ts → src\/platform\/util/, 'an inward import is allowed');
});
