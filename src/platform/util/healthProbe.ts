// One GET /health against this service on this host, for the supervisor's watch and the start
// scripts alike: the address to reach, and what came back.
import http from 'node:http';
import https from 'node:https';

const PROBE_TIMEOUT_MS = 2000;

/** The URL that reaches a service listening on host:port from this host (a wildcard is probed on loopback). */
export function localUrl(host: string, port: number, tls: boolean): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${tls ? 'https' : 'http'}://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

export interface HealthAnswer {
  /** The HTTP status, or 0 when nothing answered. */
  readonly status: number;
  /** The body, up to its first 1,000 characters. */
  readonly body: string;
  /** When status is 0 or the answer broke off: what went wrong ("unreachable: ECONNREFUSED"). */
  readonly problem?: string;
}

/** GET <baseUrl>/health once, within 2 s; our own service, possibly with a self-signed certificate. */
export function probeHealth(baseUrl: string): Promise<HealthAnswer> {
  return new Promise((resolve) => {
    const client = baseUrl.startsWith('https:') ? https : http;
    const req = client.get(`${baseUrl}/health`, { timeout: PROBE_TIMEOUT_MS, rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk.slice(0, 1000 - body.length)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (error) => resolve({ status: res.statusCode ?? 0, body, problem: `failed: ${error.message}` }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ status: 0, body: '', problem: `unreachable: ${error.code ?? error.message}` }),
    );
  });
}
