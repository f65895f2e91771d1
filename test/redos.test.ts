// ReDoS check: every regular expression in src/ and scripts/ must run in linear time on any
// input. The regexes are collected with the TypeScript compiler (test/helpers/regexes.ts) and
// judged by recheck (makenowjust-labs/recheck: automata theory where it can decide, fuzzing with
// static analysis where the pattern has lookaround or bounded repetition). A RegExp built from
// anything but a constant fails too: the check could not read it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { checkSync, type Diagnostics } from 'recheck';
import { sourceFiles, surveyRegexes } from './helpers/regexes';
import { ROOT } from './helpers/service';

/** Generous: the machine is shared; a pattern that recheck cannot decide in this time fails. */
const CHECK_TIMEOUT_MS = 60_000;

function judge(source: string, flags: string): Diagnostics {
  return checkSync(source, flags, { timeout: CHECK_TIMEOUT_MS });
}

function verdict(diagnostics: Diagnostics): string {
  if (diagnostics.status === 'vulnerable') {
    return `vulnerable (${diagnostics.complexity.summary}; attack: ${diagnostics.attack.pattern.slice(0, 120)})`;
  }
  if (diagnostics.status === 'unknown') return `undecided (${diagnostics.error.kind})`;
  return 'safe';
}

test('every regular expression in src/ and scripts/ is a constant and runs in linear time', (t) => {
  const survey = surveyRegexes(ROOT, sourceFiles(ROOT, ['src', 'scripts']));
  t.deepEqual(survey.nonConstant, [], 'RegExps built from something the check cannot read');
  // Sanity: the collector really read the sources (the redaction rules alone are several).
  t.true(survey.regexes.length >= 30, `only ${survey.regexes.length} regexes found`);

  const failures: string[] = [];
  const seen = new Map<string, string>();
  for (const regex of survey.regexes) {
    const key = `/${regex.source}/${regex.flags}`;
    let result = seen.get(key);
    if (result === undefined) {
      result = verdict(judge(regex.source, regex.flags));
      seen.set(key, result);
    }
    if (result !== 'safe') failures.push(`${regex.where}: ${key} is ${result}`);
  }
  t.log(`${survey.regexes.length} regexes (${seen.size} distinct) checked`);
  t.deepEqual(failures, []);
});

test('the checker catches backtracking patterns, the old redaction rules among them', (t) => {
  const oldRules: Array<[string, string]> = [
    ['^(a+)+$', ''],
    // src/platform/logging/redact.ts before: a key found by scanning the same run once per start position.
    [
      '\\b([\\w-]*(?:password|passwd|pwd|secret|token|authorization|jwt_secret|api[_-]?key|cookie)[\\w-]*\\s*[=:]\\s*)(?!\\s*")[^\\s&,;]+',
      'gi',
    ],
    ['\\beyJ[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*', 'g'],
    ['(\\b[a-z][a-z0-9+.-]*:\\/\\/[^:/@\\s]*:)[^@/\\s]+@', 'gi'],
  ];
  for (const [source, flags] of oldRules) {
    t.regex(verdict(judge(source, flags)), /^vulnerable/, `/${source}/${flags}`);
  }
});

test('the collector finds literals, constructors and implicit RegExps, and refuses non-constant ones', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-redos-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sample.ts');
  writeFileSync(
    file,
    [
      "const WORD = 'a+';",
      'export const literal = /^(a+)+$/;',
      'export const built = new RegExp(`^(${WORD})+$`, "i");',
      'export function fromInput(input: string): RegExp {',
      '  return new RegExp(input);',
      '}',
      "export const implicit = 'text'.match('(x+x+)+y');",
      'export function implicitFromInput(text: string, pattern: string): boolean {',
      '  return text.search(pattern) >= 0;',
      '}',
      '',
    ].join('\n'),
  );
  const survey = surveyRegexes(dir, [file]);
  t.deepEqual(
    survey.regexes.map((regex) => `${regex.where} /${regex.source}/${regex.flags}`),
    ['sample.ts:2 /^(a+)+$/', 'sample.ts:3 /^(a+)+$/i', 'sample.ts:7 /(x+x+)+y/'],
  );
  t.deepEqual(
    survey.nonConstant.map((entry) => entry.split(':').slice(0, 2).join(':')),
    ['sample.ts:5', 'sample.ts:9'],
  );
  for (const regex of survey.regexes) t.regex(verdict(judge(regex.source, regex.flags)), /^vulnerable/, regex.where);
});
