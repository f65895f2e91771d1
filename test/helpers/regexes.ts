// Every regular expression in a set of source files, found with the TypeScript compiler: regex
// literals, `new RegExp(…)` / `RegExp(…)`, and strings that String#match, #matchAll and #search
// turn into a RegExp. A pattern must be a constant (literals, templates and arithmetic over
// them, and `const`s of the same file initialised with such); anything else is reported as
// non-constant, so no regex can escape a check that reads the sources.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface FoundRegex {
  /** `file:line`, relative to the root given. */
  readonly where: string;
  readonly source: string;
  readonly flags: string;
}

export interface RegexSurvey {
  readonly regexes: FoundRegex[];
  /** `file:line: text` of every RegExp built from something that is not a constant. */
  readonly nonConstant: string[];
}

const SOURCE_EXTENSIONS = new Set(['.ts', '.js', '.mjs', '.cjs']);

/** Every .ts/.js file under the given folders (relative to root), node_modules excluded. */
export function sourceFiles(root: string, folders: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      if (entry === 'node_modules') continue;
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (SOURCE_EXTENSIONS.has(path.extname(entry)) && !entry.endsWith('.d.ts')) files.push(full);
    }
  };
  for (const folder of folders) walk(path.join(root, folder));
  return files.sort();
}

/** Methods of String that turn a string argument into a RegExp (replace and split do not). */
const IMPLICIT_REGEX_METHODS = new Set(['match', 'matchAll', 'search']);

export function surveyRegexes(root: string, files: readonly string[]): RegexSurvey {
  const program = ts.createProgram([...files], {
    allowJs: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const regexes: FoundRegex[] = [];
  const nonConstant: string[] = [];

  for (const file of files) {
    const sourceFile = program.getSourceFile(file);
    if (!sourceFile) throw new Error(`${file} was not loaded`);
    const constants = new ConstantEvaluator(sourceFile);
    const where = (node: ts.Node): string => {
      const { line } = sourceFile.getLineAndCharacterOfPosition(node.getStart(sourceFile));
      return `${path.relative(root, file)}:${line + 1}`;
    };
    const constructed = (node: ts.Node, args: readonly ts.Expression[]): void => {
      const [patternArg, flagsArg] = args;
      const pattern = patternArg === undefined ? '' : constants.regexSource(patternArg);
      const flags = flagsArg === undefined ? undefined : constants.value(flagsArg);
      if (pattern === undefined || (flagsArg !== undefined && typeof flags !== 'string')) {
        nonConstant.push(`${where(node)}: ${node.getText(sourceFile).slice(0, 160)}`);
        return;
      }
      const literalFlags = patternArg !== undefined && ts.isRegularExpressionLiteral(patternArg) ? splitLiteral(patternArg.text).flags : '';
      regexes.push({ where: where(node), source: pattern, flags: typeof flags === 'string' ? flags : literalFlags });
    };
    const visit = (node: ts.Node): void => {
      if (ts.isRegularExpressionLiteral(node)) {
        regexes.push({ where: where(node), ...splitLiteral(node.text) });
      } else if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && isRegExpConstructor(node.expression)) {
        constructed(node, node.arguments ?? []);
        // The arguments were judged above; a literal among them is not a second regex.
        return;
      } else if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        IMPLICIT_REGEX_METHODS.has(node.expression.name.text) &&
        node.arguments[0] !== undefined &&
        !ts.isRegularExpressionLiteral(node.arguments[0]) &&
        isStringLike(checker, node.expression.expression) &&
        isStringLike(checker, node.arguments[0])
      ) {
        constructed(node, [node.arguments[0]]);
      }
      ts.forEachChild(node, visit);
    };
    visit(sourceFile);
  }
  return { regexes, nonConstant };
}

function isRegExpConstructor(callee: ts.Expression): boolean {
  if (ts.isIdentifier(callee)) return callee.text === 'RegExp';
  return ts.isPropertyAccessExpression(callee) && callee.name.text === 'RegExp';
}

function isStringLike(checker: ts.TypeChecker, node: ts.Expression): boolean {
  const type = checker.getTypeAtLocation(node);
  const parts = type.isUnion() ? type.types : [type];
  return parts.some((part) => (part.flags & ts.TypeFlags.StringLike) !== 0);
}

/** `/abc/gi` → source `abc`, flags `gi`. */
function splitLiteral(text: string): { source: string; flags: string } {
  const end = text.lastIndexOf('/');
  return { source: text.slice(1, end), flags: text.slice(end + 1) };
}

/** Constant folding over literals, templates, + - * and the file's own `const` declarations. */
class ConstantEvaluator {
  private readonly declarations = new Map<string, ts.Expression>();

  constructor(sourceFile: ts.SourceFile) {
    // A name declared more than once (in different scopes) is ambiguous: never a constant.
    const ambiguous = new Set<string>();
    const collect = (node: ts.Node): void => {
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name)) {
        const name = node.name.text;
        const isConst = (node.parent.flags & ts.NodeFlags.Const) !== 0;
        if (this.declarations.has(name) || ambiguous.has(name) || !isConst || !node.initializer) {
          this.declarations.delete(name);
          ambiguous.add(name);
        } else {
          this.declarations.set(name, node.initializer);
        }
      }
      ts.forEachChild(node, collect);
    };
    collect(sourceFile);
  }

  /** The pattern of a RegExp argument: a constant string, or the source of a regex literal. */
  regexSource(node: ts.Expression): string | undefined {
    const inner = unwrap(node);
    if (ts.isRegularExpressionLiteral(inner)) return splitLiteral(inner.text).source;
    const value = this.value(inner);
    return typeof value === 'string' ? value : undefined;
  }

  value(node: ts.Expression, seen: ReadonlySet<string> = new Set()): string | number | undefined {
    const inner = unwrap(node);
    if (ts.isStringLiteral(inner) || ts.isNoSubstitutionTemplateLiteral(inner)) return inner.text;
    if (ts.isNumericLiteral(inner)) return Number(inner.text);
    if (ts.isTemplateExpression(inner)) {
      let text = inner.head.text;
      for (const span of inner.templateSpans) {
        const part = this.value(span.expression, seen);
        if (part === undefined) return undefined;
        text += String(part) + span.literal.text;
      }
      return text;
    }
    if (ts.isBinaryExpression(inner)) {
      const left = this.value(inner.left, seen);
      const right = this.value(inner.right, seen);
      if (left === undefined || right === undefined) return undefined;
      switch (inner.operatorToken.kind) {
        case ts.SyntaxKind.PlusToken:
          return typeof left === 'number' && typeof right === 'number' ? left + right : String(left) + String(right);
        case ts.SyntaxKind.MinusToken:
          return typeof left === 'number' && typeof right === 'number' ? left - right : undefined;
        case ts.SyntaxKind.AsteriskToken:
          return typeof left === 'number' && typeof right === 'number' ? left * right : undefined;
        default:
          return undefined;
      }
    }
    if (ts.isIdentifier(inner)) {
      const initializer = this.declarations.get(inner.text);
      if (initializer === undefined || seen.has(inner.text)) return undefined;
      return this.value(initializer, new Set([...seen, inner.text]));
    }
    return undefined;
  }
}

function unwrap(node: ts.Expression): ts.Expression {
  let current = node;
  while (ts.isParenthesizedExpression(current) || ts.isAsExpression(current) || ts.isSatisfiesExpression(current)) {
    current = current.expression;
  }
  return current;
}
