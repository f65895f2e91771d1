// The OpenAPI 3.1 description of every public route, generated from the zod schemas that
// validate request bodies (validation.ts) and describe answers (responseBodies.ts), and from the
// path sets the server itself uses for rate limiting, overload shedding and request ids
// (paths.ts). Served at GET /openapi.json and shipped as docs/openapi.json (`npm run openapi`);
// test/openapi.test.ts checks real answers of every route against it.
// The /__fault routes (FAULT_INJECTION: tests and drills, loopback clients only) are left out on purpose.
import { z } from 'zod';
import { RETRY_AFTER_SECONDS } from './errors';
import { MONITORING_ROUTES, PROBE_PATHS, RATE_LIMIT_EXEMPT_PATHS } from './paths';
import * as bodies from './responseBodies';
import { CLIENT_ID } from './respond';
import { loginBody, registerBody } from './validation';

/** A JSON object of the document (the document is plain JSON throughout). */
export type JsonObject = { [key: string]: unknown };

/** Where the service serves this document. */
export const OPENAPI_PATH = '/openapi.json';

/** A component schema from a zod schema: requests as the client sends them, answers as they leave. */
function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'throw' });
  return rest;
}

const SCHEMAS = {
  RegisterRequest: jsonSchemaOf(registerBody, 'input'),
  LoginRequest: jsonSchemaOf(loginBody, 'input'),
  Error: jsonSchemaOf(bodies.errorEnvelope, 'output'),
  Healthy: jsonSchemaOf(bodies.healthy, 'output'),
  Unhealthy: jsonSchemaOf(bodies.unhealthy, 'output'),
  ApiStatusOk: jsonSchemaOf(bodies.apiStatusOk, 'output'),
  ApiStatusDegraded: jsonSchemaOf(bodies.apiStatusDegraded, 'output'),
  Alive: jsonSchemaOf(bodies.alive, 'output'),
  Ready: jsonSchemaOf(bodies.ready, 'output'),
  NotReady: jsonSchemaOf(bodies.notReady, 'output'),
  StatusSummary: jsonSchemaOf(bodies.statusSummary, 'output'),
  Registered: jsonSchemaOf(bodies.registered, 'output'),
  LoggedIn: jsonSchemaOf(bodies.loggedIn, 'output'),
  Me: jsonSchemaOf(bodies.me, 'output'),
} as const;

type SchemaName = keyof typeof SCHEMAS;
type ComponentKind = 'schemas' | 'responses' | 'headers' | 'parameters';
const ref = (kind: ComponentKind, name: string): JsonObject => ({ $ref: `#/components/${kind}/${name}` });
const json = (schema: SchemaName): JsonObject => ({ 'application/json': { schema: ref('schemas', schema) } });

const HEADERS = {
  RequestId: {
    description: "The request id: the caller's X-Request-Id when it is a plain token, otherwise a new UUID; also in an error's body and its log line",
    required: true,
    schema: { type: 'string', pattern: CLIENT_ID.source },
  },
  RetryAfter: { description: 'Seconds to wait before trying again', required: true, schema: { type: 'integer', minimum: 0 } },
  WwwAuthenticate: { description: 'The bearer challenge (RFC 6750)', required: true, schema: { type: 'string', pattern: '^Bearer ' } },
  Allow: { description: "The path's methods, HEAD and OPTIONS included", required: true, schema: { type: 'string' } },
  RateLimitLimit: { description: 'RATE_LIMIT_PER_MINUTE: requests per client address per minute', required: true, schema: { type: 'integer', minimum: 1 } },
  RateLimitRemaining: { description: 'Requests left this minute', required: true, schema: { type: 'integer', minimum: 0 } },
  RateLimitReset: { description: 'When the minute ends, in seconds since the epoch', required: true, schema: { type: 'integer', minimum: 0 } },
} as const satisfies Record<string, JsonObject>;

type HeaderName = keyof typeof HEADERS;
const HEADER_FIELDS: Readonly<Record<HeaderName, string>> = {
  RequestId: 'X-Request-Id',
  RetryAfter: 'Retry-After',
  WwwAuthenticate: 'WWW-Authenticate',
  Allow: 'Allow',
  RateLimitLimit: 'X-RateLimit-Limit',
  RateLimitRemaining: 'X-RateLimit-Remaining',
  RateLimitReset: 'X-RateLimit-Reset',
};

function headerRefs(names: readonly HeaderName[]): JsonObject {
  return Object.fromEntries(names.map((name) => [HEADER_FIELDS[name], ref('headers', name)]));
}

/** An error: the envelope, the request id (every error has one), and the headers this error adds. */
function errorResponse(description: string, headers: readonly HeaderName[] = []): JsonObject {
  return { description, headers: headerRefs(['RequestId', ...headers]), content: json('Error') };
}

const RESPONSES = {
  BadRequest: errorResponse(
    'The body is not a JSON object, not valid JSON (code InvalidContent), not UTF-8 or nested too deep, ' +
      'or a field is missing, invalid or unknown (the message names each one)',
  ),
  Unauthorized: errorResponse('No bearer token, or one that is invalid or expired, or whose user no longer exists', ['WwwAuthenticate']),
  InvalidCredentials: errorResponse('Wrong password or unknown user, alike (code InvalidCredentials)'),
  Forbidden: errorResponse('Monitoring details are for the addresses in METRICS_ALLOW (this host by default) or a client with METRICS_TOKEN'),
  NotFound: errorResponse('No such path (code ResourceNotFound)'),
  MethodNotAllowed: errorResponse('The path exists, not with this method', ['Allow']),
  NotImplemented: errorResponse('A method the service does not know at all, on a path that does not exist'),
  Conflict: errorResponse('The username is taken (names are compared in their canonical form)'),
  PayloadTooLarge: errorResponse('The body is larger than MAX_BODY_BYTES; the connection is closed after the answer'),
  UnsupportedMediaType: errorResponse('The body is not application/json, or it is compressed'),
  TooManyRequests: errorResponse('Rate limited: too many requests from this client address this minute (RATE_LIMIT_PER_MINUTE)', [
    'RetryAfter',
    'RateLimitLimit',
    'RateLimitRemaining',
    'RateLimitReset',
  ]),
  LoginThrottled: errorResponse(
    'Too many failed logins for this name from this address (LOGIN_MAX_FAILURES), or from this address today; or rate limited',
    ['RetryAfter'],
  ),
  Overloaded: errorResponse('The process is overloaded (event loop delay, heap or database pool queue)', ['RetryAfter']),
  ServiceUnavailable: errorResponse(
    'The database is unreachable, the process is overloaded, or too many password checks are waiting',
    ['RetryAfter'],
  ),
  InternalServerError: errorResponse('An unexpected failure; the message never carries internal details'),
  MalformedRequest: errorResponse(
    'Answered before routing, for any path, then the connection is closed: HTTP that cannot be parsed (400 BadRequest), ' +
      'chunk extensions too large (413 PayloadTooLarge), headers too large (431 RequestHeaderFieldsTooLarge), ' +
      'a request that took too long to arrive (408 RequestTimeout)',
  ),
} as const satisfies Record<string, JsonObject>;

type ResponseName = keyof typeof RESPONSES;
type ErrorStatus = '400' | '401' | '403' | '404' | '409' | '413' | '415' | '429' | '503';

/** One operation of the table below. */
interface Operation {
  readonly method: 'get' | 'post';
  readonly operationId: string;
  readonly tag: 'health' | 'monitoring' | 'accounts' | 'meta';
  readonly summary: string;
  readonly description?: string;
  readonly security?: readonly JsonObject[];
  readonly requestBody?: SchemaName;
  /** The route's own answers: status → description, media type and schema, extra headers. */
  readonly answers: Readonly<Record<string, { description: string; content: JsonObject; headers?: readonly HeaderName[] }>>;
  /** Errors the route itself raises; 500 always, 429 and 503 follow from the path (below). */
  readonly errors?: Partial<Record<ErrorStatus, ResponseName>>;
  /** Needs the database, so a 503 may also mean the database is unreachable. */
  readonly usesDatabase?: boolean;
}

const monitoringSecurity: readonly JsonObject[] = [{}, { monitoringToken: [] }];
const text = (mediaType: string): JsonObject => ({ [mediaType]: { schema: { type: 'string' } } });

/** Every public route of the server (src/api/http/routes/), in the order they are registered. */
const ROUTES: Readonly<Record<string, Operation>> = {
  '/health': {
    method: 'get',
    operationId: 'getHealth',
    tag: 'health',
    summary: 'Health of the process and its database, within 1 s',
    answers: {
      200: { description: 'Healthy', content: json('Healthy') },
      503: { description: 'Unhealthy, or shutting down', content: json('Unhealthy'), headers: ['RetryAfter'] },
    },
  },
  '/api/status': {
    method: 'get',
    operationId: 'getApiStatus',
    tag: 'health',
    summary: 'Health of the API and the database, with the number of users',
    answers: {
      200: { description: 'Everything healthy', content: json('ApiStatusOk') },
      503: { description: 'Degraded: the failing service is marked unhealthy', content: json('ApiStatusDegraded'), headers: ['RetryAfter'] },
    },
  },
  '/livez': {
    method: 'get',
    operationId: 'getLivez',
    tag: 'health',
    summary: 'Liveness: the event loop turns (the database plays no part)',
    answers: { 200: { description: 'Alive', content: json('Alive') } },
  },
  '/readyz': {
    method: 'get',
    operationId: 'getReadyz',
    tag: 'health',
    summary: 'Readiness: started, database reachable, migrations applied, not draining',
    answers: {
      200: { description: 'Ready', content: json('Ready') },
      503: { description: 'Not ready, or draining', content: json('NotReady'), headers: ['RetryAfter'] },
    },
  },
  '/metrics': {
    method: 'get',
    operationId: 'getMetrics',
    tag: 'monitoring',
    summary: 'Prometheus text format: every worker of the cluster in one scrape',
    description: 'Absent with METRICS_ENABLED=0: then 404 like any unknown path.',
    security: monitoringSecurity,
    answers: { 200: { description: 'The metrics', content: text('text/plain') } },
    errors: { 403: 'Forbidden', 404: 'NotFound' },
  },
  '/status': {
    method: 'get',
    operationId: 'getStatusPage',
    tag: 'monitoring',
    summary: 'The status page for people: one HTML page that polls /api/status and /status/summary',
    answers: { 200: { description: 'The page', content: text('text/html') } },
  },
  '/status/summary': {
    method: 'get',
    operationId: 'getStatusSummary',
    tag: 'monitoring',
    summary: 'Workers, restarts and request totals of the cluster, for the status page',
    security: monitoringSecurity,
    answers: { 200: { description: 'The summary', content: json('StatusSummary') } },
    errors: { 403: 'Forbidden' },
  },
  '/api/register': {
    method: 'post',
    operationId: 'register',
    tag: 'accounts',
    summary: 'Create an account',
    requestBody: 'RegisterRequest',
    answers: { 201: { description: 'Created', content: json('Registered') } },
    errors: { 400: 'BadRequest', 409: 'Conflict', 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType' },
    usesDatabase: true,
  },
  '/api/login': {
    method: 'post',
    operationId: 'login',
    tag: 'accounts',
    summary: 'Exchange a name and password for a bearer token',
    requestBody: 'LoginRequest',
    answers: { 200: { description: 'Logged in', content: json('LoggedIn') } },
    errors: { 400: 'BadRequest', 401: 'InvalidCredentials', 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType', 429: 'LoginThrottled' },
    usesDatabase: true,
  },
  '/api/me': {
    method: 'get',
    operationId: 'me',
    tag: 'accounts',
    summary: 'The account of the bearer token',
    security: [{ bearerAuth: [] }],
    answers: { 200: { description: 'The account', content: json('Me') } },
    errors: { 401: 'Unauthorized' },
    usesDatabase: true,
  },
  [OPENAPI_PATH]: {
    method: 'get',
    operationId: 'getOpenApi',
    tag: 'meta',
    summary: 'This document',
    answers: { 200: { description: 'The OpenAPI 3.1 document (docs/openapi.json in the repository)', content: { 'application/json': { schema: { type: 'object' } } } } },
  },
};

/** The errors an operation on `path` can answer, by status. */
function errorResponses(path: string, operation: Operation): Record<string, JsonObject> {
  const named: Partial<Record<string, ResponseName>> = { ...operation.errors };
  // The same sets the rate limiter and the overload guard consult.
  if (!RATE_LIMIT_EXEMPT_PATHS.has(path)) named['429'] ??= 'TooManyRequests';
  if (!MONITORING_ROUTES.has(path)) named['503'] ??= operation.usesDatabase ? 'ServiceUnavailable' : 'Overloaded';
  named['500'] = 'InternalServerError';
  const responses: Record<string, JsonObject> = {};
  for (const [status, name] of Object.entries(named)) if (name !== undefined) responses[status] = ref('responses', name);
  return responses;
}

/** The route's own answers: probes (paths.ts) answer without a request id unless they answer an error. */
function ownResponses(path: string, operation: Operation, withContent: boolean): Record<string, JsonObject> {
  const responses: Record<string, JsonObject> = {};
  for (const [status, answer] of Object.entries(operation.answers)) {
    const headers: HeaderName[] = [...(PROBE_PATHS.has(path) ? [] : (['RequestId'] as const)), ...(answer.headers ?? [])];
    responses[status] = {
      description: answer.description,
      ...(headers.length > 0 ? { headers: headerRefs(headers) } : {}),
      ...(withContent ? { content: answer.content } : {}),
    };
  }
  return responses;
}

/** An error response as HEAD gets it: the same status and headers, no body. */
function withoutBody(response: JsonObject): JsonObject {
  const name = String(response['$ref']).split('/').pop() as ResponseName;
  const { content: _body, ...rest } = RESPONSES[name] as JsonObject;
  return rest;
}

const upperFirst = (word: string): string => word.charAt(0).toUpperCase() + word.slice(1);

function pathItem(path: string, operation: Operation): JsonObject {
  const parameters = PROBE_PATHS.has(path) ? [] : [ref('parameters', 'RequestId')];
  const common = {
    tags: [operation.tag],
    ...(operation.security ? { security: operation.security } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
  };
  const errors = errorResponses(path, operation);
  const item: JsonObject = {
    [operation.method]: {
      ...common,
      operationId: operation.operationId,
      summary: operation.summary,
      ...(operation.description ? { description: operation.description } : {}),
      ...(operation.requestBody ? { requestBody: { required: true, content: json(operation.requestBody) } } : {}),
      responses: { ...ownResponses(path, operation, true), ...errors },
    },
  };
  const name = upperFirst(operation.operationId.replace(/^get/, ''));
  // Every GET route answers HEAD with its own handler (methods.ts): same status and headers, no body.
  if (operation.method === 'get') {
    item['head'] = {
      ...common,
      operationId: `head${name}`,
      summary: `${operation.summary} (headers only)`,
      responses: {
        ...ownResponses(path, operation, false),
        ...Object.fromEntries(Object.entries(errors).map(([status, response]) => [status, withoutBody(response)])),
      },
    };
  }
  // Every path answers OPTIONS with its methods (methods.ts); rate limit and overload apply as to any request.
  item['options'] = {
    tags: [operation.tag],
    ...(parameters.length > 0 ? { parameters } : {}),
    operationId: `options${name}`,
    summary: 'The methods of this path',
    responses: {
      204: { description: 'No body; Allow names the methods', headers: headerRefs([...(PROBE_PATHS.has(path) ? [] : (['RequestId'] as const)), 'Allow']) },
      ...errorResponses(path, { ...operation, errors: {}, usesDatabase: false }),
    },
  };
  return item;
}

const DESCRIPTION = `User accounts backend built for high availability.

Every error, whatever raised it, is the JSON envelope \`{"code","message","requestId"}\` (schema Error),
whatever the request's Accept header says, with the same id in the X-Request-Id header and in the log.
A 5xx never carries a stack trace or an internal message; a 503 carries Retry-After.

Answers to requests outside the operations listed here:
- a path that does not exist: 404 (components/responses/NotFound);
- a path that exists, with a method it does not have: 405 with Allow (components/responses/MethodNotAllowed);
- a method the service does not know at all on a path that does not exist: 501 (components/responses/NotImplemented);
- CONNECT: 405 with Allow when the target is a path listed here, otherwise 501;
- \`OPTIONS *\`: 204 with Allow naming every method of the service;
- HTTP that cannot be parsed, chunk extensions or headers too large, a request too slow to arrive: 400, 413, 431 or 408
  (components/responses/MalformedRequest).

Rate limit: every path except ${[...RATE_LIMIT_EXEMPT_PATHS].join(', ')} counts against RATE_LIMIT_PER_MINUTE per
client address, any method, a path that does not exist included (429 with Retry-After). Once a client has used
half of its minute, answers on those paths carry X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset.
Overload: while the process is overloaded, every path except ${[...MONITORING_ROUTES].join(', ')} is answered
503 with Retry-After (${RETRY_AFTER_SECONDS} s).

The /__fault routes (FAULT_INJECTION, for tests and drills, loopback clients only) are deliberately not described.`;

/** The whole document; `version` is the package version. Deterministic: the same input gives the same text. */
export function buildOpenApiDocument(version: string): JsonObject {
  return {
    openapi: '3.1.0',
    info: { title: 'resilient-api', version, description: DESCRIPTION },
    servers: [{ url: '/', description: 'The service that serves this document' }],
    tags: [
      { name: 'health', description: 'Probes for monitors, load balancers and Kubernetes' },
      { name: 'monitoring', description: 'Status page and metrics' },
      { name: 'accounts', description: 'Register, log in, who am I' },
      { name: 'meta', description: 'This description' },
    ],
    paths: Object.fromEntries(Object.entries(ROUTES).map(([path, operation]) => [path, pathItem(path, operation)])),
    components: {
      schemas: SCHEMAS,
      responses: RESPONSES,
      headers: HEADERS,
      parameters: {
        RequestId: {
          name: 'X-Request-Id',
          in: 'header',
          required: false,
          description: 'An id to follow the request across services: kept when it matches the pattern, otherwise replaced',
          schema: { type: 'string', pattern: CLIENT_ID.source },
        },
      },
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The token from POST /api/login' },
        monitoringToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'METRICS_TOKEN; clients at an address in METRICS_ALLOW (this host by default) need none',
        },
      },
    },
  };
}

/** The document as served and shipped: two-space JSON and a final newline. */
export function openApiText(version: string): string {
  return `${JSON.stringify(buildOpenApiDocument(version), null, 2)}\n`;
}
