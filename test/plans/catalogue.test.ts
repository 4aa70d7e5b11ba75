import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadLatestCatalogue, parseCatalogue } from '../../src/modules/plans/catalogue-file.js';
import { PlanCatalogue } from '../../src/modules/plans/plan-catalogue.js';
import { LocalRevocationFeed } from '../../src/modules/api-keys/revocation-feed.js';
import { PlanAdminService } from '../../src/modules/plans/plans.service.js';
import { seedCatalogue } from '../../src/modules/plans/seed.js';
import { SYSTEM_ACTOR } from '../../src/modules/api-keys/audit-hook.js';
import { listAuditEntries } from '../../src/modules/audit/audit.service.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { ManualClock } from '../../src/platform/clock.js';
import { createTestPglite } from '../helpers/pglite.js';
import { effectivePlanId, Exemptions, NO_EXEMPTIONS } from '../../src/modules/plans/exemptions.js';

const clock = new ManualClock('2026-03-01T00:00:00Z');

async function auditEvents(database: Database): Promise<string[]> {
  const page = await asSystem(database, (tx) => listAuditEntries(tx, { limit: 100 }));
  return page.items.map((entry) => `${entry.event}:${entry.subjectId}`);
}

async function planCount(database: Database): Promise<number> {
  const { rows } = await database.query<{ count: number }>('SELECT count(*)::int AS count FROM plans');
  return rows[0]?.count ?? -1;
}

describe('catalogue file', () => {
  it('ships FREE, STARTER, PRO and ENTERPRISE with the TIER-1 defaults and RL-5 limits', () => {
    const catalogue = loadLatestCatalogue();
    expect(catalogue.version).toBeGreaterThanOrEqual(1);
    const byId = new Map(catalogue.plans.map((plan) => [plan.id, plan]));
    expect([...byId.keys()]).toEqual(['FREE', 'STARTER', 'PRO', 'ENTERPRISE']);
    const limits = (id: string) => {
      const features = byId.get(id)?.features ?? {};
      return ['api_calls_per_day', 'concurrent_builds', 'private_repos', 'team_members', 'marketplace_agents'].map((name) => {
        const feature = features[name];
        return feature && 'limit' in feature ? feature.limit : 'missing';
      });
    };
    expect(limits('FREE')).toEqual([100, 1, 0, 1, 0]);
    expect(limits('STARTER')).toEqual([1000, 3, 5, 3, 5]);
    expect(limits('PRO')).toEqual([10000, 10, 50, 10, 25]);
    expect(limits('ENTERPRISE')).toEqual([null, null, null, null, null]);
    expect(byId.get('FREE')?.features.api_calls_per_day).toEqual({ kind: 'metered', limit: 100, period: 'day' });
    expect(byId.get('FREE')?.features.concurrent_builds?.kind).toBe('concurrency');
    expect(byId.get('PRO')?.features.priority_support).toEqual({ kind: 'boolean', enabled: true });
    expect(byId.get('STARTER')?.features.priority_support).toEqual({ kind: 'boolean', enabled: false });
    expect(catalogue.plans.map((plan) => plan.requestsPerMinute)).toEqual([600, 3000, 30000, null]);
  });

  it('refuses a malformed catalogue, naming the problem', () => {
    const good = loadLatestCatalogue();
    const badLimit = structuredClone(good) as { plans: { features: Record<string, unknown> }[] };
    badLimit.plans[0]!.features.team_members = { kind: 'static', limit: -1 };
    expect(() => parseCatalogue(badLimit)).toThrow(/team_members/);
    expect(() => parseCatalogue({ ...good, plans: good.plans.filter((plan) => plan.id !== 'FREE') })).toThrow(/FREE/);
    expect(() => parseCatalogue({ ...good, plans: [...good.plans, good.plans[1]] })).toThrow(/twice/);
  });
});

describe('seeding and the catalogue (PGlite)', () => {
  let database: Database;

  beforeEach(async () => {
    database = await createTestPglite();
  });
  afterEach(async () => {
    await database.close();
  });

  it('inserts the catalogue once, audits each plan, and is idempotent', async () => {
    const first = await seedCatalogue(database, clock);
    expect(first.inserted).toEqual(['FREE', 'STARTER', 'PRO', 'ENTERPRISE']);
    expect(await planCount(database)).toBe(4);
    const events = await auditEvents(database);
    expect(events.filter((event) => event.startsWith('plan.created:'))).toHaveLength(4);

    const second = await seedCatalogue(database, clock);
    expect(second.inserted).toEqual([]);
    expect(await planCount(database)).toBe(4);
    expect(await auditEvents(database)).toEqual(events);
  });

  it('never overwrites an operator edit, and a catalogue version bump adds only the new plans', async () => {
    await seedCatalogue(database, clock);
    const service = new PlanAdminService({ database, clock });
    await service.putPlan('PRO', { priceCents: 12900, features: { api_calls_per_day: { kind: 'metered', limit: 20000, period: 'day' } } }, SYSTEM_ACTOR);

    const v1 = loadLatestCatalogue();
    const v2 = parseCatalogue({
      ...v1,
      version: v1.version + 1,
      plans: [...v1.plans.map((plan) => ({ ...plan, priceCents: plan.priceCents + 1 })), { ...v1.plans[1]!, id: 'STARTER_ANNUAL', interval: 'year' }],
    });
    const reseeded = await seedCatalogue(database, clock, { catalogue: v2 });
    expect(reseeded.inserted).toEqual(['STARTER_ANNUAL']);

    const catalogue = new PlanCatalogue(database, undefined);
    const pro = await catalogue.planFor('PRO');
    expect(pro.priceCents).toBe(12900);
    expect(Object.keys(pro.features)).toEqual(['api_calls_per_day']);
    expect((await catalogue.planFor('STARTER')).priceCents).toBe(1900);
    expect((await catalogue.planFor('STARTER_ANNUAL')).interval).toBe('year');
    const { rows } = await database.query<{ id: string; catalogue_version: number; version: number }>(
      'SELECT id, catalogue_version, version FROM plans ORDER BY id',
    );
    expect(rows.find((row) => row.id === 'STARTER_ANNUAL')?.catalogue_version).toBe(v2.version);
    expect(rows.find((row) => row.id === 'PRO')?.version).toBe(2);
  });

  it('answers FREE for an unknown plan (TIER-2) and a plan granting nothing when FREE is missing', async () => {
    const empty = new PlanCatalogue(database, undefined);
    const fallback = await empty.planFor('PRO');
    expect(fallback.id).toBe('FREE');
    expect(fallback.features).toEqual({});

    await seedCatalogue(database, clock);
    const catalogue = new PlanCatalogue(database, undefined);
    const unknown = await catalogue.planFor('GOLD');
    expect(unknown.id).toBe('FREE');
    expect(unknown.features.api_calls_per_day).toEqual({ kind: 'metered', limit: 100, period: 'day' });
    expect((await catalogue.planFor('')).id).toBe('FREE');
    expect(await catalogue.find('GOLD')).toBeUndefined();
    expect((await catalogue.planFor('ENTERPRISE')).requestsPerMinute).toBeNull();
    expect((await catalogue.list()).map((plan) => plan.id)).toEqual(['FREE', 'STARTER', 'PRO', 'ENTERPRISE']);
  });

  it('prices jobs from the table: story 5 per story, book 2 per page', async () => {
    const catalogue = new PlanCatalogue(database, undefined);
    expect(await catalogue.jobPrice('story')).toMatchObject({ jobType: 'story', creditsPerUnit: 5, unit: 'story' });
    expect(await catalogue.jobPrice('book')).toMatchObject({ jobType: 'book', creditsPerUnit: 2, unit: 'page' });
    expect(await catalogue.jobPrice('video')).toBeUndefined();
  });

  it('leaves out a feature a hand edit broke, so it is denied', async () => {
    await seedCatalogue(database, clock);
    await database.query(
      `UPDATE plans SET features = features || '{"team_members": {"kind": "static", "limit": -5}, "Bad Name": {"kind": "boolean", "enabled": true}}'::jsonb WHERE id = 'PRO'`,
    );
    const warnings: unknown[] = [];
    const catalogue = new PlanCatalogue(database, undefined, { logger: { warn: (object) => warnings.push(object) } });
    const pro = await catalogue.planFor('PRO');
    expect(pro.features.team_members).toBeUndefined();
    expect(pro.features['Bad Name']).toBeUndefined();
    expect(pro.features.private_repos).toEqual({ kind: 'static', limit: 50 });
    expect(warnings).toHaveLength(1);
  });

  it('caches with a local feed and drops the cache after its own writes', async () => {
    await seedCatalogue(database, clock);
    const catalogue = new PlanCatalogue(database, new LocalRevocationFeed());
    const service = new PlanAdminService({ database, clock, catalogue });
    await catalogue.planFor('PRO');
    await catalogue.planFor('STARTER');
    await catalogue.list();
    expect(catalogue.loads).toBe(1);
    await service.putPlan('PRO', { requestsPerMinute: 45000 }, SYSTEM_ACTOR);
    expect((await catalogue.planFor('PRO')).requestsPerMinute).toBe(45000);
    expect(catalogue.loads).toBe(2);
    // Nothing changed: no write, no audit entry, cache kept.
    const events = await auditEvents(database);
    await service.putPlan('PRO', { requestsPerMinute: 45000 }, SYSTEM_ACTOR);
    expect(await auditEvents(database)).toEqual(events);
    await catalogue.planFor('PRO');
    expect(catalogue.loads).toBe(2);
  });

  it('shares one read between concurrent callers', async () => {
    await seedCatalogue(database, clock);
    const catalogue = new PlanCatalogue(database, new LocalRevocationFeed());
    const plans = await Promise.all(['FREE', 'PRO', 'GOLD', 'STARTER'].map((id) => catalogue.planFor(id)));
    expect(plans.map((plan) => plan.id)).toEqual(['FREE', 'PRO', 'FREE', 'STARTER']);
    expect(catalogue.loads).toBe(1);
  });
});

describe('exemptions (OWN-2)', () => {
  const exemptions = new Exemptions({ ownerAccountIds: ['acct_owner', 'acct_both'], testAccountIds: ['acct_test', 'acct_both'], plan: 'ENTERPRISE' });

  it('gives owner and test accounts their configured plan, others their own', () => {
    expect(exemptions.exemptionOf('acct_owner')).toEqual({ exempt: true, kind: 'owner', plan: 'ENTERPRISE' });
    expect(exemptions.exemptionOf('acct_test')).toEqual({ exempt: true, kind: 'test', plan: 'ENTERPRISE' });
    expect(exemptions.exemptionOf('acct_both')?.kind).toBe('owner');
    expect(exemptions.exemptionOf('acct_other')).toBeUndefined();
    expect(effectivePlanId({ id: 'acct_test', plan: 'FREE' }, exemptions)).toBe('ENTERPRISE');
    expect(effectivePlanId({ id: 'acct_other', plan: 'STARTER' }, exemptions)).toBe('STARTER');
    expect(effectivePlanId({ id: 'acct_owner', plan: 'FREE' }, NO_EXEMPTIONS)).toBe('FREE');
  });
});
