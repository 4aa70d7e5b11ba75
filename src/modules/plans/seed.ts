import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { recordAudit } from '../audit/audit.service.js';
import { loadLatestCatalogue } from './catalogue-file.js';
import type { PlanCatalogue } from './plan-catalogue.js';
import type { CatalogueFile } from './plan-schemas.js';
import { catalogueValues, insertPlanIfAbsent, planFromRow } from './plans.repository.js';

export interface SeedOptions {
  /** The catalogue to load (default: the highest catalogue.vN.json shipped). */
  readonly catalogue?: CatalogueFile;
  /** Dropped from cache after seeding (needed on PGlite if it was read before). */
  readonly planCatalogue?: PlanCatalogue;
}

export interface SeedReport {
  readonly catalogueVersion: number;
  /** Plans this call inserted; empty when every plan already existed. */
  readonly inserted: readonly string[];
}

/**
 * Loads the shipped catalogue into the plans table: inserts only the plans that do not
 * exist yet, never changes an existing row (operator edits survive every restart), and
 * audits each insertion as `plan.created` by the system. Safe on every start and on
 * several instances starting at once (INSERT ... ON CONFLICT DO NOTHING). Works as the
 * application role; call it after migrating.
 */
export async function seedCatalogue(database: Database, clock: Clock, options: SeedOptions = {}): Promise<SeedReport> {
  const catalogue = options.catalogue ?? loadLatestCatalogue();
  const inserted = await asSystem(database, async (tx) => {
    const at = clock.now();
    const rows = [];
    for (const [index, plan] of catalogue.plans.entries()) {
      const row = await insertPlanIfAbsent(tx, plan.id, catalogueValues(plan, (index + 1) * 10), catalogue.version, at);
      if (row) rows.push(row);
    }
    // Audit entries last: appending holds the audit chain's lock until commit.
    for (const row of rows) {
      await recordAudit(
        tx,
        {
          event: 'plan.created',
          actorType: 'system',
          subjectType: 'plan',
          subjectId: row.id,
          metadata: { source: 'catalogue', catalogueVersion: catalogue.version, before: null, after: planFromRow(row) },
        },
        clock,
      );
    }
    return rows.map((row) => row.id);
  });
  if (inserted.length > 0) options.planCatalogue?.invalidate();
  return { catalogueVersion: catalogue.version, inserted };
}
