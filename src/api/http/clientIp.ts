// Who the client is, for rate limits and brute-force counters. X-Forwarded-For is anyone's to
// write, so it is believed only when the connection comes from a configured trusted proxy, and
// then only as far as the chain of trusted proxies goes: the address is the right-most entry
// that is not itself a trusted proxy (entries left of it were written by the client).
import { isIP } from 'node:net';
import { inAddressList, normalizeAddress, parseAddressList } from '../../platform/util/addresses';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../../platform/logging/logger';

/** Some proxies write `1.2.3.4:5678` or `[2001:db8::1]:5678`; the port says nothing about the client. */
function withoutPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  return v4?.[1] ?? hop;
}

/**
 * Not memoised: without trusted proxies it is a property read, and remembering it on each
 * request (a WeakMap entry, or a new property that changes the request objects' shape) cost
 * more than it saved on the rate limiter's hot path.
 */
export type ClientIpResolver = (req: IncomingMessage) => string;

/**
 * A load balancer in front of the service while TRUSTED_PROXIES does not name it: every client
 * then looks like the balancer, and shares one rate limit. The peer may as well be a client
 * writing the header itself, so the advice is conditional: only a balancer belongs in the list.
 * Said once per process (the first X-Forwarded-For from a peer outside TRUSTED_PROXIES), naming
 * the peer, never the header's text (anyone's to write). Built by the server, so the "once"
 * belongs to one server.
 */
export class UntrustedForwardingWarning {
  private warned = false;

  constructor(private readonly log: Logger) {}

  note(peer: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn(
      `X-Forwarded-For received from ${peer}, which is not in TRUSTED_PROXIES: the header is ignored and the client ` +
        `is taken to be ${peer}. If ${peer} is your load balancer, add it to TRUSTED_PROXIES (said once per process)`,
    );
  }
}

export function clientIpResolver(trustedProxies: readonly string[], untrusted?: UntrustedForwardingWarning): ClientIpResolver {
  const { list } = parseAddressList(trustedProxies);
  const trusted = (address: string): boolean => inAddressList(list, address);
  const noProxies = trustedProxies.length === 0;

  return (req) => {
    let client = normalizeAddress(req.socket.remoteAddress ?? 'unknown');
    const forwarded = req.headers['x-forwarded-for'];
    if (forwarded !== undefined && (noProxies || !trusted(client))) {
      untrusted?.note(client);
    } else if (forwarded !== undefined) {
      const hops = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).split(',');
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = normalizeAddress(withoutPort((hops[i] ?? '').trim()));
        if (isIP(hop) === 0) break; // garbage: stop at the last address we could vouch for
        client = hop;
        if (!trusted(hop)) break;
      }
    }
    return client;
  };
}
