// Alerts to ALERT_WEBHOOK_URL: one JSON POST per alert, retried with backoff, bounded in time,
// and never able to block or crash the caller: a dead webhook costs a log line, nothing more.
import os from 'node:os';
import type { Logger } from './logging/logger';
import { escapeControlCharacters } from './util/clientText';
import { withRetry } from './util/retry';

export type AlertLevel = 'CRITICAL' | 'ERROR' | 'WARNING' | 'INFO';

export interface Alert {
  readonly level: AlertLevel;
  /** The PM2 app (or component) the alert is about. */
  readonly app: string;
  /** A short machine-readable name: crash_loop, health_unhealthy, backup_failed, … */
  readonly event: string;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export interface AlertPayload extends Alert {
  readonly time: string;
  readonly host: string;
  readonly service: 'resilient-api';
}

export interface AlertOptions {
  readonly attempts?: number;
  readonly timeoutMs?: number;
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
}

export class AlertSender {
  private readonly attempts: number;
  private readonly timeoutMs: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly url: string | undefined,
    private readonly log: Logger,
    options: AlertOptions = {},
  ) {
    this.attempts = options.attempts ?? 4;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.minDelayMs = options.minDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
  }

  get configured(): boolean {
    return this.url !== undefined;
  }

  /** Resolves true when the webhook accepted the alert; never rejects. */
  async send(alert: Alert): Promise<boolean> {
    const url = this.url;
    if (url === undefined) return false;
    const payload: AlertPayload = {
      ...alert,
      // Alerts quote log lines and other text a client may have shaped: printable, one line each.
      message: escapeControlCharacters(alert.message),
      ...(alert.details === undefined ? {} : { details: escapedDetails(alert.details) }),
      time: new Date().toISOString(),
      host: os.hostname(),
      service: 'resilient-api',
    };
    const body = JSON.stringify(payload);
    try {
      await withRetry(
        { attempts: this.attempts, minDelayMs: this.minDelayMs, maxDelayMs: this.maxDelayMs },
        {
          // Any failure may pass (a webhook restarting, a 502 from its proxy), except a 4xx
          // other than 408/429, which says the request itself is wrong.
          shouldRetry: (error) => !(error instanceof WebhookRefusal) || error.retriable,
          onRetry: (error, attempt, attempts) =>
            this.log.warn(`Alert webhook failed (attempt ${attempt} of ${attempts}): ${describe(error)}; retrying`),
        },
        async () => {
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'user-agent': 'resilient-api-alerts' },
            body,
            signal: AbortSignal.timeout(this.timeoutMs),
          });
          await response.arrayBuffer().catch(() => undefined);
          if (!response.ok) throw new WebhookRefusal(response.status);
        },
      );
      return true;
    } catch (error) {
      this.log.error(`Alert "${alert.event}" for ${alert.app} could not be delivered: ${describe(error)}`);
      return false;
    }
  }
}

class WebhookRefusal extends Error {
  constructor(readonly status: number) {
    super(`webhook answered ${status}`);
  }

  get retriable(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

/** Every string in the details (in arrays and objects too) with its unprintable characters escaped. */
function escapedDetails(details: Record<string, unknown>): Record<string, unknown> {
  const escape = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return escapeControlCharacters(value);
    if (depth > 5 || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => escape(item, depth + 1));
    // Only plain objects are rebuilt; anything else goes to JSON.stringify as it is.
    if (Object.getPrototypeOf(value) !== Object.prototype) return value;
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [escapeControlCharacters(key), escape(item, depth + 1)]));
  };
  return escape(details, 0) as Record<string, unknown>;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.name === 'TimeoutError' ? 'no answer in time' : error.message;
  return String(error);
}
