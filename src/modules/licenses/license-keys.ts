import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * The key that signs licences (LIC-1). Ed25519 by default; RSA (2048 bits or more) is
 * accepted. The algorithm is decided by the key, never by a caller or a token: EdDSA for
 * Ed25519, RS256 (RSASSA-PKCS1-v1_5 with SHA-256) for RSA.
 */
export type LicenseAlgorithm = 'EdDSA' | 'RS256';

export const MIN_RSA_MODULUS_BITS = 2048;

/** The verification key in the two forms GET /api/licenses/public-key publishes. */
export interface LicensePublicKey {
  readonly algorithm: LicenseAlgorithm;
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key; the `kid` of every token. */
  readonly keyId: string;
  /** SubjectPublicKeyInfo, PEM. */
  readonly pem: string;
  readonly jwk: Readonly<Record<string, string>>;
}

export interface LicenseSigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: LicensePublicKey;
}

/** Thrown for a key file that cannot sign licences; the message names the file, never its content. */
export class LicenseKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LicenseKeyError';
  }
}

/** RFC 7638: SHA-256 over the required members, in lexicographic order, without whitespace. */
function thumbprint(jwk: Record<string, unknown>, members: readonly string[]): string {
  const canonical = `{${members.map((member) => `${JSON.stringify(member)}:${JSON.stringify(jwk[member])}`).join(',')}}`;
  return createHash('sha256').update(canonical, 'utf8').digest('base64url');
}

/**
 * Reads a PEM private key (PKCS#8, or PKCS#1 for RSA) and derives what signing and
 * publishing need. `source` names the key in error messages (the file path).
 */
export function loadLicenseSigningKey(pem: string, source: string): LicenseSigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new LicenseKeyError(`${source}: not a readable unencrypted PEM private key (Ed25519 or RSA)`);
  }
  const type = privateKey.asymmetricKeyType;
  let algorithm: LicenseAlgorithm;
  let members: readonly string[];
  if (type === 'ed25519') {
    algorithm = 'EdDSA';
    members = ['crv', 'kty', 'x'];
  } else if (type === 'rsa') {
    const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_MODULUS_BITS) {
      throw new LicenseKeyError(`${source}: an RSA licence key needs at least ${MIN_RSA_MODULUS_BITS} bits (this one has ${bits})`);
    }
    algorithm = 'RS256';
    members = ['e', 'kty', 'n'];
  } else {
    throw new LicenseKeyError(`${source}: a ${type ?? 'unknown'} key cannot sign licences; use Ed25519 (default) or RSA`);
  }
  const publicKeyObject = createPublicKey(privateKey);
  const exported = publicKeyObject.export({ format: 'jwk' }) as Record<string, string>;
  const keyId = thumbprint(exported, members);
  const jwk: Record<string, string> = Object.fromEntries(members.map((member) => [member, exported[member] as string]));
  return {
    privateKey,
    publicKey: Object.freeze({
      algorithm,
      keyId,
      pem: publicKeyObject.export({ format: 'pem', type: 'spki' }).toString(),
      jwk: Object.freeze({ ...jwk, kid: keyId, alg: algorithm, use: 'sig' }),
    }),
  };
}

/** A fresh Ed25519 private key as PKCS#8 PEM: the development key (never used in production). */
export function generateLicenseKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/**
 * The configured signing key: LICENSE_PRIVATE_KEY_PATH, or the in-memory development key
 * of a test run. Read once at start-up, so a missing or unusable key stops the service
 * before it serves.
 */
export function readLicenseSigningKey(settings: { readonly privateKeyPath: string | undefined; readonly privateKeyPem: string | undefined }): LicenseSigningKey {
  if (settings.privateKeyPem !== undefined) return loadLicenseSigningKey(settings.privateKeyPem, 'the in-memory development licence key');
  const file = settings.privateKeyPath;
  if (file === undefined) throw new LicenseKeyError('LICENSE_PRIVATE_KEY_PATH is not set');
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'unreadable';
    throw new LicenseKeyError(`LICENSE_PRIVATE_KEY_PATH ${file}: cannot be read (${code})`);
  }
  return loadLicenseSigningKey(pem, `LICENSE_PRIVATE_KEY_PATH ${file}`);
}
