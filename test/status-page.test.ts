// The status page in a real browser (Chromium driven by playwright-core: the system's where there is
// one, else the one the dev dependencies ship, see helpers/browser): it renders from its own origin
// alone, fits a phone's screen, and turns red when the database goes down (a private mariadbd that
// the test kills), then green again when it is back.
import test from 'ava';
import type { BrowserContext, Page } from 'playwright-core';
import { launchBrowser, type TestBrowser } from './helpers/browser';
import { createPrivateMariaDb, type PrivateMariaDb } from './helpers/mariadb';
import { startService, type Service } from './helpers/service';
import { waitFor } from './helpers/wait';

let mariadb: PrivateMariaDb;
let service: Service;
let launched: TestBrowser;
let browser: BrowserContext;

test.before(async (t) => {
  mariadb = await createPrivateMariaDb();
  service = await startService({ env: { ...mariadb.env } });
  await waitFor('a healthy service', async () => (await service.request('/health')).status === 200);
  launched = await launchBrowser({
    // A phone: the page must be readable without zooming or scrolling sideways.
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  browser = launched.context;
  t.log(`Chromium from ${launched.source}: ${launched.executable}`);
});

test.after.always(async () => {
  await launched?.close();
  await service?.stop();
  await mariadb?.destroy();
});

async function openStatusPage(): Promise<{ page: Page; problems: string[]; foreignRequests: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  const foreignRequests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('request', (request) => {
    if (!request.url().startsWith(service.url) && !request.url().startsWith('data:')) foreignRequests.push(request.url());
  });
  const response = await page.goto(`${service.url}/status`);
  if (response?.status() !== 200) throw new Error(`/status answered ${response?.status()}`);
  return { page, problems, foreignRequests };
}

const stateOf = (page: Page, id: string): Promise<string | null> => page.getAttribute(`#${id}`, 'data-state');
// The browser's globals as the checks below use them: the project compiles without DOM types.
// (Functions, not strings: the page's CSP forbids eval, and Playwright runs functions without it.)
declare const document: {
  body: { dataset: Record<string, string | undefined> };
  documentElement: { scrollWidth: number };
  querySelector(selector: string): { textContent: string | null } | null;
};
declare const window: { innerWidth: number };
declare function getComputedStyle(element: unknown): { backgroundColor: string };

const background = (page: Page, selector: string): Promise<string> =>
  page.$eval(selector, (element) => getComputedStyle(element).backgroundColor);
const overallIs = (page: Page, state: string, timeout = 10_000): Promise<unknown> =>
  page.waitForFunction((expected) => document.body.dataset['overall'] === expected, state, { timeout });

test.serial('renders the health of service and database, uptime, workers and rates, on a phone, from its own origin', async (t) => {
  const { page, problems, foreignRequests } = await openStatusPage();
  try {
    await overallIs(page, 'ok');
    t.is(await stateOf(page, 'database'), 'up');
    t.is(await stateOf(page, 'service'), 'up');
    t.is(await page.textContent('#database .value'), 'up');
    t.is(await page.textContent('#overall'), 'All systems operational');
    t.is(await background(page, 'header'), 'rgb(26, 127, 55)', 'green header');
    t.is(await page.textContent('#workers .value'), '1');
    t.is(await page.textContent('#restarts .value'), '–', 'no supervisor outside PM2');
    t.regex((await page.textContent('#uptime .value')) ?? '', /^\d+s$|^\d+m \d+s$/);
    t.is(await page.locator('#worker-rows tr').count(), 1);
    // Rates need two refreshes (2 s apart).
    await page.waitForFunction(() => /\/s$/.test(document.querySelector('#rate .value')?.textContent ?? ''), undefined, { timeout: 10_000 });
    t.regex((await page.textContent('#errors .value')) ?? '', /^\d+\.\d%$/);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    t.true(overflow <= 0, `scrolls sideways by ${overflow} px`);
    t.deepEqual(problems, [], 'no script error or CSP violation');
    t.deepEqual(foreignRequests, [], 'nothing fetched from elsewhere');
  } finally {
    await page.close();
  }
});

test.serial('turns red when the database is down, and green again when it is back', async (t) => {
  const { page, problems } = await openStatusPage();
  try {
    await overallIs(page, 'ok');
    await mariadb.kill();
    await overallIs(page, 'degraded');
    t.is(await stateOf(page, 'database'), 'down');
    t.is(await page.textContent('#database .value'), 'down');
    t.is(await page.textContent('#overall'), 'Database down');
    t.is(await background(page, 'header'), 'rgb(207, 34, 46)', 'red header');
    t.is(await background(page, '#database'), 'rgb(255, 235, 233)', 'red database card');
    await page.waitForFunction(() => document.querySelector('#worker-rows td.bad') !== null, undefined, { timeout: 10_000 });

    await mariadb.start();
    await overallIs(page, 'ok', 15_000);
    t.is(await stateOf(page, 'database'), 'up');
    t.is(await background(page, 'header'), 'rgb(26, 127, 55)');
    t.deepEqual(problems.filter((text) => !/503/.test(text)), [], 'no script error (the 503s of /api/status are expected)');
  } finally {
    await page.close();
  }
});
