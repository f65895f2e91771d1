// Who the client is, for rate limits and brute-force counters. X-Forwarded-For is anyone's to
// write, so it is believed only when the connection comes from a configured trusted proxy, and
// then only as far as the chain of trusted proxies goes: the address is the right-most entry
// that is not itself a trusted proxy (entries left of it were written by the client).
import { isIP } from 'node:net';
import { inAddressList, normalizeAddress, parseAddressList } from '../../platform/util/addresses';
import type { IncomingMessage } from 'node:http';

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

export function clientIpResolver(trustedProxies: readonly string[]): ClientIpResolver {
  const { list } = parseAddressList(trustedProxies);
  const trusted = (address: string): boolean => inAddressList(list, address);
  const noProxies = trustedProxies.length === 0;

  return (req) => {
    let client = normalizeAddress(req.socket.remoteAddress ?? 'unknown');
    const forwarded = req.headers['x-forwarded-for'];
    if (!noProxies && forwarded !== undefined && trusted(client)) {
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
