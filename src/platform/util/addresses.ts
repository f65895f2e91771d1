// Lists of IP addresses and CIDR ranges, as the configuration writes them (TRUSTED_PROXIES, the
// monitoring allow-list): parsed once into a BlockList, then checked per request.
import { BlockList, isIP } from 'node:net';

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) is 1.2.3.4. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * Address lists (TRUSTED_PROXIES, METRICS_ALLOW): exact addresses (`10.0.0.5`, `::1`) or CIDR ranges (`10.0.0.0/8`).
 * Returns the problems found, so config.ts can name them all in its one message.
 */
export function parseAddressList(entries: readonly string[]): { list: BlockList; problems: string[] } {
  const list = new BlockList();
  const problems: string[] = [];
  for (const entry of entries) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? undefined : Number(prefix);
    const maxBits = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      extra !== undefined ||
      (bits !== undefined && (!/^\d{1,3}$/.test(prefix ?? '') || bits > maxBits))
    ) {
      problems.push(`"${entry}" is not an IP address or CIDR range`);
      continue;
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(normalizeAddress(address), type);
    else list.addSubnet(address, bits, type);
  }
  return { list, problems };
}

/** Whether an address (of either family) is in a list; anything that is not an IP is not. */
export function inAddressList(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/** 127.0.0.0/8 or ::1 (normalize `::ffff:127.0.0.1` first). */
export function isLoopback(address: string): boolean {
  return address === '::1' || (address.startsWith('127.') && isIP(address) === 4);
}
