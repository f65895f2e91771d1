// What a restore will hand to the command-line client, read before anything is loaded. The client
// runs more than SQL: `\!` and `system` run shell commands, `\.` reads files, `tee` writes them,
// `use` and `connect` switch databases, and the server obeys USE, GRANT or `other.t` as readily
// as our own tables. mariadb-dump and mysqldump write only SQL statements of a few kinds,
// comments and `/*!…*/` version comments, so anything else is refused.
//
// One pass, one character at a time (strings and comments skipped with native searches), state
// carried across chunks: linear in the size of the dump, whatever it holds. It tracks quoting the
// way both the client and the server read it, and refuses what would make them read it
// differently (a backslash in a backtick name, control characters, comments inside version
// comments, modes and character sets that change how quotes and backslashes are read), so text
// cannot hide inside what this scan takes for a string or a comment.

/** Statements a dump of one database starts with (version comments are read as the code they hold). */
const STATEMENT_STARTS: ReadonlySet<string> = new Set(['SET', 'DROP', 'CREATE', 'ALTER', 'LOCK', 'UNLOCK', 'INSERT']);

/** What may follow each statement's first word. */
const SECOND_WORDS: Readonly<Record<string, ReadonlySet<string>>> = {
  DROP: new Set(['TABLE', 'VIEW', 'PROCEDURE', 'FUNCTION', 'TRIGGER', 'SEQUENCE']),
  CREATE: new Set(['TABLE', 'TRIGGER', 'PROCEDURE', 'FUNCTION', 'SEQUENCE', 'VIEW', 'DEFINER', 'ALGORITHM', 'OR', 'SQL', 'AGGREGATE']),
  ALTER: new Set(['TABLE']),
  LOCK: new Set(['TABLES']),
  UNLOCK: new Set(['TABLES']),
  INSERT: new Set(['INTO', 'IGNORE']),
};

/** Words that name or switch a database. */
const DATABASE_WORDS: ReadonlySet<string> = new Set(['USE', 'DATABASE', 'DATABASES', 'SCHEMA', 'SCHEMAS']);

/** Words that reach beyond this database's tables: accounts, server state, files, other servers. */
const FOREIGN_WORDS: ReadonlySet<string> = new Set([
  'GRANT', 'REVOKE', 'USER', 'ROLE', 'PASSWORD', 'SERVER', 'GLOBAL', 'PERSIST', 'PERSIST_ONLY', 'OUTFILE',
  'DUMPFILE', 'INFILE', 'LOAD_FILE', 'PLUGIN', 'SONAME', 'EVENT', 'SHUTDOWN', 'KILL', 'TABLESPACE', 'INSTALL',
  'UNINSTALL', 'MASTER', 'SLAVE', 'REPLICA', 'BINLOG', 'PREPARE', 'EXECUTE', 'DEALLOCATE', 'HANDLER', 'FLUSH',
  'PURGE', 'DIRECTORY', 'CONNECTION', 'FEDERATED', 'FEDERATEDX', 'CONNECT', 'SPIDER',
]);

/** The mysql/mariadb client's own commands (named form); at a line's start the client may run them. */
const CLIENT_COMMANDS: ReadonlySet<string> = new Set([
  'help', 'clear', 'connect', 'delimiter', 'edit', 'ego', 'exit', 'go', 'nopager', 'notee', 'nowarning', 'pager',
  'print', 'prompt', 'quit', 'rehash', 'source', 'status', 'system', 'tee', 'use', 'charset', 'warnings',
  'sandbox', 'query_attributes', 'ssl_session_data_print', 'resetconnection',
]);

/**
 * In a SET statement: modes that change how the server reads quotes and backslashes (so it would
 * read the rest differently from this scan), and character sets whose characters can end in the
 * byte of a backslash or a quote.
 */
const SET_FORBIDDEN: readonly string[] = ['NO_BACKSLASH_ESCAPES', 'ANSI', 'ORACLE', 'MSSQL', 'DB2', 'POSTGRESQL', 'MAXDB', 'BIG5', 'CP932', 'SJIS', 'GBK', 'GB18030'];

/** A word after which a name is a table (so `NEW.t` there is database `new`, not the trigger's row). */
const TABLE_POSITION_WORDS: ReadonlySet<string> = new Set([
  'INTO', 'UPDATE', 'TABLE', 'TABLES', 'FROM', 'JOIN', 'INSERT', 'REPLACE', 'DELETE', 'REFERENCES', 'TRUNCATE',
  'STRAIGHT_JOIN', 'CALL', 'LIKE',
]);
/** A word after which names are values again (columns, NEW.col). */
const EXPRESSION_WORDS: ReadonlySet<string> = new Set([
  'SET', 'WHERE', 'VALUES', 'VALUE', 'SELECT', 'ON', 'USING', 'HAVING', 'BY', 'LIMIT', 'THEN', 'ELSE', 'ELSEIF',
  'WHEN', 'IF', 'RETURN', 'AND', 'OR', 'XOR', 'NOT', 'CASE', 'DO', 'BEGIN', 'END', 'ROW', 'IS', 'IN', 'BETWEEN',
]);

/** The line mariadb-dump writes first for its own client (`\-` turns sandbox mode on there). */
const SANDBOX_LINE = '/*M!999999\\- enable the sandbox mode */';
/** Longest look-ahead of any rule below: `/*M!` and a version of up to six digits. */
const LOOKAHEAD = 12;
const MAX_WORD = 64;
const MAX_SET_STRING = 256;

type Mode = 'code' | 'squote' | 'dquote' | 'backtick' | 'lineComment' | 'blockComment' | 'delimiterArg';
type TokenKind = 'word' | 'name' | 'string' | 'punct';

interface Token {
  readonly kind: TokenKind;
  /** Upper-cased word, the name or string (bounded), or the punctuation character. */
  readonly value: string;
  /** The second part of an accepted NEW.col / OLD.col. */
  readonly qualifiedPart?: boolean;
}

const NONE: Readonly<Token> = { kind: 'punct', value: '' };

/** One token object per punctuation character, not one per occurrence (rows are mostly `(`, `,` and `)`). */
const PUNCTUATION: ReadonlyMap<string, Token> = new Map(
  Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i)).map((char) => [char, Object.freeze({ kind: 'punct', value: char })]),
);
function punctuation(char: string): Token {
  return PUNCTUATION.get(char) ?? { kind: 'punct', value: char };
}


function isWordChar(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) ||
    code === 0x5f || code === 0x24 || code >= 0x80
  );
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/** Text of the dump, bounded and printable, for a message. */
function shown(text: string): string {
  const visible = text.replace(/[^\x20-\x7e]/g, '?');
  return visible.length > 40 ? `${visible.slice(0, 40)}…` : visible;
}

export class DumpScanner {
  // Sticky and global expressions carry their position in lastIndex: one set per scanner, so two
  // scans never move each other's.
  private readonly WORD = /[A-Za-z0-9_$\x80-\xff]+/y;
  private readonly SQUOTE_STOP = /['\\]/g;
  private readonly DQUOTE_STOP = /["\\]/g;
  private readonly BACKTICK_STOP = /[`\\]/g;
  private mode: Mode = 'code';
  private inVersionComment = false;
  private carry = '';
  private started = false;
  private finished = false;
  /** Lines before the text being scanned. */
  private lineBase = 1;
  private text = '';
  private atLineStart = true;
  private delimiter: ';' | ';;' = ';';
  private delimiterArg = '';
  private problemText: string | undefined;

  // The word being read (it may continue in the next chunk).
  private word = '';
  private wordLength = 0;
  private wordAtLineStart = false;
  private wordPos = 0;

  // The quoted string or name being read.
  private quoted = '';
  private quotedLength = 0;

  // The statement being read.
  private tokens = 0;
  private first = '';
  private trigger = false;
  private tableContext = false;
  private prev1: Token = NONE;
  private prev2: Token = NONE;
  private prev3: Token = NONE;

  /** The first reason to refuse the dump, in words; undefined while it is fine. */
  get problem(): string | undefined {
    return this.problemText;
  }

  /** Scans the next piece of the dump, as latin1 text (one character per byte). */
  feed(chunk: string): void {
    if (this.problemText !== undefined) return;
    this.scan(this.carry + chunk, false);
  }

  /** The dump has ended: whatever is left is scanned, and an unfinished statement is a problem. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.problemText === undefined) this.scan(this.carry, true);
    if (this.problemText !== undefined) return;
    if (this.mode === 'delimiterArg') this.endDelimiterLine(this.text.length);
    else this.flushWord();
    if (this.problemText !== undefined) return;
    if (this.mode !== 'code' && this.mode !== 'lineComment') this.refuse('it ends inside a quoted string, name or comment');
    else if (this.inVersionComment) this.refuse('it ends inside a /*!…*/ comment');
    else if (this.tokens > 0) this.refuse('its last statement has no end');
    else if (this.delimiter !== ';') this.refuse('it ends with the statement delimiter still changed');
  }

  private refuse(reason: string, at?: number): void {
    if (this.problemText !== undefined) return;
    const line = at === undefined ? undefined : this.lineBase + this.countLines(0, at);
    this.problemText = line === undefined ? reason : `${reason} (line ${line})`;
  }

  private countLines(from: number, to: number): number {
    let count = 0;
    for (let i = this.text.indexOf('\n', from); i !== -1 && i < to; i = this.text.indexOf('\n', i + 1)) count++;
    return count;
  }

  private scan(input: string, final: boolean): void {
    if (!this.started) {
      if (!final && input.length < SANDBOX_LINE.length) {
        this.carry = input;
        return;
      }
      this.started = true;
      // The one backslash a dump holds outside a string: MariaDB's guard line for its own client.
      if (input.startsWith(SANDBOX_LINE)) input = ' '.repeat(SANDBOX_LINE.length) + input.slice(SANDBOX_LINE.length);
    }
    this.text = input;
    if (input.includes('\0')) {
      this.refuse('it holds a NUL byte, which a dump never does', input.indexOf('\0'));
      return;
    }
    const limit = final ? input.length : Math.max(0, input.length - LOOKAHEAD);
    let i = 0;
    while (i < limit && this.problemText === undefined) i = this.step(i, limit);
    if (this.problemText !== undefined) return;
    this.lineBase += this.countLines(0, i);
    this.carry = input.slice(i);
    // A word or string that goes on in the next text is reported at that text's first line.
    this.wordPos = 0;
  }

  /** Consumes at least one character from i; returns where to go on. */
  private step(i: number, limit: number): number {
    switch (this.mode) {
      case 'code':
        return this.codeStep(i, limit);
      case 'squote':
        return this.quotedStep(i, limit, this.SQUOTE_STOP, "'");
      case 'dquote':
        return this.quotedStep(i, limit, this.DQUOTE_STOP, '"');
      case 'backtick':
        return this.quotedStep(i, limit, this.BACKTICK_STOP, '`');
      case 'lineComment': {
        const end = this.text.indexOf('\n', i);
        if (end === -1 || end >= limit) return limit;
        this.mode = 'code';
        this.atLineStart = true;
        return end + 1;
      }
      case 'blockComment': {
        const end = this.text.indexOf('*/', i);
        if (end === -1 || end >= limit) return limit;
        this.mode = 'code';
        return end + 2;
      }
      case 'delimiterArg': {
        const end = this.text.indexOf('\n', i);
        const stop = end === -1 || end >= limit ? limit : end;
        this.delimiterArg += this.text.slice(i, stop);
        if (this.delimiterArg.length > 16) this.refuse('it holds a DELIMITER line a dump never writes', i);
        if (stop === end) {
          this.endDelimiterLine(end);
          return end + 1;
        }
        return stop;
      }
    }
  }

  private endDelimiterLine(at: number): void {
    const arg = this.delimiterArg.trim();
    if (arg !== ';' && arg !== ';;') {
      this.refuse(`it sets the statement delimiter to "${shown(arg)}", which a dump never does`, at);
      return;
    }
    this.delimiter = arg;
    this.delimiterArg = '';
    this.mode = 'code';
    this.atLineStart = true;
  }

  private codeStep(i: number, limit: number): number {
    const text = this.text;
    const code = text.charCodeAt(i);
    if (isWordChar(code)) {
      this.WORD.lastIndex = i;
      this.WORD.exec(text);
      const end = Math.min(this.WORD.lastIndex, limit);
      if (this.wordLength === 0) {
        this.wordAtLineStart = this.atLineStart;
        this.wordPos = i;
      }
      this.atLineStart = false;
      if (this.word.length < MAX_WORD + 1) this.word += text.slice(i, Math.min(end, i + MAX_WORD + 1 - this.word.length));
      this.wordLength += end - i;
      // Only a number or a hex literal (--hex-blob) is longer than a name may be.
      if (this.wordLength > MAX_WORD) {
        const longOk = /^0x/i.test(this.word) ? /^(?:0x)?[0-9a-f]*$/i : /^\d*$/;
        if (!longOk.test(text.slice(i, end))) this.refuse(`it holds a word longer than any name ("${shown(this.word)}")`, i);
      }
      // A word that reaches the end of the text read so far may go on in the next chunk.
      if (end < this.WORD.lastIndex || end === text.length) return end;
      this.flushWord();
      return end;
    }
    this.flushWord();
    // DELIMITER switches to reading its argument, starting with this very character.
    if (this.mode !== 'code') return i;
    if (isSpace(code)) {
      if (code === 0x0a) this.atLineStart = true;
      return i + 1;
    }
    const lineStart = this.atLineStart;
    this.atLineStart = false;
    const next = text[i + 1];
    switch (text[i]) {
      case "'":
        return this.openQuote('squote', i);
      case '"':
        return this.openQuote('dquote', i);
      case '`':
        return this.openQuote('backtick', i);
      case '\\':
        this.refuse(`it holds a client command ("\\${shown(next ?? '')}"), which a dump never does`, i);
        return i + 1;
      case '#':
        return this.lineComment(i, 1);
      case '-':
        if (next === '-') {
          const after = text.charCodeAt(i + 2);
          if (Number.isNaN(after) || isSpace(after)) return this.lineComment(i, 2);
          if (after < 0x20) this.refuse('it holds "--" before a control character, which the client and the server read differently', i);
        }
        break;
      case '/':
        if (next === '*') return this.openComment(i);
        break;
      case '*':
        if (next === '/') {
          if (!this.inVersionComment) this.refuse('it holds a "*/" that closes nothing', i);
          this.inVersionComment = false;
          return i + 2;
        }
        break;
      case ';':
        if (this.delimiter === ';' || next === ';') {
          if (this.inVersionComment) this.refuse('it ends a statement inside a /*!…*/ comment, which a dump never does', i);
          this.endStatement();
          return i + this.delimiter.length;
        }
        break;
      case '?':
        if (lineStart) this.refuse('it holds a client command ("?"), which a dump never does', i);
        break;
      default:
        if (code < 0x20 || code === 0x7f) {
          this.refuse(`it holds a control character (0x${code.toString(16).padStart(2, '0')}) outside a string`, i);
          return i + 1;
        }
    }
    this.token(punctuation(text[i] ?? ''), i);
    return i + 1;
  }

  private lineComment(i: number, length: number): number {
    if (this.inVersionComment) this.refuse('it holds a line comment inside a /*!…*/ comment, which a dump never does', i);
    this.mode = 'lineComment';
    return i + length;
  }

  private openComment(i: number): number {
    if (this.inVersionComment) {
      this.refuse('it holds a comment inside a /*!…*/ comment, which a dump never does', i);
      return i + 2;
    }
    const text = this.text;
    if (text[i + 2] === '+') {
      // MySQL's client reads an optimizer hint as code (it runs a `\!` inside one); dumps have none.
      this.refuse('it holds an optimizer hint (/*+ … */), which a dump never does', i);
      return i + 3;
    }
    const version = text[i + 2] === '!' ? 3 : text[i + 2] === 'M' && text[i + 3] === '!' ? 4 : 0;
    if (version === 0) {
      this.mode = 'blockComment';
      return i + 2;
    }
    // `/*!40101 SET … */`: the server (and the client) read what is inside as code.
    this.inVersionComment = true;
    let j = i + version;
    while (j < i + version + 6 && j < text.length && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
    return j;
  }

  private openQuote(mode: 'squote' | 'dquote' | 'backtick', i: number): number {
    this.mode = mode;
    this.quoted = '';
    this.quotedLength = 0;
    this.wordPos = i;
    return i + 1;
  }

  /** Inside a string or a backtick name: up to the next quote or backslash. */
  private quotedStep(i: number, limit: number, stops: RegExp, quote: string): number {
    const text = this.text;
    stops.lastIndex = i;
    const found = stops.exec(text);
    const stop = found === null || found.index >= limit ? limit : found.index;
    this.keepQuoted(text, i, stop);
    if (stop === limit) return limit;
    if (text[stop] === '\\') {
      if (quote === '`') {
        // The client reads a backslash in a name as an escape, the server does not: refused, so both agree.
        this.refuse('it holds a backslash in a `name`, which the client and the server read differently', stop);
        return stop + 1;
      }
      this.keepQuoted(text, stop, stop + 2);
      return stop + 2;
    }
    if (text[stop + 1] === quote) {
      this.keepQuoted(text, stop, stop + 1);
      return stop + 2;
    }
    this.mode = 'code';
    this.token({ kind: quote === '`' ? 'name' : 'string', value: this.quoted }, this.wordPos);
    return stop + 1;
  }

  private keepQuoted(text: string, from: number, to: number): void {
    this.quotedLength += to - from;
    // Only SET statements, version comments and names look at what is inside (the rows need not).
    if (this.first !== 'SET' && !this.inVersionComment && this.mode !== 'backtick') return;
    if (this.quoted.length <= MAX_SET_STRING) this.quoted += text.slice(from, Math.min(to, from + MAX_SET_STRING + 1 - this.quoted.length));
  }

  private flushWord(): void {
    if (this.wordLength === 0) return;
    const word = this.word;
    const at = this.wordPos;
    const lineStart = this.wordAtLineStart;
    this.word = '';
    this.wordLength = 0;
    const lower = word.toLowerCase();
    if (lower.includes('delimiter')) {
      // The client takes "delimiter " anywhere outside strings and comments as its command.
      if (lower === 'delimiter' && lineStart && this.tokens === 0 && !this.inVersionComment) {
        this.mode = 'delimiterArg';
        this.delimiterArg = '';
        return;
      }
      this.refuse(`it holds the client command "delimiter" where a dump never does`, at);
      return;
    }
    // (`use` is refused below with every other mention of a database.)
    if (lineStart && lower !== 'use' && CLIENT_COMMANDS.has(lower)) {
      this.refuse(`it holds a client command ("${shown(word)}" at the start of a line), which a dump never does`, at);
      return;
    }
    this.token({ kind: 'word', value: isDigit(word.charCodeAt(0)) ? word : word.toUpperCase() }, at);
  }

  private endStatement(): void {
    this.tokens = 0;
    this.first = '';
    this.trigger = false;
    this.tableContext = false;
    this.prev1 = this.prev2 = this.prev3 = NONE;
  }

  private token(token: Token, at: number): void {
    if (this.problemText !== undefined) return;
    const { kind, value } = token;
    if (kind === 'word' && !isDigit(value.charCodeAt(0))) {
      if (DATABASE_WORDS.has(value) && this.prev1.value !== '@') {
        const words = this.tokens > 0 && this.prev1.kind === 'word' ? `${this.prev1.value} ${value}` : value;
        this.refuse(
          `it names its own database (USE or CREATE DATABASE, as --databases writes) or another one ("${shown(words)}"); ` +
            'it could load or write somewhere else',
          at,
        );
        return;
      }
      if (FOREIGN_WORDS.has(value)) {
        this.refuse(`it holds "${value}", which reaches beyond this database's tables and a dump never holds`, at);
        return;
      }
      if (value === 'TRIGGER') this.trigger = true;
    }

    if (this.tokens === 0) {
      if (kind !== 'word' || !STATEMENT_STARTS.has(value)) {
        this.refuse(`it holds a statement a dump never writes ("${shown(value)}")`, at);
        return;
      }
      this.first = value;
    } else if (this.tokens === 1) {
      const allowed = SECOND_WORDS[this.first];
      if (allowed && (kind !== 'word' || !allowed.has(value))) {
        this.refuse(`it holds a statement a dump never writes ("${this.first} ${shown(value)}")`, at);
        return;
      }
    }
    this.tokens++;

    let qualifiedPart = false;
    if ((kind === 'word' || kind === 'name') && this.prev1.value === '.' && this.prev1.kind === 'punct') {
      const qualifier = this.prev2;
      const isNumber = qualifier.kind === 'word' && /^\d+$/.test(qualifier.value);
      if ((qualifier.kind === 'word' || qualifier.kind === 'name') && !isNumber) {
        if (!this.qualifiedNameAllowed(qualifier)) {
          this.refuse(
            `it holds a qualified name (${shown(qualifier.value)}.${shown(value)}): a dump of one database ` +
              'never names another database',
            at,
          );
          return;
        }
        qualifiedPart = true;
      }
    }

    if (this.first === 'SET') this.checkSet(token, at);
    if (this.inVersionComment && kind === 'string' && value.includes('*/')) {
      this.refuse('it holds "*/" inside a string inside a /*!…*/ comment, which a dump never does', at);
    }

    if (kind === 'word') {
      if (TABLE_POSITION_WORDS.has(value)) this.tableContext = true;
      else if (EXPRESSION_WORDS.has(value)) this.tableContext = false;
    } else if (kind === 'punct' && value !== ',' && value !== '(' && value !== ')' && value !== '.') {
      this.tableContext = false;
    }
    this.prev3 = this.prev2;
    this.prev2 = this.prev1;
    this.prev1 = qualifiedPart ? { ...token, qualifiedPart } : token;
  }

  /**
   * `@@SESSION.x` (a session variable), and NEW.col / OLD.col in a trigger (its row) where a value
   * goes; anything else with a dot (`other.t`, `db.t.col`) may name another database.
   */
  private qualifiedNameAllowed(qualifier: Token): boolean {
    if (qualifier.qualifiedPart) return false;
    if (this.prev3.value === '@') return qualifier.value === 'SESSION' || qualifier.value === 'LOCAL';
    return (
      this.trigger && qualifier.kind === 'word' && (qualifier.value === 'NEW' || qualifier.value === 'OLD') && !this.tableContext
    );
  }

  /**
   * A dump's SET statements assign plain values: saved variables, quoted modes and names, 0 or 1.
   * Anything that could spell a mode or a character set another way (expressions, concatenated
   * or hex strings, numbers) is refused, and so are the modes and character sets themselves.
   */
  private checkSet(token: Token, at: number): void {
    const { kind, value } = token;
    if (kind === 'punct' && value === '(') {
      this.refuse('it holds a SET statement with an expression, which a dump never writes', at);
      return;
    }
    if (kind === 'string') {
      if (this.prev1.kind === 'string' || (this.prev1.kind === 'word' && /^[XB]$/.test(this.prev1.value))) {
        this.refuse('it holds a SET statement with a concatenated or hex string, which a dump never writes', at);
        return;
      }
      if (this.quotedLength > MAX_SET_STRING) {
        this.refuse('it holds a SET statement with a long string, which a dump never writes', at);
        return;
      }
    }
    if (kind === 'word' && /^\d/.test(value) && value !== '0' && value !== '1') {
      this.refuse(`it holds a SET statement with the number ${shown(value)}, which a dump never writes`, at);
      return;
    }
    const upper = value.toUpperCase();
    const forbidden = SET_FORBIDDEN.find((name) => upper.includes(name));
    if (forbidden !== undefined) {
      this.refuse(`it sets ${forbidden}, which changes how the rest would be read`, at);
    }
  }
}
