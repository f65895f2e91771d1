// Scrubs secrets out of any text before it reaches a log: passwords and tokens in JSON or
// key=value form, bearer tokens, anything shaped like a JWT, credentials in URLs, and the
// literal values of configured secrets.

const SECRET_KEYS = 'password|passwd|pwd|secret|token|authorization|jwt_secret|api[_-]?key|cookie';
const REDACTED = '[REDACTED]';

const patterns: ReadonlyArray<readonly [RegExp, string]> = [
  // "password": "..." (JSON, including escaped quotes inside the value)
  [new RegExp(`("(?:[\\w-]*?)(?:${SECRET_KEYS})[\\w-]*"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'gi'), `$1"${REDACTED}"`],
  // Before the key=value rule, so "Authorization: Bearer x" loses the token, not the word.
  // A credential is long: "missing bearer token" in a message is left alone.
  [/\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi, `Bearer ${REDACTED}`],
  // password=... or token: ... in query strings, headers and messages
  [new RegExp(`\\b([\\w-]*(?:${SECRET_KEYS})[\\w-]*\\s*[=:]\\s*)(?!\\s*")[^\\s&,;]+`, 'gi'), `$1${REDACTED}`],
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@/\s]+@/gi, `$1${REDACTED}@`],
];

const literalSecrets = new Set<string>();

/** Values that must never be printed verbatim, such as JWT_SECRET or the database password. */
export function registerSecret(value: string | undefined): void {
  if (value !== undefined && value.length >= 4) literalSecrets.add(value);
}

export function redact(text: string): string {
  let result = text;
  for (const secret of literalSecrets) {
    if (result.includes(secret)) result = result.split(secret).join(REDACTED);
  }
  for (const [pattern, replacement] of patterns) {
    result = result.replace(pattern, replacement);
  }
  return result;
}
