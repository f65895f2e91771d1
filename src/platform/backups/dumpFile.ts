// What a backup file of this service is: its name (database and UTC time, so names sort by age)
// and what must be inside it before anyone calls it a backup (a whole gzip stream, the dump
// tool's header and completion footer, and this service's tables). The backup checks its own
// file with the same inspection the restore applies, so a published backup is one restore accepts.
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { NamedError } from '../util/errors';
import { DumpScanner } from './dumpScanner';

const BACKUP_SUFFIX = '.sql.gz';

/** Tables every dump of this service contains; a dump without them is someone else's. */
const REQUIRED_TABLES = ['schema_migrations', 'users'] as const;

/** Recent MariaDB dumps begin with a sandbox-mode line (a guard for their client) before the header. */
const HEADER = /^(?:\/\*M!999999\\- enable the sandbox mode \*\/ *\r?\n)?(-- (?:MariaDB|MySQL) dump [^\n]*)/;
/** Tested against the tail without its trailing whitespace (a `\s*$` here would backtrack). */
const FOOTER = /\n-- Dump completed(?: on [^\n]*)?$/;
/** Lines kept at each end of the text; header and footer are short. */
const EDGE_BYTES = 512;
/** Enough to see a statement's first words after a newline that ended the previous chunk. */
const CARRY_BYTES = 64;

/** `20261128T013000Z`: sortable, and safe in a file name on any system. */
export function utcStamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * Scheduled backups (and `npm run backup`) and backups taken at a deploy, before migrating, are
 * named and kept apart, so however many deploys there are, the scheduled ones stay.
 */
export type BackupKind = 'scheduled' | 'predeploy';

/** What a deploy backup's name carries before the suffix. */
const PREDEPLOY_TAG = '-predeploy';

/**
 * `resilient_api-20261128T013000Z.sql.gz`, or with `-2`, `-3`… when that second is taken; a
 * deploy backup ends in `-predeploy.sql.gz`.
 */
export function backupFileName(database: string, date: Date, sequence = 1, kind: BackupKind = 'scheduled'): string {
  return `${database}-${utcStamp(date)}${sequence > 1 ? `-${sequence}` : ''}${kind === 'predeploy' ? PREDEPLOY_TAG : ''}${BACKUP_SUFFIX}`;
}

/** Where a backup is written until it is complete and verified: hidden, and never a backup's name. */
export function partialName(database: string, date: Date, pid: number): string {
  return `.${database}-${date.getTime()}-${pid}.partial`;
}

export function isPartialName(database: string, fileName: string): boolean {
  return fileName.startsWith(`.${database}-`) && fileName.endsWith('.partial');
}

export interface BackupName {
  readonly stamp: string;
  readonly sequence: number;
  readonly kind: BackupKind;
}

/** Parses a name made by backupFileName for this database; undefined for any other file. */
export function parseBackupName(database: string, fileName: string): BackupName | undefined {
  if (!fileName.startsWith(`${database}-`)) return undefined;
  const rest = fileName.slice(database.length + 1);
  const match = /^(\d{8}T\d{6}Z)(?:-(\d+))?(-predeploy)?\.sql\.gz$/.exec(rest);
  if (!match?.[1]) return undefined;
  return {
    stamp: match[1],
    sequence: match[2] === undefined ? 1 : Number(match[2]),
    kind: match[3] === undefined ? 'scheduled' : 'predeploy',
  };
}

/** Oldest first. */
export function compareBackupNames(a: BackupName, b: BackupName): number {
  return a.stamp === b.stamp ? a.sequence - b.sequence : a.stamp < b.stamp ? -1 : 1;
}

/** A file that is not a complete dump of this service's database, with the reason in words. */
export class DumpRejectedError extends NamedError {}

export interface DumpFacts {
  /** The dump tool's first line, e.g. `-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, …`. */
  readonly header: string;
  /** Its last line, e.g. `-- Dump completed on 2026-11-28  1:30:00`. */
  readonly footer: string;
  readonly uncompressedBytes: number;
}

/**
 * Watches uncompressed dump text go by without holding it: the first and last bytes, and whether
 * the statements that mark this service's schema (or a foreign dump) start a line somewhere.
 */
class DumpInspector extends Transform {
  private head = '';
  private tail = '';
  private bytes = 0;
  private readonly tablesSeen = new Set<string>();
  /** Everything the client would be given: SQL a dump writes, and nothing else (dumpScanner.ts). */
  private readonly scanner = new DumpScanner();

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    // latin1 maps every byte to one character: a multi-byte character cut by a chunk boundary
    // cannot hide the ASCII markers we look for.
    const text = chunk.toString('latin1');
    if (this.head.length < EDGE_BYTES) this.head += text.slice(0, EDGE_BYTES - this.head.length);
    // The carry (previous tail) lets a marker that straddles two chunks be seen; seeing one twice is harmless.
    const window = this.tail.slice(-CARRY_BYTES) + text;
    for (const table of REQUIRED_TABLES) {
      if (window.includes(`\nCREATE TABLE \`${table}\` (`)) this.tablesSeen.add(table);
    }
    this.scanner.feed(text);
    this.tail = (this.tail + text).slice(-EDGE_BYTES);
    done(null, chunk);
  }

  /** Throws DumpRejectedError unless what went by was a complete dump of this service. */
  verdict(): DumpFacts {
    if (this.bytes === 0) throw new DumpRejectedError('it is empty');
    const header = HEADER.exec(this.head)?.[1];
    if (header === undefined) {
      const firstLine = this.head.split('\n', 1)[0] ?? '';
      throw new DumpRejectedError(`it does not start like a mariadb-dump or mysqldump file (first line: "${printable(firstLine)}")`);
    }
    if (!FOOTER.test(this.tail.trimEnd())) {
      throw new DumpRejectedError('it has no "-- Dump completed" footer: the dump was cut short');
    }
    const missing = REQUIRED_TABLES.filter((table) => !this.tablesSeen.has(table));
    if (missing.length > 0) {
      throw new DumpRejectedError(`it is not a dump of this service's database (no table ${missing.join(', ')})`);
    }
    this.scanner.finish();
    if (this.scanner.problem !== undefined) throw new DumpRejectedError(this.scanner.problem);
    const footer = this.tail.trimEnd().split('\n').pop() ?? '';
    return { header: header.trim(), footer: footer.trim(), uncompressedBytes: this.bytes };
  }
}

/** Reads a whole .sql.gz once, streaming, and says what it is or why it is not a usable dump. */
export async function inspectDumpFile(file: string): Promise<DumpFacts> {
  const inspector = new DumpInspector();
  try {
    await pipeline(
      createReadStream(file),
      createGunzip(),
      inspector,
      new Writable({ write: (_chunk, _encoding, done) => done() }),
    );
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') throw error;
    // zlib: "unexpected end of file" (truncated), "incorrect header check" (not gzip), CRC errors.
    throw new DumpRejectedError(`it is not a complete gzip file (${(error as Error).message})`);
  }
  return inspector.verdict();
}

function printable(text: string): string {
  const visible = text.replace(/[^\x20-\x7e]/g, '?');
  return visible.length > 60 ? `${visible.slice(0, 60)}…` : visible;
}
