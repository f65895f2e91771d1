// Users in bulk for the benchmarks: rows shaped like real ones, with hashes random rather than
// computed (the rows are what is measured, not scrypt, and random bytes compress as real hashes do).
import { randomBytes } from 'node:crypto';

/** `scrypt$N$r$p$salt$hash` as passwords.ts writes it: 16-byte salt, `keyBytes`-byte key. */
export function fakePasswordHash(keyBytes = 32): string {
  return ['scrypt', 16384, 8, 1, randomBytes(16).toString('base64url'), randomBytes(keyBytes).toString('base64url')].join('$');
}
