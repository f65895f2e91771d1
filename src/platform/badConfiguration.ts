// Leaving with EX_CONFIG (78) when the configuration is bad. No restart can heal that, so the
// supervisor stops the app at once instead of letting PM2 restart it forever (docs/operations.md,
// "Supervision"). Under PM2 the IPC channel would keep the process alive after main() returns,
// so it must exit explicitly; first it tells the supervisor which variables are wrong.
import type { ConfigError, Env } from './config';
import { logBadConfigurationSync } from './logging/logger';

/** EX_CONFIG, the conventional exit code of a program whose configuration is wrong. */
export const EXIT_BAD_CONFIGURATION = 78;

/** The message a process sends on PM2's IPC before exiting 78; it arrives on the bus as this event. */
export const BAD_CONFIGURATION_MESSAGE_TYPE = 'app:bad-config';

export interface BadConfigurationMessage {
  readonly type: typeof BAD_CONFIGURATION_MESSAGE_TYPE;
  readonly data: { readonly problems: readonly string[] };
}

/** Bound on the wait for the IPC message to leave; the exit must not depend on it. */
const SEND_LIMIT_MS = 1000;

/**
 * Writes the FATAL line to backend.log synchronously (asynchronous output would be lost at
 * exit) and, under PM2, tells the supervisor which variables are wrong. Resolves once the
 * message has left, or after a bound.
 */
export function reportBadConfiguration(category: string, error: ConfigError, env: Env = process.env): Promise<void> {
  logBadConfigurationSync(category, error, env);
  if (!process.send || !process.connected) return Promise.resolve();
  const message: BadConfigurationMessage = { type: BAD_CONFIGURATION_MESSAGE_TYPE, data: { problems: error.problems } };
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, SEND_LIMIT_MS);
    process.send?.(message, undefined, {}, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** reportBadConfiguration, then exit 78; throws meanwhile so that nothing after it runs. */
export function exitForBadConfiguration(category: string, error: ConfigError): never {
  // Keep the exit code right should anything end the process before the message has left.
  process.exitCode = EXIT_BAD_CONFIGURATION;
  void reportBadConfiguration(category, error).then(() => process.exit(EXIT_BAD_CONFIGURATION));
  throw error;
}
