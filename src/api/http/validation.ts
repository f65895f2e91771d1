// Request bodies: one zod schema per route, and one way of turning a refusal into a 400 that
// names each bad field. Unknown fields are refused everywhere, so a typo never passes silently.
import { BadRequestError } from 'restify-errors';
import { z } from 'zod';
import { clientText } from '../../platform/util/clientText';
import { displayUsername, isRegistrableUsername, USERNAME_RULE } from '../auth/username';

/** A string field whose absence and wrong type say different things. */
const text = () => z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') });

/** A name to register, parsed to its display form (NFKC, case kept); the rule is src/api/auth/username.ts. */
export const username = text()
  .transform(displayUsername)
  .refine(isRegistrableUsername, USERNAME_RULE)
  // For the OpenAPI document (openapi.ts): the rule is code, not a JSON Schema pattern.
  .describe(`The account name, after NFKC normalization: ${USERNAME_RULE}`);

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
  // Login checks only the shape: any text may be tried. Its canonical key (src/api/auth/username.ts)
  // finds the account; a name that cannot exist fails like a wrong password.
  username: text()
    .min(1, 'is required')
    .max(64, 'must be at most 64 characters')
    .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters'),
  password: text()
    .min(1, 'is required')
    .max(128, 'must be at most 128 characters')
    .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters'),
});

/** Unknown field names are the client's text: a few of them, each bounded, are named in a 400. */
const MAX_NAMED_KEYS = 5;
const MAX_KEY_CHARS = 100;

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const named = issue.keys.slice(0, MAX_NAMED_KEYS).map((key) => clientText(key, MAX_KEY_CHARS));
    const more = issue.keys.length > MAX_NAMED_KEYS ? ` and ${issue.keys.length - MAX_NAMED_KEYS} more` : '';
    return `unknown field(s): ${named.join(', ')}${more}`;
  }
  const field = clientText(issue.path.map(String).join('.'), MAX_KEY_CHARS);
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
