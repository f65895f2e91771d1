// A headless Chromium for the tests that look at a page, with nothing installed by hand: the
// system's Chromium where there is one (CHROMIUM_PATH, else /usr/bin/chromium), otherwise the
// browser shipped inside the @sparticuz/chromium dev dependency, unpacked once per version into
// the temp folder (never into the checkout) and reused by later runs.
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type BrowserContext, type BrowserContextOptions, chromium } from 'playwright-core';

const run = promisify(execFile);

const SYSTEM_CHROMIUM = '/usr/bin/chromium';
/** How long unpacking may take (about 200 MB written) on a slow, shared machine. */
const UNPACK_TIMEOUT_MS = 5 * 60_000;
// What the child process runs: the package's own unpacking, printing where the binary went.
const UNPACK_SCRIPT = 'require(process.argv[1]).executablePath().then((file) => process.stdout.write(file))';

// Tests run as root in a container without user namespaces, so no sandbox; without the
// background-networking flags Chromium keeps dialling out, which a closed network refuses.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  /** A persistent context on a fresh profile folder of its own. */
  readonly context: BrowserContext;
  /** The binary that runs, and where it came from (for messages). */
  readonly executable: string;
  readonly source: 'CHROMIUM_PATH' | 'system' | 'npm';
  /** Closes the browser and deletes its profile folder. */
  close(): Promise<void>;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Unpacks the npm package's browser into <tmp>/resilient-api-chromium-<version> unless an earlier
 * run did. It unpacks into a private folder first and renames it into place, so a run that is
 * killed half-way or a second run at the same time never sees a half-written binary.
 */
async function npmChromium(): Promise<string> {
  // The package exports no ./package.json; its entry point is <package>/build/cjs/index.cjs.
  const entryPoint = require.resolve('@sparticuz/chromium');
  const packageJson = path.join(path.dirname(entryPoint), '..', '..', 'package.json');
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  const cacheDir = path.join(os.tmpdir(), `resilient-api-chromium-${version}`);
  const binary = path.join(cacheDir, 'chromium');
  if (isExecutable(binary)) return binary;

  const staging = mkdtempSync(path.join(os.tmpdir(), 'resilient-api-chromium-unpacking-'));
  // The package unpacks into os.tmpdir() (the binary, fonts, and SwiftShader's libraries loose in
  // it) and takes no target folder. It runs in a child process whose TMPDIR is the private folder:
  // that keeps all of it together without touching this process's environment, where anything
  // else calling os.tmpdir() during the unpacking would otherwise write into the browser's folder.
  try {
    const { stdout: unpacked } = await run(process.execPath, ['-e', UNPACK_SCRIPT, entryPoint], {
      env: { ...process.env, TMPDIR: staging },
      timeout: UNPACK_TIMEOUT_MS,
    });
    if (unpacked !== path.join(staging, 'chromium')) throw new Error(`@sparticuz/chromium unpacked to ${unpacked}, not into ${staging}`);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
  try {
    renameSync(staging, cacheDir);
  } catch (error) {
    // Another run put its copy in place first (or a broken copy is there): use or report it.
    rmSync(staging, { recursive: true, force: true });
    if (!isExecutable(binary)) throw new Error(`cannot put the unpacked Chromium at ${cacheDir}: ${String(error)}`);
  }
  return binary;
}

async function findChromium(): Promise<{ executable: string; source: TestBrowser['source'] }> {
  const configured = process.env['CHROMIUM_PATH'];
  if (configured) {
    // A path set on purpose that does not work is a mistake to report, not to paper over.
    if (!isExecutable(configured)) throw new Error(`CHROMIUM_PATH=${configured} is not an executable file`);
    return { executable: configured, source: 'CHROMIUM_PATH' };
  }
  if (existsSync(SYSTEM_CHROMIUM) && isExecutable(SYSTEM_CHROMIUM)) return { executable: SYSTEM_CHROMIUM, source: 'system' };
  return { executable: await npmChromium(), source: 'npm' };
}

/** Starts a headless Chromium with a fresh profile; `options` are Playwright's context options. */
export async function launchBrowser(options: BrowserContextOptions = {}): Promise<TestBrowser> {
  const { executable, source } = await findChromium();
  const profile = mkdtempSync(path.join(os.tmpdir(), 'ra-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, { ...options, executablePath: executable, headless: true, args: CHROMIUM_ARGS });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw new Error(`Chromium (${source}: ${executable}) did not start: ${String(error)}`);
  }
  return {
    context,
    executable,
    source,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}
