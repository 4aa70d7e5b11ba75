import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import type { AccountStatus } from '../accounts/accounts.repository.js';
import { auditRecorder, type ActorContext, type AuditRecorder } from '../api-keys/audit-hook.js';
import { effectivePlanId, type ExemptionLookup } from '../plans/exemptions.js';
import type { PlanCataloguePort } from '../plans/plan-features.js';
import type { LicensePublicKey, LicenseSigningKey } from './license-keys.js';
import { LICENSE_FORMAT_VERSION, licenseEntitlements, signLicense, type LicensePayload } from './license-token.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface LicensesServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly key: LicenseSigningKey;
  readonly plans: PlanCataloguePort;
  readonly exemptions: ExemptionLookup;
  /** How long an issued licence is valid (LICENSE_VALIDITY_DAYS). */
  readonly validityDays: number;
  /** The audit trail by default (recordAudit in the issuing transaction). */
  readonly audit?: AuditRecorder;
}

/** A signed licence: `token` is what customer instances store and verify; `license` is its payload, for reading. */
export interface IssuedLicense {
  readonly license: LicensePayload;
  readonly token: string;
}

interface AccountState {
  readonly id: string;
  readonly plan: string;
  readonly status: AccountStatus;
}

async function readAccount(tx: Queryable, accountId: string): Promise<AccountState> {
  const { rows } = await tx.query<AccountState>('SELECT id, plan, status FROM accounts WHERE id = $1', [accountId]);
  const account = rows[0];
  // A deleted account has no licence; unknown and deleted look the same (ACC-2).
  if (!account || account.status === 'deleted') throw new AppError('NOT_FOUND', 'Not found');
  if (account.status === 'suspended') throw new AppError('ACCOUNT_SUSPENDED', 'Account is suspended');
  return account;
}

/**
 * Signed licences (LIC-1, LIC-2): what an account's plan grants, signed so that customer
 * instances can check it offline with the published public key. Each issuance is audited
 * (`license.issued`) in the transaction that decides it; the token is returned only
 * once that has committed.
 */
export class LicensesService {
  private readonly audit: AuditRecorder;

  constructor(private readonly options: LicensesServiceOptions) {
    this.audit = options.audit ?? auditRecorder(options.clock);
  }

  publicKey(): LicensePublicKey {
    return this.options.key.publicKey;
  }

  async issue(accountId: string, actor: ActorContext): Promise<IssuedLicense> {
    const { database, clock, plans, exemptions, key, validityDays } = this.options;
    // The catalogue is read outside a transaction (on the embedded database a read
    // inside one would wait for it); the account is read again where the entry is written.
    const before = await forAccount(database, accountId, (tx) => readAccount(tx, accountId));
    const plan = await plans.planFor(effectivePlanId(before, exemptions));
    return forAccount(database, accountId, async (tx) => {
      const account = await readAccount(tx, accountId);
      if (account.plan !== before.plan) throw new AppError('CONFLICT', 'The account changed plan while its licence was issued; ask again');
      const issuedAt = clock.now();
      const license: LicensePayload = {
        v: LICENSE_FORMAT_VERSION,
        id: newId('license'),
        accountId,
        plan: plan.id,
        ...licenseEntitlements(plan),
        issuedAt: issuedAt.toISOString(),
        expiresAt: new Date(issuedAt.getTime() + validityDays * DAY_MS).toISOString(),
      };
      const token = signLicense(license, key);
      await this.audit(tx, {
        event: 'license.issued',
        actorType: actor.actorType,
        actorId: actor.actorId,
        subjectType: 'license',
        subjectId: license.id,
        accountId,
        ip: actor.ip,
        metadata: { plan: license.plan, expiresAt: license.expiresAt, keyId: key.publicKey.keyId, algorithm: key.publicKey.algorithm },
      });
      return { license, token };
    });
  }
}
