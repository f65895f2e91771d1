// npm run openapi: writes docs/openapi.json, the OpenAPI document the service serves at
// /openapi.json. test/openapi.test.ts fails while the shipped file differs from what the code makes.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { openApiText } from '../src/api/http/openapi';
import { version } from '../src/platform/version';

const SHIPPED_OPENAPI = path.resolve(__dirname, '..', 'docs', 'openapi.json');

writeFileSync(SHIPPED_OPENAPI, openApiText(version));
console.log(`Wrote ${path.relative(process.cwd(), SHIPPED_OPENAPI)} (resilient-api ${version})`);
