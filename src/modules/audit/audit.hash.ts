import { createHash, createHmac } from 'node:crypto';

/**
 * The audit chain's hash format (version 1), documented at the top of
 * migrations/0003_audit.sql. Recording and verification both use these functions, so
 * what is verified is exactly what was hashed.
 */

export const GENESIS_HASH = '0'.repeat(64);
export const HASH_VERSION = 1;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * PostgreSQL text and jsonb cannot hold NUL or unpaired surrogates; replace them with
 * U+FFFD so that what is stored (and read back) is what was hashed.
 */
export function storableText(value: string): string {
  return value.replace(LONE_SURROGATE, '\uFFFD').replaceAll('\u0000', '\uFFFD');
}

/**
 * The value as it will read back from a jsonb column: what JSON.stringify keeps
 * (undefined and functions dropped, toJSON applied, non-finite numbers as null), with
 * storable strings. undefined means "absent".
 */
export function toJsonValue(value: unknown): JsonValue | undefined {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return storableText(value);
    case 'number':
      return Number.isFinite(value) ? (Object.is(value, -0) ? 0 : value) : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'object': {
      const withToJson = value as { toJSON?: unknown };
      if (typeof withToJson.toJSON === 'function') return toJsonValue((withToJson.toJSON as () => unknown).call(value));
      if (Array.isArray(value)) return value.map((item) => toJsonValue(item) ?? null);
      return toJsonObject(value as Record<string, unknown>);
    }
    default:
      return undefined;
  }
}

export function toJsonObject(value: Readonly<Record<string, unknown>>): JsonObject {
  const entries: [string, JsonValue][] = [];
  for (const [key, item] of Object.entries(value)) {
    const json = toJsonValue(item);
    if (json !== undefined) entries.push([storableText(key), json]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(entries) as JsonObject;
}

/** JSON with object keys sorted (UTF-16 code unit order) and no whitespace. */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`).join(',')}}`;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Commitment to an entry's personal data; the salt is discarded when the data is erased. */
export function personalDigest(salt: string, ip: string | null, personal: JsonObject): string {
  return sha256Hex(`${salt}\n${canonicalJson({ ip, personal })}`);
}

/** Every hashed field of an entry. */
export interface HashedFields {
  readonly id: string;
  /** ISO 8601 UTC with milliseconds. */
  readonly at: string;
  readonly event: string;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly subjectType: string | null;
  readonly subjectId: string | null;
  readonly accountId: string | null;
  readonly metadata: JsonObject;
  readonly personalDigest: string;
}

export function entryHash(prevHash: string, fields: HashedFields): string {
  const content: JsonObject = {
    v: HASH_VERSION,
    id: fields.id,
    at: fields.at,
    event: fields.event,
    actorType: fields.actorType,
    actorId: fields.actorId,
    subjectType: fields.subjectType,
    subjectId: fields.subjectId,
    accountId: fields.accountId,
    metadata: fields.metadata,
    personalDigest: fields.personalDigest,
  };
  return sha256Hex(`${prevHash}\n${canonicalJson(content)}`);
}

/**
 * A keyed pseudonym: the same value under the same key and field always gives the same
 * pseudonym (entries about one source stay linkable), and without the key it reveals
 * nothing. Destroying or rotating the key turns pseudonyms into anonymous tokens.
 */
export function pseudonym(key: string | Uint8Array, field: string, value: JsonValue): string {
  const text = typeof value === 'string' ? value : canonicalJson(value);
  return `pse_${createHmac('sha256', key).update(`${field}\u0000${text}`, 'utf8').digest('hex').slice(0, 32)}`;
}
