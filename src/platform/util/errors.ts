// What every module needs of an error: its message whatever was thrown, and an Error subclass
// whose name (shown before the message in every logged stack) is its class's name.

/** The message of an Error; anything else thrown, as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What was thrown, as an Error (a rejection may carry anything). */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** Extend this instead of Error: `name` then follows the subclass without a line in each. */
export class NamedError extends Error {
  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
