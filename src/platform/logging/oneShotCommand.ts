// How the one-shot commands that write to backend.log (migrate, restore) end: a failure is one
// line on the terminal and the same line in the log, the log is flushed, the exit code is set.
import { getLogger, shutdownLogging } from './logger';

/**
 * Runs `main` (which resolves with the exit code); a failure is printed and logged under
 * `category` as `describe` words it, and exits 1.
 */
export function runLoggedCommand(category: string, main: () => Promise<number>, describe: (error: unknown) => string): void {
  main()
    .catch((error: unknown) => {
      const message = describe(error);
      console.error(message);
      try {
        getLogger(category).error(message);
      } catch {
        // logging may not be configured yet (bad arguments or configuration)
      }
      return 1;
    })
    .then(async (code) => {
      process.exitCode = code;
      await shutdownLogging();
    });
}
