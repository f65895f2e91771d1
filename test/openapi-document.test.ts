// The OpenAPI document itself: valid OpenAPI 3.1, every schema in it a valid JSON Schema, the
// shipped docs/openapi.json what the code generates, and every route of the server described.
// (test/openapi.test.ts checks real answers against it.)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import test from 'ava';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { buildOpenApiDocument, openApiText, type JsonObject } from '../src/api/http/openapi';
import { version } from '../src/platform/version';
import { ROOT } from './helpers/service';

const SHIPPED = path.join(ROOT, 'docs', 'openapi.json');
const document = buildOpenApiDocument(version);

test('the document is valid OpenAPI 3.1 (the official schema)', async (t) => {
  const validator = new Validator({ allErrors: true });
  const result = await validator.validate(document);
  t.true(result.valid, JSON.stringify(result.errors, null, 2));
  t.is(validator.version, '3.1');
  t.is(document['openapi'], '3.1.0');
  t.is((document['info'] as JsonObject)['version'], version);
});

test('the validator refuses a broken document (it is not a rubber stamp)', async (t) => {
  const broken = structuredClone(document);
  delete (broken['info'] as JsonObject)['title'];
  const result = await new Validator().validate(broken);
  t.false(result.valid);
});

// The OpenAPI schema does not look inside Schema Objects: each one is compiled here, strictly
// (an unknown keyword or a wrong type is an error), with the formats the answers are checked with.
test('every schema in the document is a valid JSON Schema 2020-12', (t) => {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  const components = document['components'] as Record<string, Record<string, JsonObject>>;
  const names = Object.keys(components['schemas'] ?? {});
  t.true(names.length >= 10, names.join(', '));
  for (const name of names) {
    t.notThrows(() => ajv.compile(components['schemas']?.[name] ?? {}), name);
  }
  for (const [name, header] of Object.entries(components['headers'] ?? {})) {
    t.notThrows(() => ajv.compile(header['schema'] as JsonObject), `header ${name}`);
  }
});

test('docs/openapi.json is what the code generates (regenerate it with `npm run openapi`)', (t) => {
  const shipped = readFileSync(SHIPPED, 'utf8').split('\n');
  const generated = openApiText(version).split('\n');
  // The first difference, not a diff of a 60 kB document.
  const line = generated.findIndex((text, i) => shipped[i] !== text);
  const where = line === -1 ? shipped.length : line;
  t.true(
    line === -1 && shipped.length === generated.length,
    `docs/openapi.json is stale from line ${where + 1}: run \`npm run openapi\`\n` +
      `  shipped:   ${shipped[where] ?? '(end of file)'}\n  generated: ${generated[where] ?? '(end of file)'}`,
  );
});

test('the document is the same text every time it is built', (t) => {
  t.is(openApiText(version), openApiText(version));
});

/** `METHOD /path` of every route registered in src/api/http, read from the source (each names its path literally). */
function registeredRoutes(): string[] {
  const dir = path.join(ROOT, 'src', 'api', 'http');
  const files = [
    ...readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f)),
    ...readdirSync(path.join(dir, 'routes')).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, 'routes', f)),
  ];
  const methods: Record<string, string> = { get: 'GET', post: 'POST', put: 'PUT', patch: 'PATCH', del: 'DELETE', head: 'HEAD', opts: 'OPTIONS' };
  const routes: string[] = [];
  for (const file of files) {
    for (const match of readFileSync(file, 'utf8').matchAll(/\bserver\.(get|post|put|patch|del|head|opts)\(\s*(['"`])([^'"`]*)\2/g)) {
      routes.push(`${methods[match[1] ?? ''] ?? '?'} ${match[3] ?? ''}`);
    }
  }
  return routes;
}

test('every route of the server is in the document, and nothing else (the /__fault routes are left out on purpose)', (t) => {
  const registered = registeredRoutes();
  // The scan must see the routes at all: a handful that certainly exist.
  for (const known of ['GET /health', 'POST /api/login', 'GET /openapi.json', 'GET /__fault/throw']) t.true(registered.includes(known), known);
  const expected = registered.filter((route) => !route.split(' ')[1]?.startsWith('/__fault')).sort();
  const documented: string[] = [];
  for (const [p, item] of Object.entries(document['paths'] as Record<string, JsonObject>)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) if (item[method]) documented.push(`${method.toUpperCase()} ${p}`);
  }
  t.deepEqual(documented.sort(), expected);
  t.false(Object.keys(document['paths'] as JsonObject).some((p) => p.startsWith('/__fault')));
});

test('every GET path has HEAD and every path OPTIONS, as the server gives them', (t) => {
  for (const [p, item] of Object.entries(document['paths'] as Record<string, JsonObject>)) {
    t.true('options' in item, `OPTIONS ${p}`);
    t.is('head' in item, 'get' in item, `HEAD ${p}`);
  }
});
