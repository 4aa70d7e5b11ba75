/**
 * Offline licence verification (LIC-1). Needs only the public key from
 * GET /api/licenses/public-key (its PEM, its JWK or the whole answer) and WebCrypto, so
 * it runs on a customer instance with no network, in Node >= 20, Deno, Bun, edge
 * runtimes and browsers.
 *
 * A licence is a JWS in compact serialisation:
 *   base64url(header) "." base64url(payload) "." base64url(signature)
 * header = {"alg":"EdDSA"|"RS256","typ":"bulwark-license+jws","kid":...}; the signature is
 * over the ASCII bytes of the first two parts joined by ".". The algorithm comes from the
 * key, never from the token: a token whose header names another algorithm is refused.
 */

export const LICENSE_TOKEN_TYPE = 'bulwark-license+jws';

export type LicenseAlgorithm = 'EdDSA' | 'RS256';

export type LicenseLimit =
  | { readonly kind: 'static'; readonly limit: number | null }
  | { readonly kind: 'metered'; readonly limit: number | null; readonly period: 'day' | 'month' }
  | { readonly kind: 'concurrency'; readonly limit: number | null };

export interface License {
  readonly v: 1;
  readonly id: string;
  readonly accountId: string;
  readonly plan: string;
  /** Boolean features: enabled or not. */
  readonly features: Readonly<Record<string, boolean>>;
  /** Every other feature with its limit; null means unlimited. */
  readonly limits: Readonly<Record<string, LicenseLimit>>;
  readonly issuedAt: string;
  readonly expiresAt: string;
}

/** A public JWK as GET /api/licenses/public-key publishes it. */
export interface LicenseJwk {
  readonly kty: string;
  readonly crv?: string;
  readonly x?: string;
  readonly n?: string;
  readonly e?: string;
  readonly kid?: string;
  readonly alg?: string;
  readonly use?: string;
}

/** The answer of GET /api/licenses/public-key. */
export interface LicensePublicKeyDocument {
  readonly algorithm: LicenseAlgorithm;
  readonly keyId: string;
  readonly pem: string;
  readonly jwk: LicenseJwk;
}

/** An SPKI PEM string, a JWK, or the whole public-key document. */
export type LicenseVerificationKey = string | LicenseJwk | LicensePublicKeyDocument;

export type LicenseFailure =
  /** Not a licence token at all, or its payload lacks a field. */
  | 'malformed'
  /** The key is not an Ed25519 or RSA public key. */
  | 'unsupported_key'
  /** The token's header names another algorithm than the key's. */
  | 'algorithm_mismatch'
  /** The signature does not match: altered, or signed with another key. */
  | 'bad_signature'
  | 'expired'
  /** Issued in the future (beyond the clock tolerance). */
  | 'not_yet_valid'
  /** Valid, but for another account than the one asked for. */
  | 'wrong_account';

export type LicenseVerification =
  | { readonly valid: true; readonly license: License; readonly keyId: string | undefined }
  | { readonly valid: false; readonly reason: LicenseFailure };

export interface VerifyLicenseOptions {
  /** The time to check expiry against (default: now). */
  readonly now?: Date;
  /** When given, a licence for any other account fails with wrong_account. */
  readonly accountId?: string;
  /** Allowed clock difference, in seconds, for expiry and issue time (default 0: none). */
  readonly clockToleranceSeconds?: number;
}

const MAX_TOKEN_LENGTH = 64 * 1024;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
// DER-encoded algorithm identifiers inside an SPKI: id-Ed25519 (1.3.101.112) and rsaEncryption (1.2.840.113549.1.1.1).
const ED25519_OID = [0x06, 0x03, 0x2b, 0x65, 0x70];
const RSA_OID = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/** The part of WebCrypto this file uses, declared here so that it typechecks against web and Node types alike. */
interface VerifyingSubtle {
  importKey(
    format: 'spki' | 'jwk',
    keyData: Uint8Array<ArrayBuffer> | Record<string, string | undefined>,
    algorithm: { readonly name: string; readonly hash?: string },
    extractable: false,
    usages: ['verify'],
  ): Promise<SubtleKey>;
  verify(algorithm: { readonly name: string }, key: SubtleKey, signature: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>): Promise<boolean>;
}
type SubtleKey = { readonly type: string };

function subtle(): VerifyingSubtle {
  const webCrypto = (globalThis as unknown as { crypto?: { subtle?: VerifyingSubtle } }).crypto;
  if (!webCrypto?.subtle) throw new Error('verifyLicense needs WebCrypto (globalThis.crypto.subtle)');
  return webCrypto.subtle;
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const standard = text.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(standard + '='.repeat((4 - (standard.length % 4)) % 4));
}

function decodeJson(part: string): unknown {
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fromBase64url(part)));
}

function contains(haystack: Uint8Array, needle: readonly number[]): boolean {
  outer: for (let start = 0; start + needle.length <= haystack.length; start += 1) {
    for (let offset = 0; offset < needle.length; offset += 1) if (haystack[start + offset] !== needle[offset]) continue outer;
    return true;
  }
  return false;
}

const IMPORT_PARAMETERS = {
  EdDSA: { name: 'Ed25519' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
} as const;

const VERIFY_PARAMETERS = {
  EdDSA: { name: 'Ed25519' },
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
} as const;

interface ImportedKey {
  readonly algorithm: LicenseAlgorithm;
  readonly key: SubtleKey;
  readonly keyId: string | undefined;
}

async function importKey(input: LicenseVerificationKey): Promise<ImportedKey | undefined> {
  if (typeof input === 'string') {
    const match = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/.exec(input);
    if (!match?.[1]) return undefined;
    const der = fromBase64(match[1].replace(/\s+/g, ''));
    const algorithm: LicenseAlgorithm | undefined = contains(der, ED25519_OID) ? 'EdDSA' : contains(der, RSA_OID) ? 'RS256' : undefined;
    if (!algorithm) return undefined;
    return { algorithm, key: await subtle().importKey('spki', der, IMPORT_PARAMETERS[algorithm], false, ['verify']), keyId: undefined };
  }
  const jwk: LicenseJwk = 'jwk' in input ? input.jwk : input;
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined;
  let algorithm: LicenseAlgorithm;
  let members: Record<string, string | undefined>;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && jwk.x) {
    algorithm = 'EdDSA';
    members = { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
  } else if (jwk.kty === 'RSA' && jwk.n && jwk.e) {
    algorithm = 'RS256';
    members = { kty: 'RSA', n: jwk.n, e: jwk.e };
  } else {
    return undefined;
  }
  if (jwk.alg !== undefined && jwk.alg !== algorithm) return undefined;
  const key = await subtle().importKey('jwk', members, IMPORT_PARAMETERS[algorithm], false, ['verify']);
  return { algorithm, key, keyId: jwk.kid ?? ('keyId' in input ? input.keyId : undefined) };
}

function isLimit(value: unknown): value is LicenseLimit {
  if (typeof value !== 'object' || value === null) return false;
  const limit = value as Record<string, unknown>;
  const limitOk = limit.limit === null || (typeof limit.limit === 'number' && Number.isInteger(limit.limit));
  if (limit.kind === 'metered') return limitOk && (limit.period === 'day' || limit.period === 'month');
  return limitOk && (limit.kind === 'static' || limit.kind === 'concurrency');
}

function isIsoTime(value: unknown): value is string {
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value) && !Number.isNaN(Date.parse(value));
}

function asLicense(value: unknown): License | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const payload = value as Record<string, unknown>;
  const features = payload.features;
  const limits = payload.limits;
  const ok =
    payload.v === 1 &&
    typeof payload.id === 'string' &&
    typeof payload.accountId === 'string' &&
    typeof payload.plan === 'string' &&
    typeof features === 'object' && features !== null && !Array.isArray(features) &&
    Object.values(features).every((enabled) => typeof enabled === 'boolean') &&
    typeof limits === 'object' && limits !== null && !Array.isArray(limits) &&
    Object.values(limits).every(isLimit) &&
    isIsoTime(payload.issuedAt) &&
    isIsoTime(payload.expiresAt);
  return ok ? (payload as unknown as License) : undefined;
}

function failure(reason: LicenseFailure): LicenseVerification {
  return { valid: false, reason };
}

/**
 * Checks a licence token offline: its signature against the public key, then its
 * contents and validity period. Resolves to `{valid: true, license}` or `{valid: false,
 * reason}`; it does not throw for a bad token.
 */
export async function verifyLicense(
  token: string,
  publicKey: LicenseVerificationKey,
  options: VerifyLicenseOptions = {},
): Promise<LicenseVerification> {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return failure('malformed');
  const parts = token.split('.');
  const [headerPart, payloadPart, signaturePart] = parts;
  if (parts.length !== 3 || !headerPart || !payloadPart || !signaturePart || !parts.every((part) => BASE64URL.test(part))) {
    return failure('malformed');
  }
  let header: unknown;
  try {
    header = decodeJson(headerPart);
  } catch {
    return failure('malformed');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return failure('malformed');
  const { alg, typ, crit } = header as Record<string, unknown>;
  if (typ !== LICENSE_TOKEN_TYPE || crit !== undefined) return failure('malformed');

  let imported: ImportedKey | undefined;
  try {
    imported = await importKey(publicKey);
  } catch {
    imported = undefined;
  }
  if (!imported) return failure('unsupported_key');
  if (alg !== imported.algorithm) return failure('algorithm_mismatch');

  let signatureValid: boolean;
  try {
    signatureValid = await subtle().verify(
      VERIFY_PARAMETERS[imported.algorithm],
      imported.key,
      fromBase64url(signaturePart),
      new TextEncoder().encode(`${headerPart}.${payloadPart}`) as Uint8Array<ArrayBuffer>,
    );
  } catch {
    signatureValid = false;
  }
  if (!signatureValid) return failure('bad_signature');

  let license: License | undefined;
  try {
    license = asLicense(decodeJson(payloadPart));
  } catch {
    license = undefined;
  }
  if (!license) return failure('malformed');

  const nowMs = (options.now ?? new Date()).getTime();
  const toleranceMs = Math.max(0, options.clockToleranceSeconds ?? 0) * 1000;
  if (nowMs >= Date.parse(license.expiresAt) + toleranceMs) return failure('expired');
  if (Date.parse(license.issuedAt) > nowMs + toleranceMs) return failure('not_yet_valid');
  if (options.accountId !== undefined && license.accountId !== options.accountId) return failure('wrong_account');
  return { valid: true, license, keyId: imported.keyId };
}
