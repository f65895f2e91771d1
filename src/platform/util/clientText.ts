// Text a client chose (a path, a query, a header value, a JSON key, a username, a method) is
// bounded and made printable before it enters a log line or an answer: a flood of it costs no
// more than its bound, and a newline or an escape sequence in it cannot start a forged log line
// or repaint a terminal.

/** Bound for one piece of client text in a message, unless the caller names another. */
export const CLIENT_TEXT_MAX_CHARS = 200;

/**
 * C0 controls (CR, LF and TAB included), DEL, C1 controls, the line and paragraph separators
 * (line breaks to JavaScript and to many viewers), the invisible format characters that reorder
 * or hide text (bidi controls such as U+202E, zero-width characters, the soft hyphen), and lone
 * UTF-16 surrogates (not text at all).
 * Each alternative matches one code unit, so the scan is linear. Backslashes are left alone:
 * doubling them would break the redaction of JSON with escaped quotes (redact.ts).
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(character: string): string {
  const short = SHORT_ESCAPES[character];
  if (short !== undefined) return short;
  const code = character.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `a\nb` → `a\\nb`, ESC → `\x1b`, U+2028 → `\u2028`: every unprintable character made visible. */
export function escapeControlCharacters(text: string): string {
  return text.replace(UNPRINTABLE, escapeOne);
}

/** The first `max` characters of text, and a marker `…(+N chars)` saying how much was left out ('' when nothing was cut). */
export function cut(text: string, max: number): { kept: string; marker: string } {
  if (text.length <= max) return { kept: text, marker: '' };
  // Never cut a surrogate pair in two (half of it would be printed as an escape).
  const code = text.charCodeAt(max - 1);
  const end = max > 0 && code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
  return { kept: text.slice(0, end), marker: `…(+${text.length - end} chars)` };
}

/**
 * Text as it may be printed: every unprintable character escaped, and at most `max` characters
 * of output (an escape counts at its printed width and is never cut in two), then a marker
 * saying how many characters of the original were left out.
 */
export function printable(text: string, max: number): string {
  // No more than max characters of the text can fit in max characters of output.
  const { kept } = cut(text, max);
  const escaped = escapeControlCharacters(kept);
  if (escaped.length <= max) return kept.length === text.length ? escaped : `${escaped}…(+${text.length - kept.length} chars)`;
  // The escapes made it longer than max: take pieces until the room is used up.
  let printed = '';
  let consumed = 0;
  for (const match of kept.matchAll(UNPRINTABLE)) {
    const plain = kept.slice(consumed, match.index);
    if (plain.length > max - printed.length) {
      const fitting = cut(plain, max - printed.length).kept;
      return `${printed}${fitting}…(+${text.length - consumed - fitting.length} chars)`;
    }
    printed += plain;
    consumed = match.index;
    const escape = escapeOne(match[0]);
    if (escape.length > max - printed.length) return `${printed}…(+${text.length - consumed} chars)`;
    printed += escape;
    consumed += 1;
  }
  const rest = kept.slice(consumed);
  const fitting = printed.length + rest.length <= max ? rest : cut(rest, max - printed.length).kept;
  return `${printed}${fitting}…(+${text.length - consumed - fitting.length} chars)`;
}

/**
 * Client text as it may appear in a log line or an answer: at most `max` characters, every
 * unprintable one escaped, with a marker when some were left out (see printable). Header values
 * that came as a list are joined with ", " as HTTP would.
 */
export function clientText(value: unknown, max: number = CLIENT_TEXT_MAX_CHARS): string {
  const text = typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : String(value);
  return printable(text, max);
}
