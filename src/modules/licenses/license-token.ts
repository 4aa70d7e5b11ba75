import { sign } from 'node:crypto';
import type { Plan } from '../plans/plan-features.js';
import type { LicenseSigningKey } from './license-keys.js';

/**
 * The licence format (LIC-1): a JWS in compact serialisation (RFC 7515),
 *
 *   base64url(header) "." base64url(payload) "." base64url(signature)
 *
 * where header = {"alg":"EdDSA"|"RS256","typ":"bulwark-license+jws","kid":<key thumbprint>},
 * payload is the UTF-8 JSON of LicensePayload, and the signature is over the ASCII bytes
 * of the first two parts joined by ".". The signed bytes travel as they are, so a verifier
 * never has to re-serialise anything; any JOSE library can check a licence too. The SDK's
 * verifyLicense (sdk/src/license.ts) is the reference verifier and needs only the public key.
 */
export const LICENSE_TOKEN_TYPE = 'bulwark-license+jws';
export const LICENSE_FORMAT_VERSION = 1;

/** A limited feature in a licence: null means unlimited. */
export type LicenseLimit =
  | { readonly kind: 'static'; readonly limit: number | null }
  | { readonly kind: 'metered'; readonly limit: number | null; readonly period: 'day' | 'month' }
  | { readonly kind: 'concurrency'; readonly limit: number | null };

export interface LicensePayload {
  readonly v: typeof LICENSE_FORMAT_VERSION;
  readonly id: string;
  readonly accountId: string;
  readonly plan: string;
  /** Boolean features: enabled or not. */
  readonly features: Readonly<Record<string, boolean>>;
  /** Every other feature with its limit. */
  readonly limits: Readonly<Record<string, LicenseLimit>>;
  /** ISO 8601 UTC with milliseconds. */
  readonly issuedAt: string;
  readonly expiresAt: string;
}

/** What a plan grants, split the way a licence carries it. */
export function licenseEntitlements(plan: Plan): Pick<LicensePayload, 'features' | 'limits'> {
  const features: Record<string, boolean> = {};
  const limits: Record<string, LicenseLimit> = {};
  for (const name of Object.keys(plan.features).sort()) {
    const feature = plan.features[name];
    if (!feature) continue;
    if (feature.kind === 'boolean') features[name] = feature.enabled;
    else if (feature.kind === 'metered') limits[name] = { kind: 'metered', limit: feature.limit, period: feature.period };
    else limits[name] = { kind: feature.kind, limit: feature.limit };
  }
  return { features, limits };
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Signs a payload into a compact licence token with the configured key. */
export function signLicense(payload: LicensePayload, key: LicenseSigningKey): string {
  const header = { alg: key.publicKey.algorithm, typ: LICENSE_TOKEN_TYPE, kid: key.publicKey.keyId };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  // Ed25519 takes no digest argument; RS256 is RSASSA-PKCS1-v1_5 over SHA-256.
  const digest = key.publicKey.algorithm === 'EdDSA' ? null : 'sha256';
  const signature = sign(digest, Buffer.from(signingInput, 'ascii'), key.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}
