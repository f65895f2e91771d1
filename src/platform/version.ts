// The package version, reported by /health. Compiled, this reads dist/package.json, which tsc
// copies beside dist/src at build time.
import packageJson from '../../package.json';

export const version: string = packageJson.version;
