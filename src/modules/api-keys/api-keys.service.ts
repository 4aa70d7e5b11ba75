import { AppError } from '../../errors/app-error.js';
import { clampPageLimit } from '../../platform/http/pagination.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem, forAccount } from '../../platform/database/access.js';
import type { Database, Transaction } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { generateApiKey, hashApiKeyHex } from './api-key-format.js';
import {
  countUsableApiKeys,
  insertApiKey,
  listApiKeys,
  lockAccountApiKey,
  lockApiKeyById,
  markApiKeyRevoked,
  notifyApiKeyChanged,
  shortenApiKeyExpiry,
  type ApiKeyListRow,
} from './api-keys.repository.js';
import type { ActorContext, AuditRecorder } from './audit-hook.js';

/** What lists and answers show of a key: never the secret, never its hash. */
export interface ApiKeyView {
  readonly id: string;
  readonly prefix: string;
  readonly label: string | null;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
}

/** A new key: `secret` is the whole key to send in X-API-Key, shown this once and stored nowhere. */
export interface IssuedApiKey {
  readonly key: ApiKeyView;
  readonly secret: string;
}

export interface ApiKeyPage {
  readonly items: ApiKeyView[];
  readonly nextCursor: string | null;
}

/** 24 hours: how long a rotated key keeps working by default. */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 24 * 60 * 60;
/** 30 days: the longest overlap a rotation may ask for. */
export const MAX_ROTATION_OVERLAP_SECONDS = 30 * 24 * 60 * 60;
export const MAX_LABEL_LENGTH = 100;
export const DEFAULT_USABLE_KEYS_PER_ACCOUNT = 100;

export interface ApiKeyServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly pepper: string;
  /** Called after a commit that revoked or re-dated a key (the local verifier's invalidation). */
  readonly onKeyChanged?: (keyId: string) => void;
  /** Records audit entries inside each changing transaction (AUD-1). */
  readonly audit?: AuditRecorder;
  readonly maxUsableKeysPerAccount?: number;
}

export function apiKeyView(row: ApiKeyListRow): ApiKeyView {
  return {
    id: row.id,
    prefix: row.prefix,
    label: row.label,
    createdAt: row.created_at.toISOString(),
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}


function encodeCursor(row: ApiKeyListRow): string {
  return Buffer.from(`${row.created_at.toISOString()}|${row.id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const separator = text.indexOf('|');
  const createdAt = new Date(text.slice(0, separator));
  const id = text.slice(separator + 1);
  if (separator <= 0 || Number.isNaN(createdAt.getTime()) || id.length === 0 || id.length > 128) {
    throw new AppError('VALIDATION_FAILED', 'query.cursor: is not a valid cursor', [{ field: 'query.cursor', message: 'is not a valid cursor' }]);
  }
  return { createdAt, id };
}

type Scope = 'account' | 'system';

/**
 * Issues, lists, rotates and revokes customer API keys (KEY-1, KEY-2). Account-scoped
 * work runs in the account's row-level-security context; operator work in a system
 * context. Every change is one transaction, together with its audit entry and (for
 * revocations and rotations) the NOTIFY that tells every instance to forget the key.
 */
export class ApiKeyService {
  private readonly maxUsableKeys: number;

  constructor(private readonly options: ApiKeyServiceOptions) {
    if (!options.pepper) throw new Error('API keys need the API key pepper (API_KEY_PEPPER)');
    this.maxUsableKeys = options.maxUsableKeysPerAccount ?? DEFAULT_USABLE_KEYS_PER_ACCOUNT;
  }

  /** A new key for the principal's account. */
  issue(accountId: string, input: { label?: string | null }, actor: ActorContext): Promise<IssuedApiKey> {
    return this.issueIn('account', accountId, input.label ?? null, actor);
  }

  /** An operator issues a key for any live account; unknown or deleted accounts are 404. */
  issueForAccount(accountId: string, input: { label?: string | null }, actor: ActorContext): Promise<IssuedApiKey> {
    return this.issueIn('system', accountId, input.label ?? null, actor);
  }

  /** The account's keys, newest first, without secrets. */
  async list(accountId: string, options: { limit?: number; cursor?: string } = {}): Promise<ApiKeyPage> {
    const limit = clampPageLimit(options.limit);
    const after = options.cursor !== undefined ? decodeCursor(options.cursor) : undefined;
    return forAccount(this.options.database, accountId, async (tx) => {
      const rows = await listApiKeys(tx, accountId, { limit: limit + 1, ...(after ? { after } : {}) });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { items: page.map(apiKeyView), nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
    });
  }

  /**
   * Revokes one of the account's keys. A foreign or unknown key is 404 and changes
   * nothing (ACC-2); revoking a revoked key again succeeds and changes nothing.
   */
  async revoke(accountId: string, keyId: string, actor: ActorContext): Promise<void> {
    const changed = await this.run('account', accountId, async (tx) => {
      const key = await lockAccountApiKey(tx, accountId, keyId);
      if (!key) throw new AppError('NOT_FOUND', 'API key not found');
      return this.revokeLocked(tx, key, actor);
    });
    if (changed) this.options.onKeyChanged?.(keyId);
  }

  /** An operator revokes any key by id. */
  async revokeById(keyId: string, actor: ActorContext): Promise<void> {
    const changed = await asSystem(this.options.database, async (tx) => {
      const key = await lockApiKeyById(tx, keyId);
      if (!key) throw new AppError('NOT_FOUND', 'API key not found');
      return this.revokeLocked(tx, key, actor);
    });
    if (changed) this.options.onKeyChanged?.(keyId);
  }

  /**
   * Issues a replacement and lets the old key work for `overlapSeconds` more (default
   * 24 h; 0 ends it now), so callers can switch without downtime. An earlier expiry the
   * old key already had is kept. Revoked or expired keys cannot be rotated (409).
   */
  async rotate(
    accountId: string,
    keyId: string,
    input: { overlapSeconds?: number; label?: string | null },
    actor: ActorContext,
  ): Promise<IssuedApiKey> {
    const overlapSeconds = input.overlapSeconds ?? DEFAULT_ROTATION_OVERLAP_SECONDS;
    if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > MAX_ROTATION_OVERLAP_SECONDS) {
      throw new AppError('VALIDATION_FAILED', 'overlapSeconds: is out of range', [{ field: 'overlapSeconds', message: 'is out of range' }]);
    }
    const issued = await this.run('account', accountId, async (tx) => {
      const old = await lockAccountApiKey(tx, accountId, keyId);
      if (!old) throw new AppError('NOT_FOUND', 'API key not found');
      const now = this.options.clock.now();
      if (old.revoked_at !== null || (old.expires_at !== null && old.expires_at.getTime() <= now.getTime())) {
        throw new AppError('CONFLICT', 'API key is revoked or expired; issue a new key instead');
      }
      const oldExpiresAt = new Date(now.getTime() + overlapSeconds * 1000);
      const shortened = await shortenApiKeyExpiry(tx, accountId, keyId, oldExpiresAt);
      await notifyApiKeyChanged(tx, keyId);
      const label = input.label !== undefined ? input.label : old.label;
      const replacement = await this.insertKey(tx, accountId, label, now);
      await this.record(tx, actor, 'api_key.rotated', keyId, accountId, {
        prefix: old.prefix,
        newKeyId: replacement.key.id,
        oldKeyExpiresAt: shortened?.expires_at?.toISOString() ?? null,
      });
      return replacement;
    });
    this.options.onKeyChanged?.(keyId);
    return issued;
  }

  /** An operator rotates any key by id (the command line): the account is the key's own. */
  async rotateById(keyId: string, input: { overlapSeconds?: number; label?: string | null }, actor: ActorContext): Promise<IssuedApiKey> {
    const key = await asSystem(this.options.database, (tx) => lockApiKeyById(tx, keyId));
    if (!key) throw new AppError('NOT_FOUND', 'API key not found');
    return this.rotate(key.account_id, keyId, input, actor);
  }

  private issueIn(scope: Scope, accountId: string, label: string | null, actor: ActorContext): Promise<IssuedApiKey> {
    return this.run(scope, accountId, async (tx) => {
      await this.lockLiveAccount(tx, accountId);
      const now = this.options.clock.now();
      if ((await countUsableApiKeys(tx, accountId, now)) >= this.maxUsableKeys) {
        throw new AppError('CONFLICT', `An account may have at most ${this.maxUsableKeys} active API keys; revoke one first`);
      }
      const issued = await this.insertKey(tx, accountId, label, now);
      await this.record(tx, actor, 'api_key.issued', issued.key.id, accountId, { prefix: issued.key.prefix });
      return issued;
    });
  }

    private run<T>(scope: Scope, accountId: string, work: (tx: Transaction) => Promise<T>): Promise<T> {
    return scope === 'account' ? forAccount(this.options.database, accountId, work) : asSystem(this.options.database, work);
  }

  /** The account row, locked so concurrent issues count keys one at a time; unknown or deleted is 404. */
  private async lockLiveAccount(tx: Transaction, accountId: string): Promise<void> {
    const { rows } = await tx.query<{ status: string }>('SELECT status FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [accountId]);
    const account = rows[0];
    if (!account || account.status === 'deleted') throw new AppError('NOT_FOUND', 'Account not found');
  }

  private async insertKey(tx: Transaction, accountId: string, label: string | null, now: Date): Promise<IssuedApiKey> {
    const { key, prefix } = generateApiKey(accountId);
    const row = await insertApiKey(tx, {
      id: newId('apiKey'),
      accountId,
      prefix,
      label,
      secretHash: hashApiKeyHex(this.options.pepper, key),
      at: now,
    });
    return { key: apiKeyView(row), secret: key };
  }

  private async record(
    tx: Transaction,
    actor: ActorContext,
    event: 'api_key.issued' | 'api_key.rotated' | 'api_key.revoked',
    keyId: string,
    accountId: string,
    metadata: Record<string, unknown>,
  ): Promise<void> {
    await this.options.audit?.(tx, {
      event,
      actorType: actor.actorType,
      actorId: actor.actorId,
      subjectType: 'api_key',
      subjectId: keyId,
      accountId,
      ip: actor.ip,
      metadata,
    });
  }

  private async revokeLocked(tx: Transaction, key: ApiKeyListRow, actor: ActorContext): Promise<boolean> {
    if (key.revoked_at !== null) return false;
    const now = this.options.clock.now();
    await markApiKeyRevoked(tx, key.account_id, key.id, now);
    await notifyApiKeyChanged(tx, key.id);
    await this.record(tx, actor, 'api_key.revoked', key.id, key.account_id, { prefix: key.prefix });
    return true;
  }
}
