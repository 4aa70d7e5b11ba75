import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Where outgoing webhooks may go (OUT-1, SSRF). Outside production any http(s) URL is
 * accepted (a developer's receiver on localhost). In production the URL must be https and
 * its host must not be, or resolve to, a loopback, private, link-local (cloud metadata),
 * carrier-grade NAT, multicast or reserved address. Literal addresses and local names are
 * refused when the endpoint is saved; names are checked at every connection (the lookup
 * below), so a DNS answer that changes after the endpoint was saved cannot point a
 * delivery at the internal network.
 */
const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped?.[1]) return !blocked.check(mapped[1], 'ipv4');
    return !blocked.check(address, 'ipv6');
  }
  return false;
}

export interface UrlPolicy {
  /** true in production: https only, public addresses only. */
  readonly strict: boolean;
}

/** Why a webhook URL is refused, or undefined when it is acceptable (addresses are checked at connection time). */
export function webhookUrlProblem(raw: string, policy: UrlPolicy): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an http(s) URL';
  if (policy.strict && url.protocol !== 'https:') return 'must be an https URL in production';
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
  if (url.hash !== '') return 'must not have a fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (policy.strict) {
    if (isIP(host) !== 0 && !isPublicAddress(host)) return 'must not point at a loopback, private or reserved address';
    if (isIP(host) === 0 && (host === 'localhost' || host.endsWith('.localhost') || !host.includes('.'))) return 'must be a public host name';
  }
  return undefined;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A dns.lookup for http.request that refuses non-public answers (strict policy only). */
export function guardedLookup(hostname: string, options: object, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const list = addresses;
    const refused = list.find((entry) => !isPublicAddress(entry.address));
    if (refused || list.length === 0) {
      const problem = Object.assign(new Error('the webhook host resolves to a non-public address'), { code: 'ADDRESS_NOT_ALLOWED' });
      return callback(problem, []);
    }
    if ((options as { all?: boolean }).all) return callback(null, list);
    const first = list[0]!;
    return callback(null, first.address, first.family);
  });
}
