import { existsSync } from 'node:fs';
import path from 'node:path';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount, asSystem } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database, type Transaction } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { insertAccount, insertUser, updateAccount } from '../accounts/accounts.repository.js';
import { recordAudit } from '../audit/audit.service.js';
import type { Actor, CreditsService } from '../credits/credits.service.js';
import { FALLBACK_PLAN_ID } from '../plans/plan-features.js';
import { entitledPlanOf, findSubscription } from '../stripe/webhooks/billing-state.repository.js';
import { lockStripeObject } from '../stripe/webhooks/inbox.repository.js';
import { countLines, readJsonLines } from './json-lines.js';
import {
  claimImport,
  findImported,
  findImportedUser,
  insertLegacyPayment,
  insertLegacySubscription,
  setStripeCustomer,
} from './legacy-import.repository.js';
import {
  LEGACY_FILES,
  LEGACY_KINDS,
  RecordProblem,
  parseLegacyRecord,
  type LegacyKind,
  type LegacyPayment,
  type LegacyRecord,
  type LegacySubscription,
  type LegacyUser,
} from './legacy-records.js';

/**
 * The legacy JSON import (OPS-9; docs/legacy-import.md). Reads users.jsonl, then
 * subscriptions.jsonl, then payments.jsonl from one folder, and imports each record in
 * its own transaction acting for the record's account (row-level security), together
 * with its row in legacy_import_records: a record is imported whole or not at all, and
 * once. A record that is refused (bad JSON, a missing or wrong field, an unknown
 * reference, a conflict with data already there) is reported with its file and line and
 * the run goes on; one audit entry per run holds the counts.
 */

export type RecordOutcome = 'imported' | 'unchanged' | 'changed' | 'rejected';

export interface ImportProblem {
  readonly file: string;
  readonly line: number;
  /** The record's legacy id, when it had a readable one. */
  readonly id: string | null;
  /** `rejected`: nothing of it was written. `changed`: imported before, and differs now; not applied. */
  readonly outcome: 'rejected' | 'changed';
  readonly field: string | null;
  readonly message: string;
}

export interface FileSummary {
  readonly file: string;
  readonly present: boolean;
  records: number;
  imported: number;
  unchanged: number;
  changed: number;
  rejected: number;
}

export interface ImportSummary {
  readonly runId: string;
  readonly directory: string;
  readonly files: Readonly<Record<LegacyKind, FileSummary>>;
  /** Imported users whose legacy password hash was not kept (not argon2id as strong as ours): they set a password through a reset. */
  readonly passwordsDropped: number;
  /** Credits granted from legacy balances in this run. */
  readonly creditsGranted: number;
  /** At most MAX_REPORTED_PROBLEMS, in the order met; problemsOmitted counts the rest. */
  readonly problems: readonly ImportProblem[];
  readonly problemsOmitted: number;
}

export interface ImportProgress {
  (label: string, done: number, total: number): void;
}

export interface LegacyImportOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly credits: CreditsService;
}

/** How many problems a summary lists; a file of a million bad lines is summarised, not echoed. */
export const MAX_REPORTED_PROBLEMS = 1000;

/** Which file is there, and which is there under a name the import does not read (users.json instead of users.jsonl). */
export function legacyFilesIn(directory: string): { found: Record<LegacyKind, boolean>; misnamed: string[] } {
  const found = {} as Record<LegacyKind, boolean>;
  const misnamed: string[] = [];
  for (const kind of LEGACY_KINDS) {
    const file = LEGACY_FILES[kind];
    found[kind] = existsSync(path.join(directory, file));
    const plainJson = file.replace(/\.jsonl$/, '.json');
    if (!found[kind] && existsSync(path.join(directory, plainJson))) misnamed.push(plainJson);
  }
  return { found, misnamed };
}

/** Aborts a record's transaction when a concurrent run claimed the record first: nothing of this attempt stays. */
class ClaimedElsewhere extends Error {}

const UNIQUE_FIELDS: Readonly<Record<string, readonly [string, string]>> = {
  users_email_unique: ['email', 'is already in use by another user'],
  accounts_stripe_customer_id_key: ['stripe_customer_id', 'already belongs to another account'],
  subscriptions_pkey: ['stripe_subscription_id', 'is already recorded (from Stripe or another account); the import does not overwrite it'],
  // Only a subscription's target (its Stripe id) can be named by two legacy records; users and payments get new ids.
  legacy_import_records_kind_target_id_key: ['stripe_subscription_id', 'is already imported from another legacy record'],
  payments_stripe_payment_intent_id_key: ['stripe_payment_intent_id', 'is already recorded for another payment'],
  payments_stripe_charge_id_key: ['stripe_charge_id', 'is already recorded for another payment'],
  payments_stripe_checkout_session_id_key: ['stripe_checkout_session_id', 'is already recorded for another payment'],
  payments_stripe_invoice_id_key: ['stripe_invoice_id', 'is already recorded for another payment'],
};

/** The credits service's field names, as the fields of a legacy user record. */
const GRANT_FIELDS: Readonly<Record<string, string>> = { amount: 'credits', expiresAt: 'credits_expire_at' };

/** A database refusal that is the record's fault, as the field and reason to report; undefined for anything else. */
function problemOf(error: unknown): RecordProblem | undefined {
  if (error instanceof RecordProblem) return error;
  if (error instanceof AppError && error.code === 'VALIDATION_FAILED') {
    const detail = error.details?.[0];
    return new RecordProblem(detail?.field ?? null, detail?.message ?? error.message);
  }
  if (sqlStateOf(error) === SqlState.uniqueViolation) {
    const constraint = (error as { constraint?: unknown }).constraint;
    const known = typeof constraint === 'string' ? UNIQUE_FIELDS[constraint] : undefined;
    return known ? new RecordProblem(known[0], known[1]) : new RecordProblem(null, 'conflicts with a row already in the database');
  }
  return undefined;
}

export class LegacyImportService {
  constructor(private readonly options: LegacyImportOptions) {}

  /**
   * Imports the legacy files found in `directory` (at least one must be there: the caller
   * checks with legacyFilesIn). Resolves to the summary; rejects only on a failure that is
   * not a record's fault (the database went away), after which a new run carries on where
   * this one stopped, since every imported record is committed with its claim.
   */
  async importDirectory(directory: string, actor: Actor, progress?: ImportProgress): Promise<ImportSummary> {
    const runId = newId('importRun');
    const { found } = legacyFilesIn(directory);
    const files = {} as Record<LegacyKind, FileSummary>;
    const lineCounts = {} as Record<LegacyKind, number>;
    let total = 0;
    for (const kind of LEGACY_KINDS) {
      files[kind] = { file: LEGACY_FILES[kind], present: found[kind], records: 0, imported: 0, unchanged: 0, changed: 0, rejected: 0 };
      lineCounts[kind] = found[kind] ? await countLines(path.join(directory, LEGACY_FILES[kind])) : 0;
      total += lineCounts[kind];
    }
    const problems: ImportProblem[] = [];
    let problemsOmitted = 0;
    let passwordsDropped = 0;
    let creditsGranted = 0;
    let linesBefore = 0;

    const report = (problem: ImportProblem) => {
      if (problems.length < MAX_REPORTED_PROBLEMS) problems.push(problem);
      else problemsOmitted += 1;
    };

    for (const kind of LEGACY_KINDS) {
      const summary = files[kind];
      if (!summary.present) continue;
      const file = path.join(directory, summary.file);
      // Members whose owner comes later in users.jsonl wait for the end of the file.
      const deferred: { line: number; record: LegacyUser; fingerprint: string }[] = [];

      const apply = async (line: number, record: LegacyRecord, fingerprint: string): Promise<void> => {
        try {
          const outcome = await this.importRecord(record, fingerprint, runId, actor);
          summary[outcome.outcome] += 1;
          if (outcome.outcome === 'imported') {
            if (record.kind === 'user' && record.passwordDropped) passwordsDropped += 1;
            if (record.kind === 'user') creditsGranted += record.credits;
          }
          if (outcome.outcome === 'changed') {
            report({
              file: summary.file,
              line,
              id: record.id,
              outcome: 'changed',
              field: null,
              message: `was imported by ${outcome.runId} and differs from that record now; changes are not applied`,
            });
          }
        } catch (error) {
          const problem = problemOf(error);
          if (!problem) throw error;
          summary.rejected += 1;
          report({ file: summary.file, line, id: record.id, outcome: 'rejected', field: problem.field, message: problem.message });
        }
      };

      for await (const entry of readJsonLines(file)) {
        summary.records += 1;
        progress?.(`${summary.file}:${entry.line}`, Math.min(linesBefore + entry.line, total), total);
        if (entry.problem !== undefined) {
          summary.rejected += 1;
          report({ file: summary.file, line: entry.line, id: null, outcome: 'rejected', field: null, message: entry.problem });
          continue;
        }
        const parsed = parseLegacyRecord(kind, entry.value);
        if (!parsed.ok) {
          summary.rejected += 1;
          report({ file: summary.file, line: entry.line, id: parsed.legacyId, outcome: 'rejected', field: parsed.field, message: parsed.message });
          continue;
        }
        const record = parsed.record;
        if (record.kind === 'user' && record.ownerId !== null && !(await this.isImportedUser(record.ownerId))) {
          deferred.push({ line: entry.line, record, fingerprint: parsed.fingerprint });
          continue;
        }
        await apply(entry.line, record, parsed.fingerprint);
      }
      for (const waiting of deferred) await apply(waiting.line, waiting.record, waiting.fingerprint);
      linesBefore += lineCounts[kind];
    }

    const summary: ImportSummary = { runId, directory, files, passwordsDropped, creditsGranted, problems, problemsOmitted };
    await this.options.database.transaction((tx) =>
      recordAudit(
        tx,
        {
          event: 'legacy_import.completed',
          actorType: actor.actorType,
          actorId: actor.actorId,
          ip: actor.ip ?? null,
          subjectType: 'legacy_import',
          subjectId: runId,
          metadata: {
            // Counts only: the folder's path may name a person (a home directory).
            files: Object.fromEntries(
              LEGACY_KINDS.map((kind) => {
                const { file, present, ...counts } = files[kind];
                return [file, present ? counts : null];
              }),
            ),
            passwordsDropped,
            creditsGranted,
          },
        },
        this.options.clock,
      ),
    );
    return summary;
  }

  private async isImportedUser(legacyId: string): Promise<boolean> {
    return (await asSystem(this.options.database, (tx) => findImported(tx, 'user', legacyId))) !== undefined;
  }

  private async importRecord(
    record: LegacyRecord,
    fingerprint: string,
    runId: string,
    actor: Actor,
  ): Promise<{ outcome: 'imported' } | { outcome: 'unchanged' } | { outcome: 'changed'; runId: string }> {
    // Before anything is written: was it imported already, and what does it point at?
    // A system read, since the record's account is not known yet.
    const { existing, target } = await asSystem(this.options.database, async (tx) => {
      const existingRow = await findImported(tx, record.kind, record.id);
      if (existingRow) return { existing: existingRow, target: undefined };
      const reference = record.kind === 'user' ? record.ownerId : record.userId;
      return { existing: undefined, target: reference === null ? undefined : await findImportedUser(tx, reference) };
    });
    if (existing) {
      // A digest erased with the person's data (GDPR-2) cannot differ: the record stays imported, never revived.
      if (existing.record_sha256 === null || existing.record_sha256 === fingerprint) return { outcome: 'unchanged' };
      return { outcome: 'changed', runId: existing.run_id };
    }
    try {
      if (record.kind === 'user') await this.importUser(record, fingerprint, runId, actor, target);
      else if (record.kind === 'subscription') await this.importSubscription(record, fingerprint, runId, actor, requireUser(target, record.userId));
      else await this.importPayment(record, fingerprint, runId, requireUser(target, record.userId));
    } catch (error) {
      if (error instanceof ClaimedElsewhere) return { outcome: 'unchanged' };
      throw error;
    }
    return { outcome: 'imported' };
  }

  private async claim(tx: Transaction, record: LegacyRecord, targetId: string, accountId: string, fingerprint: string, runId: string): Promise<void> {
    const claimed = await claimImport(tx, { kind: record.kind, legacyId: record.id, targetId, accountId, fingerprint, runId, at: this.options.clock.now() });
    if (!claimed) throw new ClaimedElsewhere();
  }

  private async importUser(record: LegacyUser, fingerprint: string, runId: string, actor: Actor, owner: ImportedUser | undefined): Promise<void> {
    if (record.ownerId !== null) {
      if (!owner) throw new RecordProblem('owner_id', `names user ${record.ownerId}, which is not imported`);
      if (owner.role !== 'owner') throw new RecordProblem('owner_id', `names user ${record.ownerId}, who is a member, not an account owner`);
      if (owner.account_status === 'deleted') throw new RecordProblem('owner_id', `names user ${record.ownerId}, whose account is deleted`);
    }
    const accountId = owner?.account_id ?? newId('account');
    const at = record.createdAt ?? this.options.clock.now();
    const userId = newId('user');
    await forAccount(this.options.database, accountId, async (tx) => {
      // The claim comes first (after the new account its row refers to): a concurrent run
      // importing the same record waits here and then gives up, before touching any
      // unique email or Stripe id.
      if (!owner) await insertAccount(tx, { id: accountId, name: record.name, plan: FALLBACK_PLAN_ID, at });
      await this.claim(tx, record, userId, accountId, fingerprint, runId);
      if (!owner && record.stripeCustomerId !== null) await setStripeCustomer(tx, accountId, record.stripeCustomerId);
      const user = await insertUser(tx, {
        id: userId,
        accountId,
        email: record.email,
        name: record.name,
        passwordHash: record.passwordHash,
        role: owner ? 'member' : 'owner',
        at,
      });
      if (record.credits > 0) {
        try {
          await this.options.credits.grantIn(
            tx,
            accountId,
            { amount: record.credits, source: 'admin', expiresAt: record.creditsExpireAt, reference: `legacy:${record.id}` },
            actor,
          );
        } catch (error) {
          // The credits service names its own fields; the operator knows the record's.
          const problem = problemOf(error);
          if (problem && !(error instanceof RecordProblem)) throw new RecordProblem(GRANT_FIELDS[problem.field ?? ''] ?? 'credits', problem.message);
          throw error;
        }
      }
      // Audit entries last: appending holds the audit chain's lock until commit.
      const via = { via: 'legacy_import', legacyId: record.id, runId };
      if (!owner) await this.audit(tx, actor, 'account.created', 'account', accountId, accountId, { plan: FALLBACK_PLAN_ID, ...via });
      await this.audit(tx, actor, 'user.created', 'user', user.id, accountId, { role: user.role, passwordKept: record.passwordHash !== null, ...via });
    });
  }

  private async importSubscription(record: LegacySubscription, fingerprint: string, runId: string, actor: Actor, user: ImportedUser): Promise<void> {
    const customerId = user.stripe_customer_id;
    if (customerId === null) {
      throw new RecordProblem('user_id', `names user ${record.userId}, whose account has no stripe_customer_id (subscriptions need it)`);
    }
    await forAccount(this.options.database, user.account_id, async (tx) => {
      await this.claim(tx, record, record.stripeSubscriptionId, user.account_id, fingerprint, runId);
      // The webhook handlers' lock on this Stripe object: an event for it waits for this record.
      await lockStripeObject(tx, record.stripeSubscriptionId);
      if (await findSubscription(tx, record.stripeSubscriptionId)) {
        throw new RecordProblem('stripe_subscription_id', 'is already recorded (from Stripe); the import does not overwrite it');
      }
      const now = this.options.clock.now();
      await insertLegacySubscription(tx, user.account_id, customerId, record, now);
      // The plan follows from the stored subscriptions, as after a webhook (PAY-3).
      const { rows } = await tx.query<{ plan: string }>('SELECT plan FROM accounts WHERE id = $1 FOR UPDATE', [user.account_id]);
      const currentPlan = rows[0]?.plan ?? FALLBACK_PLAN_ID;
      const plan = (await entitledPlanOf(tx, user.account_id)) ?? FALLBACK_PLAN_ID;
      if (plan !== currentPlan) await updateAccount(tx, user.account_id, { plan }, now);
      const via = { via: 'legacy_import', legacyId: record.id, runId };
      await this.audit(tx, actor, 'subscription.created', 'subscription', record.stripeSubscriptionId, user.account_id, {
        status: { from: null, to: record.status },
        plan: { from: null, to: record.plan },
        cancelAtPeriodEnd: record.cancelAtPeriodEnd,
        ...via,
      });
      if (plan !== currentPlan) {
        await this.audit(tx, actor, 'account.updated', 'account', user.account_id, user.account_id, {
          changes: { plan: { from: currentPlan, to: plan } },
          subscriptionId: record.stripeSubscriptionId,
          ...via,
        });
      }
    });
  }

  private async importPayment(record: LegacyPayment, fingerprint: string, runId: string, user: ImportedUser): Promise<void> {
    await forAccount(this.options.database, user.account_id, async (tx) => {
      const paymentId = newId('payment');
      await this.claim(tx, record, paymentId, user.account_id, fingerprint, runId);
      await insertLegacyPayment(tx, paymentId, user.account_id, record, this.options.clock.now());
    });
  }

  private async audit(
    tx: Transaction,
    actor: Actor,
    event: string,
    subjectType: string,
    subjectId: string,
    accountId: string,
    metadata: Record<string, unknown>,
  ): Promise<void> {
    await recordAudit(
      tx,
      { event, actorType: actor.actorType, actorId: actor.actorId, ip: actor.ip ?? null, subjectType, subjectId, accountId, metadata },
      this.options.clock,
    );
  }
}

type ImportedUser = NonNullable<Awaited<ReturnType<typeof findImportedUser>>>;

function requireUser(user: ImportedUser | undefined, legacyId: string): ImportedUser {
  if (!user) throw new RecordProblem('user_id', `names user ${legacyId}, which is not imported`);
  if (user.account_status === 'deleted') throw new RecordProblem('user_id', `names user ${legacyId}, whose account is deleted`);
  return user;
}
