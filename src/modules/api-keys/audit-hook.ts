import type { Clock } from '../../platform/clock.js';
import type { Transaction } from '../../platform/database/database.js';
import { recordAudit } from '../audit/audit.service.js';

/**
 * What the key and account services tell the audit log (AUD-1), in the shape API.md gives
 * audit entries. The recorder runs inside the same transaction as the change it
 * describes, so a change and its entry commit or roll back together. The audit module's
 * `recordAudit(tx, entry)` fits this signature; until it is wired, the services run
 * without a recorder.
 */
export interface AuditEntryInput {
  readonly event: string;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly subjectType: string;
  readonly subjectId: string | null;
  /** The account the entry concerns (the audit log's row-level security and GDPR erasure key on it). */
  readonly accountId: string | null;
  readonly ip: string | null;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export type AuditRecorder = (tx: Transaction, entry: AuditEntryInput) => Promise<unknown>;

/** Who asked for a change: taken from the request (actorOf(principal), request.ip). */
export interface ActorContext {
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip: string | null;
}

export const SYSTEM_ACTOR: ActorContext = { actorType: 'system', actorId: null, ip: null };

/** The audit trail's recorder: appends to the hash-chained log inside the caller's transaction. */
export function auditRecorder(clock: Clock): AuditRecorder {
  return (tx, entry) => recordAudit(tx, entry, clock);
}
