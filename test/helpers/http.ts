// HTTP(S) to the service on loopback, with a bound on every request so a hang fails the test.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  readonly body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON shapes
  /** Milliseconds from sending to the end of the response. */
  readonly ms: number;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string or Buffer as is. */
  body?: unknown;
  timeoutMs?: number;
  /** HTTPS: trust this PEM certificate; without it, any certificate is accepted (our own, self-signed). */
  ca?: string;
}

export function request(baseUrl: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  const url = new URL(path, baseUrl);
  const headers: Record<string, string> = { ...options.headers };
  let payload: Buffer | undefined;
  if (options.body !== undefined) {
    if (Buffer.isBuffer(options.body)) payload = options.body;
    else if (typeof options.body === 'string') payload = Buffer.from(options.body);
    else {
      payload = Buffer.from(JSON.stringify(options.body));
      headers['content-type'] ??= 'application/json';
    }
    headers['content-length'] ??= String(payload.length);
    // An empty value asks for no Content-Length at all (with transfer-encoding: chunked).
    if (headers['content-length'] === '') delete headers['content-length'];
  }
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const tls = secure ? (options.ca === undefined ? { rejectUnauthorized: false } : { ca: options.ca }) : {};
    const req = (secure ? https : http).request(
      url,
      { method: options.method ?? (payload ? 'POST' : 'GET'), headers, agent: false, timeout: options.timeoutMs ?? 10_000, ...tls },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, ms: performance.now() - started });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${path} hung past ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Raw bytes to the port; resolves with what came back once the server closed the socket.
 * `from`: the local address to connect from (another loopback address, 127.0.0.2, is another client IP).
 */
export function rawExchange(port: number, write: (socket: net.Socket) => void, limitMs: number, from?: string): Promise<{ data: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ port, host: '127.0.0.1', ...(from === undefined ? {} : { localAddress: from }) }, () => write(socket));
    let data = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${limitMs} ms`));
    }, limitMs);
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('close', () => {
      clearTimeout(guard);
      resolve({ data, ms: Date.now() - started });
    });
    socket.on('error', () => undefined);
  });
}
