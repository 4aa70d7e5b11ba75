import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAuditEntries } from '../../src/modules/audit/audit.service.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createPlansApp, type PlansTestApp } from './helpers.js';

describe('plan routes (PGlite)', () => {
  let subject: PlansTestApp;

  beforeAll(async () => {
    subject = await createPlansApp();
  });
  afterAll(async () => {
    await subject?.close();
  });

  const inject = (options: InjectOptions) => subject.testApp.app.inject(options);
  const putPlan = (id: string, payload: unknown) =>
    inject({ method: 'PUT', url: `/api/admin/plans/${id}`, headers: subject.admin, payload: payload as Record<string, unknown> });
  const auditEntries = async () => (await asSystem(subject.database, (tx) => listAuditEntries(tx, { limit: 100 }))).items;
  const pricing = async () => (await inject({ method: 'GET', url: '/api/pricing' })).json();

  it('GET /api/pricing is public and shows plans, job costs and credit packs', async () => {
    const response = await inject({ method: 'GET', url: '/api/pricing' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['cache-control']).toBe('public, max-age=60');
    const body = response.json();
    expect(Object.keys(body).sort()).toEqual(['creditPacks', 'jobCosts', 'plans']);
    expect(body.plans.map((plan: { id: string }) => plan.id)).toEqual(['FREE', 'STARTER', 'PRO', 'ENTERPRISE']);
    const starter = body.plans[1];
    expect(starter).toEqual({
      id: 'STARTER',
      name: 'Starter',
      priceCents: 1900,
      currency: 'usd',
      interval: 'month',
      requestsPerMinute: 3000,
      updatedAt: '2026-03-01T00:00:00.000Z',
      features: {
        api_calls_per_day: { kind: 'metered', limit: 1000, period: 'day' },
        concurrent_builds: { kind: 'concurrency', limit: 3 },
        private_repos: { kind: 'static', limit: 5 },
        team_members: { kind: 'static', limit: 3 },
        marketplace_agents: { kind: 'static', limit: 5 },
        priority_support: { kind: 'boolean', enabled: false },
        sso: { kind: 'boolean', enabled: false },
      },
    });
    expect(body.plans[3].features.team_members).toEqual({ kind: 'static', limit: null });
    expect(body.jobCosts).toEqual([
      { jobType: 'book', creditsPerUnit: 2, unit: 'page', updatedAt: expect.any(String) },
      { jobType: 'story', creditsPerUnit: 5, unit: 'story', updatedAt: expect.any(String) },
    ]);
    expect(body.creditPacks).toEqual([]);
  });

  it('PUT /api/admin/plans/:id needs the admin token', async () => {
    expect((await inject({ method: 'PUT', url: '/api/admin/plans/PRO', payload: { priceCents: 1 } })).statusCode).toBe(401);
  });

  it.each([
    [{ priceCents: -1 }, 'priceCents'],
    [{ priceCents: 10.5 }, 'priceCents'],
    [{ priceCents: '9900' }, 'priceCents'],
    [{ currency: 'USD' }, 'currency'],
    [{ interval: 'week' }, 'interval'],
    [{ requestsPerMinute: 0 }, 'requestsPerMinute'],
    [{ name: '' }, 'name'],
    [{ colour: 'red' }, 'colour'],
    [{ features: { team_members: { kind: 'static', limit: -1 } } }, 'features.team_members'],
    [{ features: { team_members: { kind: 'static', limit: 2.5 } } }, 'features.team_members'],
    [{ features: { api_calls_per_day: { kind: 'metered', limit: 5 } } }, 'features.api_calls_per_day'],
    [{ features: { api_calls_per_day: { kind: 'metered', limit: 5, period: 'hour' } } }, 'features.api_calls_per_day'],
    [{ features: { sso: { kind: 'boolean', enabled: 'yes' } } }, 'features.sso'],
    [{ features: { sso: { kind: 'boolean', enabled: true, limit: 3 } } }, 'features.sso'],
    [{ features: { 'Team Members': { kind: 'static', limit: 1 } } }, 'features.Team Members'],
    [{ features: Object.fromEntries(Array.from({ length: 51 }, (_, index) => [`f${index}`, { kind: 'boolean', enabled: true }])) }, 'features'],
    [{}, 'body'],
  ])('PUT /api/admin/plans/PRO with %j answers 400 naming %s and changes nothing', async (payload, field) => {
    const before = await pricing();
    const entries = (await auditEntries()).length;
    const response = await putPlan('PRO', payload);
    expect(response.statusCode, response.body).toBe(400);
    const error = response.json().error;
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details.map((detail: { field: string }) => detail.field)).toContain(field);
    expect(await pricing()).toEqual(before);
    expect((await auditEntries()).length).toBe(entries);
  });

  it('refuses a plan id that is not an upper-case word', async () => {
    const response = await putPlan('pro', { priceCents: 1 });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.details[0].field).toBe('params.id');
  });

  it('updates a plan in one audited transaction: before, after, who; updatedAt moves', async () => {
    subject.clock.advance(60_000);
    const response = await putPlan('PRO', {
      priceCents: 12900,
      features: {
        api_calls_per_day: { kind: 'metered', limit: 20000, period: 'day' },
        concurrent_builds: { kind: 'concurrency', limit: 12 },
        priority_support: { kind: 'boolean', enabled: true },
      },
    });
    expect(response.statusCode, response.body).toBe(200);
    const plan = response.json().plan;
    expect(plan).toMatchObject({ id: 'PRO', name: 'Pro', priceCents: 12900, requestsPerMinute: 30000 });
    expect(Object.keys(plan.features)).toEqual(['api_calls_per_day', 'concurrent_builds', 'priority_support']); // sorted by name
    expect(plan.updatedAt).not.toBe('2026-03-01T00:00:00.000Z');

    const listed = (await pricing()).plans.find((candidate: { id: string }) => candidate.id === 'PRO');
    expect(listed).toEqual(plan);
    expect((await subject.catalogue.planFor('PRO')).features.concurrent_builds).toEqual({ kind: 'concurrency', limit: 12 });

    const entry = (await auditEntries()).find((candidate) => candidate.event === 'plan.updated');
    expect(entry).toMatchObject({ actorType: 'admin', subjectType: 'plan', subjectId: 'PRO', ip: '127.0.0.1' });
    const metadata = entry?.metadata as { before: { priceCents: number; features: object }; after: { priceCents: number } };
    expect(metadata.before.priceCents).toBe(9900);
    expect(Object.keys(metadata.before.features)).toContain('team_members');
    expect(metadata.after.priceCents).toBe(12900);
  });

  it('creates a plan with every field (201, plan.created) and refuses an incomplete new one', async () => {
    const incomplete = await putPlan('TEAM', { priceCents: 4900 });
    expect(incomplete.statusCode).toBe(400);
    expect(incomplete.json().error.details.map((detail: { field: string }) => detail.field)).toEqual([
      'name',
      'currency',
      'interval',
      'requestsPerMinute',
      'features',
    ]);
    const created = await putPlan('TEAM', {
      name: 'Team',
      priceCents: 4900,
      currency: 'usd',
      interval: 'year',
      requestsPerMinute: 10000,
      features: { team_members: { kind: 'static', limit: 20 } },
      position: 25,
    });
    expect(created.statusCode, created.body).toBe(201);
    expect((await pricing()).plans.map((plan: { id: string }) => plan.id)).toEqual(['FREE', 'STARTER', 'TEAM', 'PRO', 'ENTERPRISE']);
    const entry = (await auditEntries()).find((candidate) => candidate.event === 'plan.created' && candidate.actorType === 'admin');
    expect(entry?.metadata).toMatchObject({ before: null, after: { id: 'TEAM', priceCents: 4900 } });
  });

  it('PUT /api/admin/pricing/:jobType changes a price with before/after and updatedAt; a new job type needs its unit', async () => {
    const bad = await inject({ method: 'PUT', url: '/api/admin/pricing/story', headers: subject.admin, payload: { creditsPerUnit: 0 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details[0].field).toBe('creditsPerUnit');
    const changed = await inject({ method: 'PUT', url: '/api/admin/pricing/story', headers: subject.admin, payload: { creditsPerUnit: 7 } });
    expect(changed.statusCode, changed.body).toBe(200);
    expect(changed.json().jobCost).toEqual({ jobType: 'story', creditsPerUnit: 7, unit: 'story', updatedAt: subject.clock.now().toISOString() });
    const entry = (await auditEntries()).find((candidate) => candidate.event === 'pricing.updated');
    expect(entry).toMatchObject({ subjectType: 'job_price', subjectId: 'story', actorType: 'admin' });
    expect(entry?.metadata).toMatchObject({ before: { creditsPerUnit: 5 }, after: { creditsPerUnit: 7 } });

    const noUnit = await inject({ method: 'PUT', url: '/api/admin/pricing/video', headers: subject.admin, payload: { creditsPerUnit: 3 } });
    expect(noUnit.statusCode).toBe(400);
    expect(noUnit.json().error.details[0].field).toBe('unit');
    const created = await inject({
      method: 'PUT',
      url: '/api/admin/pricing/video',
      headers: subject.admin,
      payload: { creditsPerUnit: 3, unit: 'minute' },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect((await pricing()).jobCosts.map((cost: { jobType: string; creditsPerUnit: number }) => `${cost.jobType}=${cost.creditsPerUnit}`)).toEqual([
      'book=2',
      'story=7',
      'video=3',
    ]);
    expect((await auditEntries()).some((candidate) => candidate.event === 'pricing.created' && candidate.subjectId === 'video')).toBe(true);
  });
});
