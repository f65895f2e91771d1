// Entry of the `api` app: config → logger → lifecycle → database → schema → server → ready.
import type http from 'node:http';
import net from 'node:net';
import { hashPassword, setHashConcurrency } from './auth/passwords';
import { TokenService } from './auth/tokens';
import { type Config, ConfigError, databaseTarget, loadConfig } from './config';
import { Database } from './db/database';
import { migrationOptions } from './db/migrationOptions';
import { SchemaKeeper } from './db/schema';
import { UsernameTakenError, UserRepository } from './db/users';
import { OverloadGuard } from './http/overload';
import { createServer } from './http/server';
import { closeConnectionsAfterResponses } from './http/respond';
import { Lifecycle } from './lifecycle';
import { configureLoggingFor, getLogger, logBadConfigurationSync, logFatalSync } from './logger';
import { startProcessMetrics } from './metrics/start';
import { version } from './version';

const DEMO_USER = { username: 'demo', password: 'demo-password' } as const;

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logBadConfigurationSync('config', error);
    process.exitCode = 78; // EX_CONFIG
    throw error;
  }
}

async function seedDemoUser(users: UserRepository): Promise<void> {
  if (await users.exists(DEMO_USER.username)) return;
  try {
    await users.create({ username: DEMO_USER.username, email: null, passwordHash: await hashPassword(DEMO_USER.password) });
    getLogger('app').info(`Development seed: created user "${DEMO_USER.username}"`);
  } catch (error) {
    if (!(error instanceof UsernameTakenError)) throw error;
  }
}

/** Idle keep-alive sockets stay open this long into a drain, for a request already on its way. */
const IDLE_SOCKET_GRACE_MS = 1000;

/**
 * Stops accepting and resolves once every connection is closed. Unlike http.Server#close,
 * net.Server#close leaves idle keep-alive sockets open: a client may be sending on one at this
 * very moment, and closing it under that request is how requests fail during a reload. Such a
 * request is answered (with Connection: close); sockets still idle after a grace are closed.
 */
function drainHttp(httpServer: http.Server): Promise<void> {
  closeConnectionsAfterResponses();
  return new Promise<void>((resolve) => {
    net.Server.prototype.close.call(httpServer, () => resolve());
    setTimeout(() => httpServer.closeIdleConnections(), IDLE_SOCKET_GRACE_MS).unref();
  });
}

async function main(): Promise<void> {
  const config = readConfig();
  configureLoggingFor(config);
  setHashConcurrency(config.passwordHashConcurrency);
  const log = getLogger('app');
  const lifecycle = new Lifecycle(getLogger('lifecycle'), config.http.shutdownTimeoutMs);
  lifecycle.install();
  log.info(
    `Starting resilient-api ${version} (${config.mode}, pid ${process.pid}, node ${process.version}) ` +
      `with database ${databaseTarget(config.db)}`,
  );

  try {
    const db = new Database(config.db, getLogger('database'));
    const users = new UserRepository(db);
    const schema = new SchemaKeeper(
      config.db,
      getLogger('migrations'),
      async () => {
        db.schemaReady = true;
        if (config.seedDemoUser) await seedDemoUser(users);
      },
      migrationOptions(config, getLogger('backup')),
    );
    const worker = process.env['pm_id'] ?? '0';
    const overload = new OverloadGuard(config.overload, () => db.poolStats().waiting, getLogger('overload'));
    overload.start();
    const processMetrics = config.observability.metricsEnabled
      ? await startProcessMetrics(config, { worker, version, db, overload, lifecycle }, getLogger('metrics'))
      : undefined;
    db.start();
    // Back after an outage at start-up: migrate then, without a restart.
    db.monitor.on('up', () => {
      schema.ensure().catch((error: unknown) => lifecycle.abortStartup(error));
    });
    // Migrate before listening, so no request reaches a worker whose schema is behind.
    // An unreachable database does not stop start-up: the service answers 503 until it is back.
    await schema.ensure();

    const server = createServer({
      config,
      db,
      users,
      tokens: new TokenService(config.jwt),
      lifecycle,
      version,
      overload,
      metrics: processMetrics?.metrics,
      worker,
    });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.server.removeListener('error', reject);
        resolve();
      });
    });

    lifecycle.onShutdown('stop accepting and finish in-flight requests', () => drainHttp(server.server));
    lifecycle.onShutdown('close the metrics socket', async () => processMetrics?.close());
    lifecycle.onShutdown('close the database pool', () => db.close());

    const address = server.address();
    log.info(`Listening on ${config.tls ? 'https' : 'http'}://${address.address}:${address.port}`);
    if (config.faultInjection && config.faultCrashAfterMs !== undefined) {
      setTimeout(() => {
        throw new Error(`Injected crash ${config.faultCrashAfterMs} ms after start-up`);
      }, config.faultCrashAfterMs);
    }
    lifecycle.markReady();
  } catch (error) {
    lifecycle.abortStartup(error);
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) return; // already reported; exitCode is set
  logFatalSync('app', 'Start-up failed', error);
  process.exitCode = 1;
});
