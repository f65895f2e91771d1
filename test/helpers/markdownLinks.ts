// The links of a Markdown page and the anchors its headings get, as GitHub renders them: enough
// to check that the documentation's relative links and anchors lead somewhere.

export interface MarkdownLink {
  /** The link's target as written: `docs/x.md#part`, `#part`, `https://…`. */
  readonly target: string;
  /** 1-based line of the page, for the failure message. */
  readonly line: number;
}

const FENCE = /^\s*(```|~~~)/;
const CODE_SPAN = /`+[^`]*`+/g;
const INLINE_LINK = /\[[^\]]*\]\(([^()\s]+)(?:\s+"[^"]*")?\)/g;
const REFERENCE_DEFINITION = /^\s*\[[^\]]+\]:\s*(\S+)/;
const HEADING = /^#{1,6} (.*)$/;
const CLOSING_HASHES = / #+$/;

/** The page's lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(markdown: string): Array<{ text: string; line: number }> {
  const lines: Array<{ text: string; line: number }> = [];
  let inFence = false;
  markdown.split('\n').forEach((text, index) => {
    if (FENCE.test(text)) {
      inFence = !inFence;
      return;
    }
    if (!inFence) lines.push({ text, line: index + 1 });
  });
  return lines;
}

/** Every inline link and reference definition outside code (code spans and fenced blocks). */
export function linksOf(markdown: string): MarkdownLink[] {
  const links: MarkdownLink[] = [];
  for (const { text, line } of proseLines(markdown)) {
    // A code span may hold link-like text; a link's text may hold a code span: keep the brackets.
    const prose = text.replace(CODE_SPAN, 'code');
    for (const match of prose.matchAll(INLINE_LINK)) links.push({ target: match[1] ?? '', line });
    const definition = REFERENCE_DEFINITION.exec(prose);
    if (definition) links.push({ target: definition[1] ?? '', line });
  }
  return links;
}

/** GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces to hyphens. */
export function slugOf(heading: string): string {
  const rendered = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/[`*]/g, ''); // code and emphasis marks are not text
  return rendered
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a page's headings; a repeated heading gets `-1`, `-2`, … as on GitHub. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(markdown)) {
    const heading = HEADING.exec(text);
    if (!heading) continue;
    const slug = slugOf((heading[1] ?? '').trim().replace(CLOSING_HASHES, ''));
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}
