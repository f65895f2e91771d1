// The status page ships as one HTML file with its style and script inline
// (assets/status-page.html): editable and viewable as a page, read once at start-up and served
// from memory. Its Content-Security-Policy allows exactly that style and that script, by hash,
// so an edit of either cannot be forgotten in the policy.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../platform/util/projectRoot';

export const STATUS_PAGE_FILE = path.join('src', 'api', 'http', 'assets', 'status-page.html');

export interface StatusPage {
  readonly html: string;
  readonly headers: Readonly<Record<string, string>>;
}

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The one inline element of a kind; a page with none or several is a broken asset. */
function inline(html: string, tag: 'style' | 'script'): string {
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  const start = html.indexOf(open);
  const end = html.indexOf(close, start);
  if (start === -1 || end === -1 || html.indexOf(open, start + 1) !== -1) {
    throw new Error(`${STATUS_PAGE_FILE} must hold exactly one inline ${open}`);
  }
  return html.slice(start + open.length, end);
}

export function loadStatusPage(root: string = projectRoot(__dirname)): StatusPage {
  const html = readFileSync(path.join(root, STATUS_PAGE_FILE), 'utf8');
  return {
    html,
    // Cache-Control and nosniff are on every answer already (securityHeaders.ts); the page needs
    // only a CSP that lets its own inline style and script run.
    headers: {
      'Content-Security-Policy':
        `default-src 'none'; style-src ${hash(inline(html, 'style'))}; script-src ${hash(inline(html, 'script'))}; connect-src 'self'; ` +
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    },
  };
}
