// The shapes of the service's answers, as zod schemas: the OpenAPI document (openapi.ts) is
// generated from them, and test/openapi.test.ts checks every real answer against that document,
// so a route that changes its answer without changing its schema fails a test. Objects are
// strict (additionalProperties: false): a field added to an answer must be added here too.
import { z } from 'zod';

const timestamp = z.iso.datetime().describe('When the answer was made (ISO 8601)');
const userId = z.number().int().positive().describe('The account id');
const username = z.string().describe('The name as registered (NFKC, case kept)');

/** Every error of every route, whatever raised it. */
export const errorEnvelope = z
  .strictObject({
    code: z.string().describe('restify error code, e.g. BadRequest, InvalidCredentials, ServiceUnavailable'),
    message: z.string().describe('Safe text for people: never a stack trace or an internal message'),
    requestId: z.string().describe('The id in the x-request-id header and in the log line'),
  })
  .describe('The one error envelope');

/** GET /health: 200 only when the process serves and the database answers. */
export const healthy = z
  .strictObject({
    status: z.literal('healthy'),
    timestamp,
    database: z.literal('connected'),
    version: z.string().describe('The package version'),
  })
  .describe('Serving, database answering');

export const unhealthy = z
  .strictObject({
    status: z.enum(['unhealthy', 'shutting_down']),
    timestamp,
    // While draining the database may still answer.
    database: z.enum(['connected', 'disconnected']),
    version: z.string().describe('The package version'),
  })
  .describe('Database unreachable (unhealthy), or the process is draining (shutting_down)');

const serviceState = z.enum(['healthy', 'unhealthy']);

/** GET /api/status. */
export const apiStatusOk = z
  .strictObject({
    status: z.literal('ok'),
    timestamp,
    services: z.strictObject({ database: z.literal('healthy'), api: z.literal('healthy') }),
    stats: z.strictObject({ total_users: z.number().int().nonnegative() }),
  })
  .describe('Database and API healthy');

export const apiStatusDegraded = z
  .strictObject({
    status: z.literal('degraded'),
    timestamp,
    services: z.strictObject({ database: serviceState, api: serviceState }),
    stats: z.strictObject({
      total_users: z.number().int().nonnegative().nullable().describe('The last count known; null when none was ever read'),
    }),
    overload: z.array(z.string()).optional().describe('Only while the overload guard sheds: what it saw'),
  })
  .describe('The failing service is marked unhealthy');

/** GET /livez. */
export const alive = z.strictObject({
  status: z.literal('alive'),
  uptime: z.number().int().nonnegative().describe('Seconds since this process started'),
});

/** GET /readyz. */
export const ready = z.strictObject({ status: z.literal('ready') });

export const notReady = z.union([
  z.strictObject({ status: z.literal('shutting_down') }).describe('Draining: send new requests elsewhere'),
  z
    .strictObject({
      status: z.literal('not_ready'),
      reasons: z.array(z.enum(['starting', 'database unreachable', 'migrations pending'])).min(1),
    })
    .describe('Starting, database unreachable or migrations pending'),
]);

/** GET /status/summary: what the status page shows besides /api/status. */
const workerSummary = z.strictObject({
  worker: z.string().describe('PM2 id'),
  pid: z.number().int(),
  uptimeSeconds: z.number().int().nonnegative(),
  database: z.enum(['up', 'down']),
  overloaded: z.boolean(),
  draining: z.boolean(),
  heapUsedBytes: z.number().nonnegative(),
  requests: z.number().nonnegative().describe('API answers of this worker (probes and status endpoints left out)'),
});

export const statusSummary = z.strictObject({
  timestamp,
  version: z.string(),
  worker: z.string().describe('PM2 id of the worker that answered'),
  uptimeSeconds: z.number().int().nonnegative(),
  overload: z.strictObject({
    overloaded: z.boolean(),
    reasons: z.array(z.string()),
    since: z.number().describe('Milliseconds since the epoch when the current state began'),
  }),
  cluster: z
    .strictObject({
      workers: z.array(workerSummary),
      restarts: z.number().int().nonnegative().nullable().describe('Restarts after a crash or a signal death; null without a supervisor'),
      requests: z.strictObject({
        total: z.number().nonnegative(),
        clientErrors: z.number().nonnegative(),
        serverErrors: z.number().nonnegative(),
      }),
      sources: z
        .strictObject({
          ok: z.number().int().nonnegative(),
          timeout: z.number().int().nonnegative(),
          gone: z.number().int().nonnegative(),
          error: z.number().int().nonnegative(),
        })
        .describe('How many workers answered the gathering, timed out, were gone or failed'),
    })
    .nullable()
    .describe('null with METRICS_ENABLED=0'),
});

/** POST /api/register. */
export const registered = z.strictObject({ id: userId, username });

/** POST /api/login. */
export const loggedIn = z.strictObject({
  token: z.string().describe('HS256 JWT: send it as `Authorization: Bearer <token>`'),
  expiresIn: z.number().int().positive().describe('Seconds the token is valid'),
  user: z.strictObject({ id: userId, username }),
});

/** GET /api/me. */
export const me = z.strictObject({
  id: userId,
  username,
  email: z.string().nullable(),
  createdAt: z.iso.datetime().describe('When the account was registered (ISO 8601, UTC)'),
});
