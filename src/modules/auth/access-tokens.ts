import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { SigningSecret } from '../../config/config.js';

/** 15 minutes (AUTH-2). */
export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
const ALGORITHM = 'HS256';
const TOKEN_TYPE = 'at+jwt';

export interface AccessTokenClaims {
  readonly userId: string;
  readonly accountId: string;
  readonly sessionId: string;
  readonly role: 'owner' | 'member';
}

export interface AccessTokenKeys {
  readonly current: SigningSecret;
  readonly previous: readonly SigningSecret[];
  readonly issuer: string;
  readonly audience: string;
}

/**
 * Access tokens: HS256 JWTs with a `kid` naming the signing key, so a new key can sign
 * while tokens signed by the previous one stay valid until they expire (CFG-4). The
 * algorithm is pinned on verification: `none`, RS/ES and anything else are refused, as
 * are a missing kid, an unknown kid, a wrong typ, issuer or audience, and a missing
 * sub, exp, iat or jti.
 */
export class AccessTokens {
  private readonly keys: Map<string, Uint8Array>;
  private readonly currentKey: Uint8Array;

  constructor(private readonly settings: AccessTokenKeys) {
    const encoder = new TextEncoder();
    this.currentKey = encoder.encode(settings.current.secret);
    this.keys = new Map([[settings.current.keyId, this.currentKey]]);
    for (const previous of settings.previous) {
      if (!this.keys.has(previous.keyId)) this.keys.set(previous.keyId, encoder.encode(previous.secret));
    }
  }

  async issue(claims: AccessTokenClaims, now: Date): Promise<string> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    return new SignJWT({ acct: claims.accountId, sid: claims.sessionId, role: claims.role })
      .setProtectedHeader({ alg: ALGORITHM, kid: this.settings.current.keyId, typ: TOKEN_TYPE })
      .setSubject(claims.userId)
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + ACCESS_TOKEN_TTL_SECONDS)
      .setJti(randomUUID())
      .sign(this.currentKey);
  }

  /** The claims of a valid token, or undefined for anything else (never throws on bad input). */
  async verify(token: string, now: Date): Promise<AccessTokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = header.kid === undefined ? undefined : this.keys.get(header.kid);
          if (!key) throw new joseErrors.JWSSignatureVerificationFailed('unknown key id');
          return key;
        },
        {
          algorithms: [ALGORITHM],
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          typ: TOKEN_TYPE,
          requiredClaims: ['sub', 'exp', 'iat', 'jti'],
          currentDate: now,
        },
      );
      const { sub, acct, sid, role } = payload as Record<string, unknown>;
      if (typeof sub !== 'string' || typeof acct !== 'string' || typeof sid !== 'string') return undefined;
      if (role !== 'owner' && role !== 'member') return undefined;
      return { userId: sub, accountId: acct, sessionId: sid, role };
    } catch {
      return undefined;
    }
  }
}
