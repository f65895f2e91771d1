// Keeps the newest BACKUP_KEEP scheduled backups of one database, and apart from them the newest
// BACKUP_KEEP_PREDEPLOY backups taken at deploys, and removes the rest. Only names this service
// made for this database are touched; anything else in the folder is left alone.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type BackupKind, type BackupName, compareBackupNames, isPartialName, parseBackupName } from './dumpFile';

/** A partial file this old belongs to a run that was killed, not to one still writing. */
const STALE_PARTIAL_MS = 24 * 3600 * 1000;

/** How many backups of each kind are kept. */
export type Retention = Readonly<Record<BackupKind, number>>;

/** Removes the oldest backups of each kind beyond its bound, and partial files left by killed runs; returns what went. */
export async function pruneBackups(dir: string, database: string, keep: Retention): Promise<string[]> {
  const backups: Array<BackupName & { readonly file: string }> = [];
  const partials: string[] = [];
  for (const fileName of await readdir(dir)) {
    const name = parseBackupName(database, fileName);
    if (name) backups.push({ ...name, file: path.join(dir, fileName) });
    else if (isPartialName(database, fileName)) partials.push(path.join(dir, fileName));
  }
  backups.sort(compareBackupNames);
  const removed = (Object.keys(keep) as BackupKind[]).flatMap((kind) => {
    const ofKind = backups.filter((entry) => entry.kind === kind);
    return ofKind.slice(0, Math.max(0, ofKind.length - keep[kind])).map((entry) => entry.file);
  });
  for (const file of partials) {
    const info = await stat(file).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_PARTIAL_MS) removed.push(file);
  }
  for (const file of removed) await rm(file, { force: true });
  return removed;
}
