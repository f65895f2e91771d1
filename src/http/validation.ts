// Request bodies: one zod schema per route, and one way of turning a refusal into a 400 that
// names each bad field. Unknown fields are refused everywhere, so a typo never passes silently.
import { BadRequestError } from 'restify-errors';
import { z } from 'zod';

/** Letters, digits and . _ -, starting with a letter or digit: no control characters, no look-alikes. */
const USERNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$/;

/** A string field whose absence and wrong type say different things. */
const text = () => z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') });

export const username = text()
  .regex(USERNAME_PATTERN, 'must be 3 to 32 characters: letters, digits, ".", "_" or "-", starting with a letter or digit');

/** C0 and C1 control characters, DEL, and lone UTF-16 surrogates (what `\ud800` in JSON makes). */
// eslint-disable-next-line no-control-regex
const NO_CONTROL_CHARACTERS = /^(?:[^\u0000-\u001f\u007f-\u009f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/;

export const password = text()
  .min(8, 'must be at least 8 characters')
  .max(128, 'must be at most 128 characters')
  .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters');

export const email = z.email({ error: 'must be a valid e-mail address' }).max(254, 'must be at most 254 characters');

export const registerBody = z.strictObject({
  username,
  password,
  email: email.optional(),
});

export const loginBody = z.strictObject({
  // Login checks only the shape: any printable string may be tried, and fails as a wrong password.
  username: text()
    .min(1, 'is required')
    .max(64, 'must be at most 64 characters')
    .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters'),
  password: text()
    .min(1, 'is required')
    .max(128, 'must be at most 128 characters')
    .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters'),
});

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
  const field = issue.path.map(String).join('.');
  return field === '' ? issue.message : `${field} ${issue.message}`;
}

/** The parsed body, or a 400 listing every problem. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestError('Request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (!result.success) throw new BadRequestError(result.error.issues.map(describeIssue).join('; '));
  return result.data;
}
