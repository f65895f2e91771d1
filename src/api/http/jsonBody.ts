// Reads a JSON request body, refusing cheaply what restify's bodyParser would accept or read
// in full: bodies over the limit (413 as soon as the limit is passed, without reading the rest),
// other media types and compressed bodies (415), invalid UTF-8, malformed or deeply nested JSON (400).
import type { Next, Request, Response } from 'restify';
import { BadRequestError, InvalidContentError, PayloadTooLargeError, UnsupportedMediaTypeError } from 'restify-errors';

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;
const MAX_JSON_DEPTH = 20;

/** Deepest nesting of objects and arrays, strings skipped; stops counting past the limit. */
function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return false;
}

// Shared safely: decode() without the `stream` option keeps nothing from one call to the next.
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function jsonBody(maxBytes: number) {
  return function readJsonBody(req: Request, res: Response, next: Next): void {
    if (!JSON_TYPE.test(req.getContentType())) {
      next(new UnsupportedMediaTypeError('Content-Type must be application/json'));
      return;
    }
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      next(new UnsupportedMediaTypeError('Compressed request bodies are not accepted'));
      return;
    }
    const tooLarge = (): void => {
      // The rest of the body stays unread: close the connection after answering.
      res.setHeader('Connection', 'close');
      next(new PayloadTooLargeError(`Request body must not exceed ${maxBytes} bytes`));
    };
    if (req.getContentLength() > maxBytes) {
      tooLarge();
      return;
    }

    const chunks: Buffer[] = [];
    let received = 0;
    let finished = false;
    const finish = (error?: Error): void => {
      if (finished) return;
      finished = true;
      req.removeListener('data', onData);
      if (error) {
        next(error);
        return;
      }
      try {
        req.body = parse(Buffer.concat(chunks, received));
        next();
      } catch (parseError) {
        next(parseError);
      }
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > maxBytes) {
        finished = true;
        req.removeListener('data', onData);
        req.pause();
        tooLarge();
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (error) => finish(error));
    req.once('aborted', () => finish(new BadRequestError('Request body was not received in full')));
  };
}

function parse(raw: Buffer): unknown {
  if (raw.length === 0) throw new BadRequestError('Request body must be a JSON object');
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new BadRequestError('Request body is not valid UTF-8');
  }
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw new BadRequestError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(text);
  } catch {
    // V8's message quotes the input, which may hold a password: keep it out of answers and logs.
    throw new InvalidContentError('Request body is not valid JSON');
  }
}
