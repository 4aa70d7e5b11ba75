import { isIPv4, isIPv6 } from 'node:net';
import type { FastifyRequest } from 'fastify';
// Also brings in the `request.principal` declaration.
import type { Principal } from '../../modules/auth/principal.js';
import type { RateLimitKeyKind } from './policies.js';

/**
 * Keys are `<kind>:<value>`: `ip:203.0.113.7`, `user:<userId>`, `account:<accountId>`,
 * `email:<normalised email>`. The kind is what logs, metrics and the audit hook see; the
 * value is personal data (IPs, emails) and is only ever stored hashed (backend.ts).
 */
export type RateLimitKey = `${RateLimitKeyKind}:${string}`;

export type KeyOf = (request: FastifyRequest) => string | undefined;

/** The kind of a key (`ip`, `user`, ...), or `other` for anything not of that shape. */
export function keyKindOf(key: string): string {
  const separator = key.indexOf(':');
  const kind = separator > 0 ? key.slice(0, separator) : '';
  return /^[a-z_]{1,20}$/.test(kind) ? kind : 'other';
}

/**
 * The bucket of a client address. IPv4 addresses (also IPv4-mapped IPv6) as they are;
 * IPv6 addresses by their /64 network, since one subscriber usually holds a whole /64
 * and could otherwise take a fresh bucket per request.
 */
export function ipBucket(address: string): string {
  const withoutZone = address.split('%', 1)[0] ?? address;
  if (isIPv4(withoutZone)) return withoutZone;
  if (!isIPv6(withoutZone)) return withoutZone.toLowerCase();
  const groups = expandIPv6(withoutZone);
  const mapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (mapped) {
    const high = groups[6] ?? 0;
    const low = groups[7] ?? 0;
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with :: and a dotted IPv4 tail resolved). */
function expandIPv6(address: string): number[] {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const zeros = new Array<number>(8 - left.length - right.length).fill(0);
  return [...left, ...zeros, ...right];
}

/**
 * Lower-cased, trimmed, NFKC-normalised: the same person's email always gives the same
 * key, whether or not an account exists for it (no enumeration through limits).
 */
export function normaliseEmail(email: string): string {
  return email.normalize('NFKC').trim().toLowerCase();
}

/** The client IP key (request.ip honours X-Forwarded-For only from TRUST_PROXY, RL-3). */
export function ipKeyOf(request: FastifyRequest): string {
  return `ip:${ipBucket(request.ip)}`;
}

/** Keyed by the client IP. */
export const byIp: KeyOf = ipKeyOf;

/**
 * Keyed by the person: a user (or a service acting for one) by user id, an account key
 * by its account. Operators and anonymous callers get no key (their own policies apply).
 */
export const byUser: KeyOf = (request) => {
  const principal: Principal | undefined = request.principal;
  switch (principal?.kind) {
    case 'user':
    case 'service':
      return `user:${principal.userId}`;
    case 'apiKey':
      return `account:${principal.accountId}`;
    default:
      return undefined;
  }
};

/** Keyed by the person only (users): machines are limited by their plan instead (RL-5). */
export const byPerson: KeyOf = (request) => (request.principal?.kind === 'user' ? `user:${request.principal.userId}` : undefined);

/** Keyed by the principal's account (every account principal has one). */
export const byAccount: KeyOf = (request) => {
  const principal = request.principal;
  return principal && principal.kind !== 'admin' ? `account:${principal.accountId}` : undefined;
};

/**
 * Keyed by an email the request carries (login: `byEmail((request) => request.body.email)`);
 * no key when there is none (validation refuses such bodies anyway).
 */
export function byEmail(select: (request: FastifyRequest) => unknown): KeyOf {
  return (request) => {
    const email = select(request);
    return typeof email === 'string' && email.trim() !== '' ? `email:${normaliseEmail(email)}` : undefined;
  };
}
