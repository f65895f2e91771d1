// The documentation leads somewhere: every relative link in README.md and docs/*.md names a file
// of this repository that exists, and every anchor a heading of the page it points at. Links
// that leave the repository (`../../…`) fail too: the pages must stand on the repository alone.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { anchorsOf, linksOf, slugOf } from './helpers/markdownLinks';

const ROOT = path.resolve(__dirname, '..');
const DOCS = path.join(ROOT, 'docs');

/** README.md and every page of docs/, as paths relative to the repository. */
function pages(): string[] {
  const docs = readdirSync(DOCS)
    .filter((name) => name.endsWith('.md'))
    .map((name) => path.join('docs', name));
  return ['README.md', ...docs.sort()];
}

const EXTERNAL = /^[a-z][a-z0-9+.-]*:/i;

/** What is wrong with one link of `page`, or undefined when it leads somewhere. */
function problemOf(page: string, target: string, anchorsFor: (file: string) => Set<string>): string | undefined {
  if (EXTERNAL.test(target)) return undefined;
  const hash = target.indexOf('#');
  const filePart = hash === -1 ? target : target.slice(0, hash);
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const file = filePart === '' ? page : path.normalize(path.join(path.dirname(page), decodeURIComponent(filePart)));
  if (file.startsWith('..') || path.isAbsolute(file)) return `leaves the repository (${file})`;
  const absolute = path.join(ROOT, file);
  if (!existsSync(absolute)) return `no such file: ${file}`;
  if (anchor === undefined) return undefined;
  if (statSync(absolute).isDirectory() || !file.endsWith('.md')) return `an anchor into ${file}, which is not a Markdown page`;
  return anchorsFor(file).has(anchor) ? undefined : `no heading in ${file} has the anchor #${anchor}`;
}

test('every relative link and anchor in README.md and docs/ resolves inside the repository', (t) => {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsFor = (file: string): Set<string> => {
    let anchors = anchorCache.get(file);
    if (!anchors) {
      anchors = anchorsOf(readFileSync(path.join(ROOT, file), 'utf8'));
      anchorCache.set(file, anchors);
    }
    return anchors;
  };
  const problems: string[] = [];
  let checked = 0;
  for (const page of pages()) {
    for (const link of linksOf(readFileSync(path.join(ROOT, page), 'utf8'))) {
      if (EXTERNAL.test(link.target)) continue;
      checked += 1;
      const problem = problemOf(page, link.target, anchorsFor);
      if (problem) problems.push(`${page}:${link.line}: ${link.target}: ${problem}`);
    }
  }
  t.deepEqual(problems, []);
  // The README alone links every docs page: a check that found no links checked nothing.
  t.true(checked >= pages().length - 1, `only ${checked} relative links found`);
});

test('the README links every page of docs/', (t) => {
  const readmeTargets = new Set(linksOf(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).map((link) => link.target.split('#')[0]));
  const unlinked = pages()
    .filter((page) => page.startsWith('docs'))
    .filter((page) => !readmeTargets.has(page));
  t.deepEqual(unlinked, []);
});

test('anchors are computed as GitHub renders headings', (t) => {
  t.is(slugOf('Supervision (PM2)'), 'supervision-pm2');
  t.is(slugOf('How one scrape covers the cluster'), 'how-one-scrape-covers-the-cluster');
  t.is(slugOf('`METRICS_ENABLED` and the **cost**'), 'metrics_enabled-and-the-cost');
  t.is(slugOf('A [link](x.md) in a heading'), 'a-link-in-a-heading');
  t.deepEqual([...anchorsOf('# Top\n\n## Part\n\n```\n# not a heading\n```\n\n## Part\n')], ['top', 'part', 'part-1']);
  t.deepEqual(
    linksOf('[a](x.md#y) `[b](not-a-link.md)`\n```\n[c](in-code.md)\n```\n[`code`](z.md)\n[ref]: w.md\n').map((link) => link.target),
    ['x.md#y', 'z.md', 'w.md'],
  );
});
