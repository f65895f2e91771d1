// The supervisor's work on the log files: rotating them (it is the one process allowed to), and
// reading backend.log's last error lines for a CRITICAL report.
import { copyFile, open, rename, stat, truncate } from 'node:fs/promises';
import { clientText } from '../platform/util/clientText';

const isLarge = async (file: string, maxBytes: number): Promise<boolean> => {
  try {
    return (await stat(file)).size >= maxBytes;
  } catch {
    return false;
  }
};

/** file.1 → file.2 → … → file.<keep>: room for a new file.1 (the oldest is overwritten). */
async function shiftBackups(file: string, keep: number): Promise<void> {
  for (let index = keep - 1; index >= 1; index--) {
    await rename(`${file}.${index}`, `${file}.${index + 1}`).catch(() => undefined);
  }
}

/**
 * Renames file → file.1 → … → file.<keep> when it has grown past maxBytes. The writers keep
 * writing the renamed file until they reopen: the caller asks PM2 to reload the logs (the
 * one-shot commands notice the new inode themselves, logger.ts). Returns true when it rotated.
 */
export async function rotateIfLarge(file: string, maxBytes: number, keep: number): Promise<boolean> {
  if (!(await isLarge(file, maxBytes))) return false;
  await shiftBackups(file, keep);
  await rename(file, `${file}.1`);
  return true;
}

/**
 * For a file whose writer cannot be told to reopen it (PM2's own pm2.log, held open by the
 * daemon with O_APPEND): copies it to file.1 (after shifting the older copies) and empties it,
 * as pm2-logrotate does. A line the daemon writes between the copy and the truncation is lost;
 * the daemon writes a few lines a minute. Returns true when it rotated.
 */
export async function copyTruncateIfLarge(file: string, maxBytes: number, keep: number): Promise<boolean> {
  if (!(await isLarge(file, maxBytes))) return false;
  await shiftBackups(file, keep);
  await copyFile(file, `${file}.1`);
  await truncate(file, 0);
  return true;
}

/** The last `bytes` of a file as text ('' when it cannot be read). */
export async function readTail(file: string, bytes: number): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - bytes);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      return buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

/** The last `count` ERROR or FATAL lines of a log file (without their stacks), oldest first. */
export async function lastErrorLines(file: string, count: number): Promise<string[]> {
  return (await readTail(file, 64 * 1024))
    .split('\n')
    .filter((line) => ERROR_LINE.test(line))
    .slice(-count)
    .map((line) => clientText(line, 300));
}

/**
 * A whole ERROR or FATAL line as logger.ts writes it, from its first character: text that
 * merely contains " - ERROR - " (a stack line, or a line a client tried to forge inside a
 * logged value) is never taken into an alert.
 */
const ERROR_LINE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - [\w.-]+ - (?:ERROR|FATAL) - /;
