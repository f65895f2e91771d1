// The one username policy: what may be registered, what is shown, and the key that decides which
// account a typed name reaches. Registration, login, the users table's unique key and every
// brute-force counter use canonicalUsername(), so no spelling of a name reaches an account under
// a key (or a limiter counter) of its own.
//
// The key is NFKC followed by a full case fold. JavaScript has no casefold(); this one is
//   NFKC → toLowerCase → toUpperCase → toLowerCase → ς to σ → NFKC
// (locale-independent). Lowering first sends the capital sharp s ẞ to ß, so that ẞ, ß, SS and ss
// all end as "ss" (upper-then-lower alone leaves ẞ as ß); the upper/lower round trip applies the
// full mappings (ß → SS, ﬀ → FF, ᾳ → ΑΙ); final and non-final sigma become σ, as in Unicode's case
// folding; the last NFKC recomposes what the mappings decomposed. Checked against Unicode's
// NFKC_Casefold table (15.0) for every assigned code point: any two names NFKC_Casefold makes
// equal get the same key here. Ours is coarser in one place, on purpose: dotless ı (and 𝚤) fold to i, one
// look-alike fewer. Compatibility forms are covered by NFKC: fullwidth Ａ, ligatures ﬁ, the Kelvin
// sign K, ſ, superscripts.

/** Shortest and longest registrable name, in code points after NFKC. */
export const USERNAME_MIN_LENGTH = 3;
export const USERNAME_MAX_LENGTH = 32;

/**
 * Upper bound on the UTF-8 bytes of the key of a registrable name: the case fold and NFKC expand
 * one allowed character to at most 12 bytes (measured over every code point), times 32. The
 * column users.username_key is VARBINARY(384) (migration 004).
 */
export const USERNAME_KEY_MAX_BYTES = 384;

/**
 * After NFKC: letters, combining marks, decimal digits, ".", "_" and "-", starting with a letter
 * or a digit. With the u flag a lone surrogate matches nothing, and whitespace, control and format
 * characters (zero-width joiners, bidi controls) are outside every class listed.
 */
const REGISTRABLE = new RegExp(
  `^[\\p{L}\\p{Nd}][\\p{L}\\p{M}\\p{Nd}._-]{${USERNAME_MIN_LENGTH - 1},${USERNAME_MAX_LENGTH - 1}}$`,
  'u',
);

export const USERNAME_RULE =
  `must be ${USERNAME_MIN_LENGTH} to ${USERNAME_MAX_LENGTH} characters: letters, digits, ".", "_" or "-", starting with a letter or digit, ` +
  'with no mix of Latin, Greek, Cyrillic, Armenian or Cherokee letters';

/**
 * Scripts whose letters imitate each other ("а" Cyrillic and "a" Latin look the same): a name may
 * use one of them, so "аdmin" cannot pose as "admin". Other scripts may mix with Latin (as in
 * Unicode's UTS #39 "moderately restrictive" profile): Japanese mixes Han, Hiragana and Katakana.
 */
const LOOK_ALIKE_SCRIPTS: readonly RegExp[] = [
  /\p{Script=Latin}/u,
  /\p{Script=Greek}/u,
  /\p{Script=Cyrillic}/u,
  /\p{Script=Armenian}/u,
  /\p{Script=Cherokee}/u,
];

function mixesLookAlikeScripts(name: string): boolean {
  let scripts = 0;
  for (const script of LOOK_ALIKE_SCRIPTS) if (script.test(name)) scripts++;
  return scripts > 1;
}

/** The name as it is stored and shown: NFKC of what was typed, letter case kept. */
export function displayUsername(input: string): string {
  return input.normalize('NFKC');
}

/** The key that identifies an account: equal for every case and compatibility variant of a name. */
export function canonicalUsername(input: string): string {
  return input
    .normalize('NFKC')
    .toLowerCase()
    .toUpperCase()
    .toLowerCase()
    .replace(/ς/g, 'σ')
    .normalize('NFKC');
}

/**
 * The name's part of a brute-force counter: the canonical key less what no username can contain
 * (white space, control and format characters). For every name that can exist it is the canonical
 * key itself; a text that only imitates one ("alice ", "al\u200Bice") finds no account at login,
 * and is counted with the name it imitates all the same.
 */
export function usernameCounterKey(input: string): string {
  return canonicalUsername(input).replace(/[\p{White_Space}\p{Cc}\p{Cf}]/gu, '');
}

/** Whether a display name (already NFKC) follows the registration rule. */
export function isRegistrableUsername(display: string): boolean {
  return (
    REGISTRABLE.test(display) &&
    !mixesLookAlikeScripts(display) &&
    Buffer.byteLength(canonicalUsername(display)) <= USERNAME_KEY_MAX_BYTES
  );
}
