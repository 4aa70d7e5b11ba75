import { randomBytes } from 'node:crypto';
import { clampPageLimit } from '../../platform/http/pagination.js';
import type { Clock } from '../../platform/clock.js';
import type { Queryable } from '../../platform/database/database.js';
import {
  entryHash,
  personalDigest,
  pseudonym,
  storableText,
  toJsonObject,
  type JsonObject,
  type JsonValue,
} from './audit.hash.js';

/**
 * The append-only, hash-chained audit trail (AUD-1, AUD-2). recordAudit() appends in the
 * caller's transaction, so an entry commits or rolls back with the action it records.
 *
 * Appending locks the chain head until the transaction ends: concurrent transactions
 * that record entries run their recording one after another. Record near the end of the
 * transaction (after the action's own writes) to keep that window short and to avoid
 * lock-order deadlocks with rows the action locks.
 */

/** Dotted event names: `auth.login_failed`, `api_key.issued`, `webhook.signature_failed`. */
export const EVENT_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/**
 * Top-level metadata keys that name personal data. recordAudit moves them into the
 * personal part (erasable under GDPR-2) even when a caller put them in `metadata`.
 * Personal data nested deeper in metadata is the caller's to avoid: pass it in `personal`.
 */
export const PERSONAL_METADATA_KEYS: ReadonlySet<string> = new Set([
  'email',
  'ip',
  'name',
  'firstName',
  'lastName',
  'fullName',
  'phone',
  'address',
  'userAgent',
  'user_agent',
]);

export interface AuditRecordInput {
  readonly event: string;
  /** From actorOf(principal): `user`, `api_key`, `service`, `admin`, `anonymous`, `system`. */
  readonly actorType: string;
  readonly actorId?: string | null;
  readonly subjectType?: string | null;
  readonly subjectId?: string | null;
  /** The account the entry concerns (RLS, GDPR export and erasure key on it). */
  readonly accountId?: string | null;
  /** Client IP: personal data, erasable. */
  readonly ip?: string | null;
  /** Non-personal details (ids, amounts, plan names, reasons). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** Personal details (email typed at a failed login, a name): erasable. */
  readonly personal?: Readonly<Record<string, unknown>>;
}

/** An entry as the API shows it (API.md); `metadata` includes the personal details. */
export interface AuditEntry {
  readonly id: string;
  readonly at: string;
  readonly event: string;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly subjectType: string | null;
  readonly subjectId: string | null;
  readonly ip: string | null;
  readonly metadata: JsonObject;
}

/** An entry with the account it concerns. */
export interface RecordedAuditEntry extends AuditEntry {
  readonly accountId: string | null;
}

/** A listed entry: with its position in the log, which pages are keyed on. */
export interface StoredAuditEntry extends RecordedAuditEntry {
  readonly seq: number;
}

export function newAuditId(): string {
  return `aud_${randomBytes(16).toString('base64url')}`;
}

function optionalText(value: string | null | undefined): string | null {
  return value === undefined || value === null ? null : storableText(value);
}

/** Splits metadata and personal details; a key is in one of them, never both. */
function separatePersonal(input: AuditRecordInput): { metadata: JsonObject; personal: JsonObject } {
  // Maps, not objects: a "__proto__" key must stay data.
  const metadata = new Map<string, unknown>();
  const personal = new Map<string, unknown>();
  for (const [key, value] of Object.entries(input.metadata ?? {})) {
    (PERSONAL_METADATA_KEYS.has(key) ? personal : metadata).set(key, value);
  }
  for (const [key, value] of Object.entries(input.personal ?? {})) {
    metadata.delete(key);
    personal.set(key, value);
  }
  return { metadata: toJsonObject(Object.fromEntries(metadata)), personal: toJsonObject(Object.fromEntries(personal)) };
}

/**
 * Appends one entry to the audit trail inside `tx` (a transaction: the chain head stays
 * locked until it ends). Works in every context (anonymous, account, system); an account
 * context may record entries about its own account or about no account. Throws on an
 * event name that is not dotted lower-case.
 */
export async function recordAudit(tx: Queryable, input: AuditRecordInput, clock: Clock): Promise<RecordedAuditEntry> {
  if (!EVENT_PATTERN.test(input.event) || input.event.length > 100) {
    throw new TypeError(`Audit event names are dotted lower-case words (auth.login_failed); got ${JSON.stringify(input.event)}`);
  }
  const { metadata, personal } = separatePersonal(input);
  const ip = optionalText(input.ip);
  const salt = randomBytes(32).toString('hex');
  const digest = personalDigest(salt, ip, personal);

  // Lock the chain head until the transaction ends and continue from it.
  const { rows } = await tx.query<{ hash: string }>('SELECT hash FROM audit_chain_lock()');
  const head = rows[0];
  if (!head) throw new Error('audit_chain_head is missing; is migration 0003 applied?');
  // Timestamped under the lock, so one instance's entries are in time order along the chain.
  const fields = {
    id: newAuditId(),
    at: clock.now().toISOString(),
    event: input.event,
    actorType: storableText(input.actorType),
    actorId: optionalText(input.actorId),
    subjectType: optionalText(input.subjectType),
    subjectId: optionalText(input.subjectId),
    accountId: optionalText(input.accountId),
    metadata,
    personalDigest: digest,
  };
  const hash = entryHash(head.hash, fields);

  await tx.query(
    `INSERT INTO audit_log (id, at, event, actor_type, actor_id, subject_type, subject_id, account_id, ip,
                            metadata, personal, personal_salt, personal_digest, prev_hash, hash)
     VALUES ($1, $2::timestamptz, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13, $14, $15)`,
    [
      fields.id,
      fields.at,
      fields.event,
      fields.actorType,
      fields.actorId,
      fields.subjectType,
      fields.subjectId,
      fields.accountId,
      ip,
      JSON.stringify(metadata),
      JSON.stringify(personal),
      salt,
      digest,
      head.hash,
      hash,
    ],
  );
  return {
    id: fields.id,
    at: fields.at,
    event: fields.event,
    actorType: fields.actorType,
    actorId: fields.actorId,
    subjectType: fields.subjectType,
    subjectId: fields.subjectId,
    accountId: fields.accountId,
    ip,
    metadata: { ...metadata, ...personal },
  };
}

/** An audit_log row as the service reads it. */
export interface EntryRow {
  seq: number;
  id: string;
  at: Date | string;
  event: string;
  actor_type: string;
  actor_id: string | null;
  subject_type: string | null;
  subject_id: string | null;
  account_id: string | null;
  ip: string | null;
  metadata: JsonObject;
  personal: JsonObject;
}

const ENTRY_COLUMNS = 'seq, id, at, event, actor_type, actor_id, subject_type, subject_id, account_id, ip, metadata, personal';

/** The row's identifying fields in the entry's (and the hash's) shape: one mapping for reading and verifying. */
export function entryFieldsOf(row: EntryRow) {
  return {
    id: row.id,
    at: new Date(row.at).toISOString(),
    event: row.event,
    actorType: row.actor_type,
    actorId: row.actor_id,
    subjectType: row.subject_type,
    subjectId: row.subject_id,
    accountId: row.account_id,
  };
}

function toEntry(row: EntryRow): StoredAuditEntry {
  return { seq: row.seq, ...entryFieldsOf(row), ip: row.ip, metadata: { ...row.metadata, ...row.personal } };
}

export interface AuditPage {
  readonly items: StoredAuditEntry[];
  /** Pass back as `cursor` for the next (older) page; null on the last page. */
  readonly nextCursor: string | null;
}

/** The opaque cursor is the sequence number of the last entry shown. */
export const CURSOR_PATTERN = '^[1-9][0-9]{0,15}$';


/**
 * Entries newest first, as far as the transaction's context may see (row-level
 * security): a system context sees every account's entries, an account context its own.
 */
export async function listAuditEntries(
  tx: Queryable,
  options: { readonly limit?: number; readonly cursor?: string; readonly accountId?: string } = {},
): Promise<AuditPage> {
  const limit = clampPageLimit(options.limit);
  const before = options.cursor === undefined ? null : Number(options.cursor);
  if (before !== null && !Number.isSafeInteger(before)) throw new TypeError('Invalid audit cursor');
  const { rows } = await tx.query<EntryRow>(
    `SELECT ${ENTRY_COLUMNS} FROM audit_log
      WHERE ($1::bigint IS NULL OR seq < $1::bigint) AND ($2::text IS NULL OR account_id = $2::text)
      ORDER BY seq DESC LIMIT $3`,
    [before, options.accountId ?? null, limit + 1],
  );
  const items = rows.slice(0, limit).map(toEntry);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? String(last.seq) : null };
}

/**
 * GDPR-1: every entry about the account, and every entry that names no account but
 * carries one of `emails` as its typed email (a failed login before the account existed,
 * a login lockout), oldest first, with their personal details. Run it in a system context
 * (an account context cannot see the entries that name no account).
 */
export async function listAuditEntriesAbout(
  tx: Queryable,
  subject: { readonly accountId: string; readonly emails: readonly string[] },
): Promise<StoredAuditEntry[]> {
  const { rows } = await tx.query<EntryRow>(
    `SELECT ${ENTRY_COLUMNS} FROM audit_log WHERE account_id = $1
     UNION ALL
     SELECT ${ENTRY_COLUMNS} FROM audit_log
      WHERE account_id IS NULL AND erased_at IS NULL AND (personal ->> 'email') = ANY($2::text[])
     ORDER BY seq`,
    [subject.accountId, subject.emails],
  );
  return rows.map(toEntry);
}

/**
 * GDPR-2: replaces the personal data (ip and personal details) of every entry about the
 * account with keyed pseudonyms, keeping the chain verifiable (see 0003_audit.sql). Run it
 * in a system context or in the account's own context. Returns how many entries changed.
 */
export async function erasePersonalAuditData(
  tx: Queryable,
  accountId: string,
  pseudonymKey: string | Uint8Array,
  clock: Clock,
  batchSize = 500,
): Promise<number> {
  return eraseSelected(tx, 'account_id = $1', [accountId], pseudonymKey, clock, batchSize);
}

/**
 * GDPR-2 for entries that name no account but carry one of `emails` as their typed email
 * (see listAuditEntriesAbout). Run it in a system context. Returns how many entries changed.
 */
export async function erasePersonalAuditDataByEmail(
  tx: Queryable,
  emails: readonly string[],
  pseudonymKey: string | Uint8Array,
  clock: Clock,
  batchSize = 500,
): Promise<number> {
  if (emails.length === 0) return 0;
  return eraseSelected(tx, `account_id IS NULL AND (personal ->> 'email') = ANY($1::text[])`, [emails], pseudonymKey, clock, batchSize);
}

/** Erases, a batch at a time, the not yet erased entries matching `condition` (parameter $1). */
async function eraseSelected(
  tx: Queryable,
  condition: string,
  params: readonly unknown[],
  pseudonymKey: string | Uint8Array,
  clock: Clock,
  batchSize: number,
): Promise<number> {
  let erased = 0;
  for (;;) {
    const { rows } = await tx.query<{ id: string; ip: string | null; personal: JsonObject }>(
      `SELECT id, ip, personal FROM audit_log WHERE ${condition} AND erased_at IS NULL ORDER BY seq LIMIT $2`,
      [...params, batchSize],
    );
    if (rows.length === 0) return erased;
    const batch = rows.map((row) => ({
      id: row.id,
      ip: row.ip === null ? null : pseudonym(pseudonymKey, 'ip', row.ip),
      personal: Object.fromEntries(
        Object.entries(row.personal).map(([key, value]): [string, JsonValue] => [
          key,
          value === null ? null : pseudonym(pseudonymKey, key, value),
        ]),
      ),
    }));
    const result = await tx.query<{ erased: number }>('SELECT audit_erase_personal($1::jsonb, $2::timestamptz) AS erased', [
      JSON.stringify(batch),
      clock.now().toISOString(),
    ]);
    const changed = result.rows[0]?.erased ?? 0;
    erased += changed;
    // Guard against a loop on rows the context can read but not erase (cannot happen with
    // the shipped policies, which use the same condition).
    if (changed < rows.length) return erased;
  }
}
