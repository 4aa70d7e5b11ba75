import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../../config/config.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { insertAccount, insertUser } from '../accounts/accounts.repository.js';

export interface ExternalUser {
  readonly accountId: string;
  readonly userId: string;
  readonly accountStatus: string;
  readonly userStatus: string;
}

/** The issuer recorded for tokens that carry none (an HS256 provider without `iss` configured). */
const UNNAMED_ISSUER = 'external';

/**
 * Verifies an external identity provider's user token (HS256 with a shared secret, or
 * RS256/ES256/EdDSA against the provider's JWKS) and maps its (issuer, subject) to a
 * Bulwark user and account, creating them (plan FREE) the first time a subject is seen.
 */
export class ExternalIdentities {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];

  constructor(
    private readonly settings: Config['service'],
    private readonly database: Database,
    private readonly clock: Clock,
  ) {
    if (settings.externalJwtSecret !== undefined) {
      this.key = new TextEncoder().encode(settings.externalJwtSecret);
      this.algorithms = ['HS256'];
    } else if (settings.externalJwksUrl !== undefined) {
      this.key = createRemoteJWKSet(new URL(settings.externalJwksUrl), { timeoutDuration: 3_000, cooldownDuration: 30_000 });
      this.algorithms = ['RS256', 'ES256', 'EdDSA'];
    } else {
      throw new Error('ExternalIdentities needs EXTERNAL_JWT_SECRET or EXTERNAL_JWT_JWKS_URL');
    }
  }

  /** The mapped user, or undefined when the token is not valid. */
  async resolve(token: string): Promise<ExternalUser | undefined> {
    let issuer: string;
    let subject: string;
    try {
      const { payload } = await jwtVerify(token, this.key as Uint8Array, {
        algorithms: this.algorithms,
        ...(this.settings.externalIssuer ? { issuer: this.settings.externalIssuer } : {}),
        ...(this.settings.externalAudience ? { audience: this.settings.externalAudience } : {}),
        requiredClaims: ['sub', 'exp'],
        currentDate: this.clock.now(),
      });
      if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 255) return undefined;
      issuer = typeof payload.iss === 'string' ? payload.iss : UNNAMED_ISSUER;
      subject = payload.sub;
    } catch {
      return undefined;
    }
    return (await this.find(issuer, subject)) ?? this.provision(issuer, subject);
  }

  private async find(issuer: string, subject: string): Promise<ExternalUser | undefined> {
    const { rows } = await asSystem(this.database, (tx) =>
      tx.query<{ account_id: string; user_id: string; account_status: string; user_status: string }>(
        `SELECT e.account_id, e.user_id, a.status AS account_status, u.status AS user_status
           FROM external_identities e JOIN users u ON u.id = e.user_id JOIN accounts a ON a.id = e.account_id
          WHERE e.issuer = $1 AND e.subject = $2`,
        [issuer, subject],
      ),
    );
    const row = rows[0];
    return row && { accountId: row.account_id, userId: row.user_id, accountStatus: row.account_status, userStatus: row.user_status };
  }

  private async provision(issuer: string, subject: string): Promise<ExternalUser | undefined> {
    const now = this.clock.now();
    const accountId = newId('account');
    const userId = newId('user');
    try {
      await asSystem(this.database, async (tx) => {
        await insertAccount(tx, { id: accountId, name: null, plan: 'FREE', at: now });
        await insertUser(tx, { id: userId, accountId, email: null, name: null, passwordHash: null, role: 'owner', at: now });
        await tx.query(
          `INSERT INTO external_identities (issuer, subject, user_id, account_id, created_at) VALUES ($1, $2, $3, $4, $5)`,
          [issuer, subject, userId, accountId, now],
        );
      });
    } catch (error) {
      // Two first requests for one subject at once: the other one created it.
      if (sqlStateOf(error) === SqlState.uniqueViolation) return this.find(issuer, subject);
      throw error;
    }
    return { accountId, userId, accountStatus: 'active', userStatus: 'active' };
  }
}
