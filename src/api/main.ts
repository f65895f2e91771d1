// Entry of the `api` app: config → logger → lifecycle → database → schema → server → ready.
import type http from 'node:http';
import net from 'node:net';
import { PasswordHasher } from './auth/passwords';
import { TokenService } from './auth/tokens';
import { type Config, ConfigError, databaseTarget, loadConfig } from '../platform/config';
import { Database } from '../platform/db/database';
import { migrationOptions } from '../platform/backups/migrationOptions';
import { SchemaKeeper } from '../platform/db/schema';
import { UserRepository } from './store/users';
import { removeDemoUser, seedDemoUser } from './auth/demoUser';
import { OverloadGuard } from './http/overload';
import { createServer } from './http/server';
import type { ResponseWriter } from './http/respond';
import { createApiCounters } from './metrics/counters';
import { Lifecycle } from '../platform/lifecycle';
import { configureLoggingFor, getLogger, logFatalSync } from '../platform/logging/logger';
import { answerLivenessPings } from '../platform/liveness';
import { exitForBadConfiguration } from '../platform/badConfiguration';
import { startProcessMetrics } from './metrics/start';
import { ServingHosts } from './hosts/servingHosts';
import { version } from '../platform/version';
import { messageOf } from '../platform/util/errors';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return exitForBadConfiguration('config', error);
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
function drainHttp(httpServer: http.Server, writer: ResponseWriter): Promise<void> {
  writer.closeConnectionsAfterResponses();
  return new Promise<void>((resolve) => {
    net.Server.prototype.close.call(httpServer, () => resolve());
    setTimeout(() => httpServer.closeIdleConnections(), IDLE_SOCKET_GRACE_MS).unref();
  });
}

async function main(): Promise<void> {
  // First: a worker busy starting (migrating under a lock) must not look stuck to the supervisor.
  answerLivenessPings();
  const config = readConfig();
  configureLoggingFor(config);
  const log = getLogger('app');
  const lifecycle = new Lifecycle(getLogger('lifecycle'), config.http.shutdownTimeoutMs);
  lifecycle.install();
  log.info(
    `Starting resilient-api ${version} (${config.mode}, pid ${process.pid}, node ${process.version}) ` +
      `on host ${config.hostId} with database ${databaseTarget(config.db)}`,
  );
  log.info(`JWT secret from ${config.jwt.source}`);

  try {
    // Counted into whether or not METRICS_ENABLED: with metrics off, nothing ever reads them.
    const counters = createApiCounters();
    const db = new Database(config.db, getLogger('database'));
    const users = new UserRepository(db);
    // Its threads start at the first hash: a worker that never sees a login starts none.
    const passwords = new PasswordHasher({
      concurrency: config.passwordHashConcurrency,
      queueLimit: config.passwordHashQueueLimit,
      counters,
    });
    // Hosts serving from this database must share the JWT secret: checked once the schema is
    // current, before serving; a mismatch exits 78 like any bad configuration.
    const servingHosts = new ServingHosts(
      db,
      { hostId: config.hostId, secret: config.jwt.secret, secretGenerated: config.jwt.generated, version, log: getLogger('hosts') },
      (problem) => exitForBadConfiguration('hosts', new ConfigError([problem])),
    );
    lifecycle.onShutdown('stop the serving-host heartbeat', async () => servingHosts.stop());
    const schema = new SchemaKeeper(
      config.db,
      getLogger('migrations'),
      async () => {
        db.schemaReady = true;
        await servingHosts.start();
        // Neither step may stop start-up: a database hiccup here is retried at the next start.
        try {
          if (config.seedDemoUser) await seedDemoUser(users, passwords, getLogger('app'));
          // Production never keeps the development user with its published password.
          if (config.mode === 'production') await removeDemoUser(users, passwords, getLogger('app'), config.db.database);
        } catch (error) {
          getLogger('app').warn(`Could not check the development demo user (${messageOf(error)}); will check at the next start`);
        }
      },
      migrationOptions(config, getLogger('backup')),
    );
    const worker = process.env['pm_id'] ?? '0';
    const overload = new OverloadGuard(config.overload, () => db.poolStats().waiting, getLogger('overload'), counters);
    overload.start();
    const processMetrics = config.observability.metricsEnabled
      ? await startProcessMetrics(
          config,
          {
            worker,
            version,
            db,
            overload,
            lifecycle,
            passwords,
            backup: { dir: config.backup.dir, database: config.db.database },
            ...(config.tls ? { tlsCertificate: config.tls.cert } : {}),
          },
          counters,
          getLogger('metrics'),
        )
      : undefined;
    db.start();
    // Back after an outage at start-up: migrate then, without a restart.
    db.monitor.on('up', () => {
      schema.ensure().catch(abortUnlessBadConfiguration);
    });
    // Migrate before listening, so no request reaches a worker whose schema is behind.
    // An unreachable database does not stop start-up: the service answers 503 until it is back.
    await schema.ensure();

    const { server, writer } = createServer({
      config,
      db,
      users,
      passwords,
      tokens: new TokenService(config.jwt),
      lifecycle,
      version,
      overload,
      metrics: processMetrics?.metrics,
      worker,
      counters,
    });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.server.removeListener('error', reject);
        resolve();
      });
    });

    lifecycle.onShutdown('stop accepting and finish in-flight requests', () => drainHttp(server.server, writer));
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
    abortUnlessBadConfiguration(error);
  }

  /** A ConfigError thrown by exitForBadConfiguration is already on its way out with 78. */
  function abortUnlessBadConfiguration(error: unknown): void {
    if (error instanceof ConfigError) return;
    lifecycle.abortStartup(error);
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) return; // already reported; exiting with 78
  logFatalSync('app', 'Start-up failed', error);
  process.exitCode = 1;
});
