// Keeps the schema current: migrations run before the first request and again whenever the
// database comes back after being unreachable at start-up. Until they have run, requests that
// need the database get 503.
import type { DatabaseConfig } from '../config';
import type { Logger } from '../logging/logger';
import { describeDbError } from './errors';
import { migrate, type MigrateOptions, unreachableCause } from './migrate';

export class SchemaKeeper {
  private current = false;
  private running: Promise<boolean> | undefined;

  constructor(
    private readonly config: DatabaseConfig,
    private readonly log: Logger,
    /** Runs once the schema is current (the development seed, for one). */
    private readonly onCurrent: () => Promise<void> = async () => undefined,
    private readonly options: MigrateOptions = {},
  ) {}

  /**
   * Resolves true once migrated, false when the database could not be reached (try again
   * later). A migration that fails for any other reason rejects: the schema is broken and
   * starting would only serve errors.
   */
  ensure(): Promise<boolean> {
    if (this.current) return Promise.resolve(true);
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<boolean> {
    try {
      const applied = await migrate(this.config, this.log, this.options);
      this.log.info(applied.length > 0 ? `Applied ${applied.length} migration(s)` : 'Database schema is up to date');
      this.current = true;
      await this.onCurrent();
      return true;
    } catch (error) {
      const cause = unreachableCause(error);
      if (cause !== undefined) {
        this.log.warn(`Cannot migrate yet, the database is unreachable (${describeDbError(cause)}); will retry when it is back`);
        return false;
      }
      throw error;
    }
  }
}
