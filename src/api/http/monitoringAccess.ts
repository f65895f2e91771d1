// Who may read the monitoring details (/metrics, /status/summary): they answer questions an
// attacker should not get answers to (does this username exist? how many workers, which pids?),
// so only the addresses in METRICS_ALLOW (this host by default) or a client with METRICS_TOKEN.
// Also who may use the fault-injection routes: loopback clients that came straight, never through a proxy.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { BlockList } from 'node:net';
import { inAddressList, isLoopback, normalizeAddress, parseAddressList } from '../../platform/util/addresses';
import type { ClientIpResolver } from './clientIp';

export interface MonitoringAccessOptions {
  /** Addresses and CIDR ranges allowed without a token (METRICS_ALLOW). */
  readonly allow: readonly string[];
  /** Bearer token that lets any client in (METRICS_TOKEN); undefined: none. */
  readonly token: string | undefined;
  readonly trustedProxies: readonly string[];
  readonly clientIp: ClientIpResolver;
}

/** Digests have one length whatever the input, so timingSafeEqual can compare them. */
const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

function forwarded(req: IncomingMessage): boolean {
  return req.headers['x-forwarded-for'] !== undefined || req.headers['forwarded'] !== undefined;
}

/**
 * A client on this very host that talks to the service directly: the socket peer is a loopback
 * address and the request carries no forwarding header (a reverse proxy on the same host
 * connects from loopback too, on behalf of anyone).
 */
export function isDirectLoopbackClient(req: IncomingMessage): boolean {
  return !forwarded(req) && isLoopback(normalizeAddress(req.socket.remoteAddress ?? ''));
}

export class MonitoringAccess {
  private readonly allowList: BlockList;
  private readonly trusted: BlockList;
  private readonly tokenDigest: Buffer | undefined;

  constructor(private readonly options: MonitoringAccessOptions) {
    this.allowList = parseAddressList(options.allow).list;
    this.trusted = parseAddressList(options.trustedProxies).list;
    this.tokenDigest = options.token === undefined ? undefined : digest(options.token);
  }

  /** Cheap: header reads, one hash when a token is offered, a BlockList lookup. */
  allows(req: IncomingMessage): boolean {
    return this.hasToken(req) || this.addressAllowed(req);
  }

  private hasToken(req: IncomingMessage): boolean {
    if (this.tokenDigest === undefined) return false;
    const header = req.headers.authorization;
    if (typeof header !== 'string' || header.length > 1024) return false;
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (!match?.[1]) return false;
    return timingSafeEqual(digest(match[1]), this.tokenDigest);
  }

  /**
   * The client's address as the rate limits see it. A forwarding header from a peer that is not
   * a trusted proxy leaves the client unknown (refused); `Forwarded` alone is not read, so a
   * request that carries only it is refused too rather than taken for the proxy's own.
   */
  private addressAllowed(req: IncomingMessage): boolean {
    const peer = normalizeAddress(req.socket.remoteAddress ?? '');
    if (!forwarded(req)) return inAddressList(this.allowList, peer);
    if (req.headers['x-forwarded-for'] === undefined || !inAddressList(this.trusted, peer)) return false;
    // The resolver falls back to the peer when no hop could be read: that is the proxy, not the client.
    const client = this.options.clientIp(req);
    return client !== peer && inAddressList(this.allowList, client);
  }
}
