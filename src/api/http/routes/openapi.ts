// GET /openapi.json: the OpenAPI 3.1 description of the service (openapi.ts). Built once when the
// server is made and answered from memory. Public, like any API description; rate limited and
// shed under overload like every path that is not for monitoring.
import type { Server } from 'restify';
import { openApiText } from '../openapi';
import type { ResponseWriter } from '../respond';

export function registerOpenApiRoute(server: Server, version: string, writer: Pick<ResponseWriter, 'sendBody'>): void {
  const document = openApiText(version);
  // The literal path, as every route has one: test/openapi-document.test.ts finds routes by it.
  server.get('/openapi.json', async (_req, res) => {
    writer.sendBody(res, 200, 'application/json', document);
  });
}
