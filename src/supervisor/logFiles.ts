// The supervisor's work on backend.log: rotating it (it is the one process allowed to), and
// reading its last error lines for a CRITICAL report.
import { open, rename, stat } from 'node:fs/promises';

/**
 * Renames file → file.1 → … → file.<keep> when it has grown past maxBytes; the writers notice
 * the new inode and reopen (logger.ts). Returns true when it rotated.
 */
export async function rotateIfLarge(file: string, maxBytes: number, keep: number): Promise<boolean> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return false;
  }
  if (size < maxBytes) return false;
  for (let index = keep - 1; index >= 1; index--) {
    await rename(`${file}.${index}`, `${file}.${index + 1}`).catch(() => undefined);
  }
  await rename(file, `${file}.1`);
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
    .filter((line) => / - (ERROR|FATAL) - /.test(line))
    .slice(-count)
    .map((line) => (line.length > 300 ? `${line.slice(0, 300)}…` : line));
}
