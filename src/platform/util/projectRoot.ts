// The checkout a module runs from: the nearest folder above it that holds ecosystem.config.js.
// The same answer from src/ under tsx and from dist/src/ compiled, so files that ship beside the
// code (the status page, the ecosystem file) are found without a build step copying them.
import { existsSync } from 'node:fs';
import path from 'node:path';

export function projectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'ecosystem.config.js'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no ecosystem.config.js above ${from}`);
  }
}
