// A throw-away self-signed certificate for 127.0.0.1 and localhost, made with openssl at run time.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificate {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate's PEM, to trust it as its own CA. */
  readonly cert: string;
  readonly env: { TLS_CERT_FILE: string; TLS_KEY_FILE: string };
  remove(): void;
}

export function createTestCertificate(): TestCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  // An EC key: made in milliseconds, unlike RSA.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  return {
    dir,
    certFile,
    keyFile,
    cert: readFileSync(certFile, 'utf8'),
    env: { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
