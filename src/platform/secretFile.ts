// Files that hold the JWT secret: one an operator names (JWT_SECRET_FILE), or one the service
// generates once and keeps (.jwt-secret in production, .dev-jwt-secret in development).
// Generation is atomic: several workers starting at once all end with the one secret that won.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

/** The file's text without surrounding whitespace (an editor's final newline is not part of it). */
export function readSecretFile(file: string): string {
  return readFileSync(file, 'utf8').trim();
}

export interface KeptSecret {
  readonly secret: string;
  /** This process wrote the file (the first start). */
  readonly created: boolean;
}

/**
 * The secret kept in `file`, generated first if there is none. A new secret is written whole to
 * a temporary file (mode 0600, flushed to disk) and then linked to `file`: link() never replaces
 * an existing name, so of several processes racing only one wins, and every one of them then
 * reads what won. A reader never sees a half-written file. Throws the file system's error.
 */
export function keptSecret(file: string): KeptSecret {
  try {
    return { secret: readSecretFile(file), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, `${randomBytes(48).toString('base64url')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temporary, file);
      created = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  } finally {
    rmSync(temporary, { force: true });
  }
  return { secret: readSecretFile(file), created };
}
