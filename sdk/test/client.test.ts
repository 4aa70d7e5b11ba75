import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../../src/errors/error-codes.js';
import { BulwarkClient, BulwarkError, BulwarkNetworkError, OPERATIONS, SERVER_ERROR_CODES, verifyLicense } from '../src/index.js';
import { driftProblems, objectSchema, type OpenApiDocument } from './drift.js';
import { accountWithKey, FlakyProxy, startService, type RunningService } from './helpers.js';

const FAST_RETRIES = { retries: 3, baseDelayMs: 1, maxDelayMs: 5 };

/** One real service, started and listening, for both suites of this file. */
let service: RunningService;
beforeAll(async () => {
  service = await startService();
});
afterAll(async () => service.close());

/** The client (SDK-1) against the real service over real HTTP. */
describe('@bulwark/client against a started server', () => {
  let proxy: FlakyProxy;
  let accountId: string;
  let client: BulwarkClient;
  let direct: BulwarkClient;

  beforeAll(async () => {
    proxy = new FlakyProxy(service.url);
    await proxy.start();
    const account = await accountWithKey(service, { credits: 100 });
    accountId = account.accountId;
    client = new BulwarkClient({ baseUrl: proxy.url, apiKey: account.apiKey, retry: FAST_RETRIES });
    direct = new BulwarkClient({ baseUrl: service.url, apiKey: account.apiKey, retry: { retries: 0 } });
  });
  afterAll(async () => proxy.close());

  it('checks and tracks: track records only what fits, check reads without recording', async () => {
    const before = await client.check('api_calls_per_day');
    expect(before).toMatchObject({ allowed: true, feature: 'api_calls_per_day', kind: 'metered', limit: 100, used: 0, remaining: 100 });
    expect(await client.track('api_calls_per_day', 5)).toMatchObject({ allowed: true, used: 5, remaining: 95 });
    expect(await client.check('api_calls_per_day')).toMatchObject({ used: 5 });
    expect(await client.track('api_calls_per_day', 96)).toMatchObject({ allowed: false, used: 5, remaining: 95 });
    expect(await client.check('sso')).toMatchObject({ allowed: false, kind: 'boolean' });
  });

  it('counts a tracked check whose answer was lost once: the retry carries the same idempotency key', async () => {
    const used = (await direct.check('api_calls_per_day')).used;
    const seen = proxy.count('POST /api/entitlements/check');
    proxy.next('lose-answer');
    const answer = await client.track('api_calls_per_day', 3);
    expect(proxy.count('POST /api/entitlements/check')).toBe(seen + 2);
    expect(answer).toMatchObject({ allowed: true, used: used + 3 });
    expect((await direct.check('api_calls_per_day')).used).toBe(used + 3);
  });

  it('reserves and confirms, reserves and releases; a lost reserve answer holds once, a 503 on confirm is retried', async () => {
    const reservations = proxy.count('POST /api/credits/reservations');
    proxy.next('lose-answer');
    const held = await client.reserveCredits({ jobId: 'render-1', jobType: 'render', amount: 7 });
    expect(held).toMatchObject({ jobId: 'render-1', amount: 7, status: 'held' });
    expect(proxy.count('POST /api/credits/reservations')).toBe(reservations + 2);
    expect(await direct.credits()).toMatchObject({ balance: 93, held: 7 });

    proxy.next('unavailable', 'unavailable');
    expect(await client.confirmReservation(held.id)).toMatchObject({ id: held.id, status: 'confirmed' });
    expect(proxy.count(`POST /api/credits/reservations/${held.id}/confirm`)).toBe(3);
    expect(await client.confirmReservation(held.id)).toMatchObject({ status: 'confirmed' });

    const second = await client.reserveCredits({ jobId: 'render-2', jobType: 'render', amount: 10 });
    expect(await client.releaseReservation(second.id)).toMatchObject({ status: 'released' });
    expect(await client.credits()).toMatchObject({ balance: 93, held: 0 });
    const ledger = await client.creditLedger({ limit: 100 });
    expect(ledger.items.map((entry) => entry.kind)).toEqual(expect.arrayContaining(['grant', 'hold', 'spend', 'release']));
  });

  it('never retries a 4xx, and carries the code, the request id and the field at fault', async () => {
    const seen = proxy.count('POST /api/credits/reservations');
    const short = await client.reserveCredits({ jobId: 'huge', jobType: 'render', amount: 1_000_000 }).catch((error: unknown) => error);
    expect(short).toBeInstanceOf(BulwarkError);
    expect(short).toMatchObject({ status: 402, code: 'INSUFFICIENT_CREDITS', message: 'Insufficient credits', requestId: expect.stringMatching(/^req_/) });
    const invalid = await client.reserveCredits({ jobId: 'zero', jobType: 'render', amount: 0 }).catch((error: unknown) => error);
    expect(invalid).toMatchObject({ status: 400, code: 'VALIDATION_FAILED', details: [expect.objectContaining({ field: 'amount' })] });
    expect(proxy.count('POST /api/credits/reservations')).toBe(seen + 2);

    const stranger = new BulwarkClient({ baseUrl: proxy.url, apiKey: `cust_${accountId}_${'x'.repeat(43)}`, retry: FAST_RETRIES });
    const before = proxy.count('GET /api/credits');
    await expect(stranger.credits()).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect(proxy.count('GET /api/credits')).toBe(before + 1);
  });

  it('gives up after its retries: the last 503 as a typed error, or a network error when nothing answers', async () => {
    const seen = proxy.count('GET /api/credits');
    proxy.next('unavailable', 'unavailable', 'unavailable', 'unavailable');
    await expect(client.credits()).rejects.toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE', requestId: 'req_proxy_503', retryAfterSeconds: 1 });
    expect(proxy.count('GET /api/credits')).toBe(seen + 4);

    proxy.next('refuse', 'refuse', 'refuse', 'refuse');
    const failure = await client.credits().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BulwarkNetworkError);
    expect(failure).toMatchObject({ status: 0, code: 'NETWORK_ERROR' });
    expect(proxy.count('GET /api/credits')).toBe(seen + 8);

    // A port nobody listens on.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(new BulwarkClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'cust_x_y', retry: FAST_RETRIES }).credits()).rejects.toBeInstanceOf(BulwarkNetworkError);
  });

  it('never retries a lease acquisition, which the service could not recognise as repeated', async () => {
    const seen = proxy.count('POST /api/leases');
    proxy.next('lose-answer');
    await expect(client.acquireLease('concurrent_builds', { ttlSeconds: 60 })).rejects.toBeInstanceOf(BulwarkNetworkError);
    expect(proxy.count('POST /api/leases')).toBe(seen + 1);
    // The lost acquisition did take the one FREE slot: a retry would now have failed the caller.
    expect(await client.acquireLease('concurrent_builds')).toMatchObject({ allowed: false, limit: 1, used: 1 });
  });

  it('acquires and releases a lease, releasing twice is fine', async () => {
    const account = await accountWithKey(service, { plan: 'STARTER' });
    const leases = new BulwarkClient({ baseUrl: proxy.url, apiKey: account.apiKey, retry: FAST_RETRIES });
    const acquired = await leases.acquireLease('concurrent_builds', { ttlSeconds: 60 });
    if (!acquired.allowed) throw new Error('expected a lease');
    expect(acquired.lease.id).toMatch(/^lse_/);
    await leases.releaseLease(acquired.lease.id);
    proxy.next('lose-answer');
    await leases.releaseLease(acquired.lease.id);
  });

  it('reports usage with generated idempotency keys: a lost answer is counted once, and reads it back', async () => {
    proxy.next('lose-answer');
    const result = await client.reportUsage([
      { jobType: 'render', quantity: 2, description: 'first' },
      { jobType: 'render', description: 'second' },
    ]);
    // The retry found both events already stored.
    expect(result).toEqual({ accepted: 0, duplicates: 2 });
    const page = await client.listUsage({ limit: 10 });
    expect(page.items.map((item) => item.description).sort()).toEqual(['first', 'second']);
  });

  it('passes the gate, holding credits and tracking once even when the answer was lost', async () => {
    const account = await accountWithKey(service, { credits: 20 });
    const gated = new BulwarkClient({ baseUrl: proxy.url, apiKey: account.apiKey, retry: FAST_RETRIES });
    proxy.next('lose-answer');
    const answer = await gated.gate({ feature: 'api_calls_per_day', track: 1, credits: { jobId: 'gate-1', jobType: 'render', amount: 5 } });
    expect(answer).toMatchObject({ allowed: true, entitlement: { used: 1 }, reservation: { amount: 5, status: 'held' } });
    expect(await gated.credits()).toMatchObject({ balance: 15, held: 5 });
    expect(await gated.check('api_calls_per_day')).toMatchObject({ used: 1 });
    expect(await gated.gate({ feature: 'sso' })).toMatchObject({ allowed: false, reason: 'NOT_ENTITLED' });
  });

  it('fetches a licence and verifies it offline with the published key', async () => {
    const publicKey = await client.licensePublicKey();
    const { license, token } = await client.license(accountId);
    expect(license).toMatchObject({ accountId, plan: 'FREE' });
    expect(await verifyLicense(token, publicKey, { accountId })).toEqual({ valid: true, license, keyId: publicKey.keyId });
    await expect(client.license('acct_someone_else')).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });
});

/**
 * The client cannot drift from the server: its operation table is checked against the
 * OpenAPI document the real app generates from its route schemas.
 */
describe('@bulwark/client against GET /docs/openapi.json', () => {
  let document: OpenApiDocument;

  beforeAll(async () => {
    const response = await fetch(`${service.url}/docs/openapi.json`);
    expect(response.status).toBe(200);
    document = (await response.json()) as OpenApiDocument;
  });

  it('uses only routes, fields and query parameters the server declares, and sends every field it requires', () => {
    expect(driftProblems(document, OPERATIONS)).toEqual([]);
  });

  it('would notice a renamed route, a renamed or newly required field, and a renamed response field', () => {
    const renamedRoute = structuredClone(document);
    const check = renamedRoute.paths['/api/entitlements/check'];
    if (!check) throw new Error('the check route is missing from the document');
    renamedRoute.paths['/api/entitlements/verify'] = check;
    delete renamedRoute.paths['/api/entitlements/check'];
    expect(driftProblems(renamedRoute, OPERATIONS)).toContain('check (POST /api/entitlements/check): no such route');

    const renamedField = structuredClone(document);
    const reserve = objectSchema(renamedField.paths['/api/credits/reservations']?.post?.requestBody?.content?.['application/json']?.schema);
    if (!reserve?.properties?.jobType) throw new Error('the reserve body has no jobType');
    reserve.properties.kind = reserve.properties.jobType;
    delete reserve.properties.jobType;
    reserve.required = [...(reserve.required ?? []).filter((field) => field !== 'jobType'), 'kind'];
    expect(driftProblems(renamedField, OPERATIONS)).toEqual(
      expect.arrayContaining([
        'reserveCredits (POST /api/credits/reservations): the route does not accept jobType',
        'reserveCredits (POST /api/credits/reservations): the route requires kind, which the client does not always send',
      ]),
    );

    const renamedAnswer = structuredClone(document);
    const balance = objectSchema(renamedAnswer.paths['/api/credits']?.get?.responses?.['200']?.content?.['application/json']?.schema);
    if (!balance?.properties?.held) throw new Error('the balance answer has no held');
    delete balance.properties.held;
    expect(driftProblems(renamedAnswer, OPERATIONS)).toContain('credits (GET /api/credits): a 200 answer has no held');
  });

  it('knows every error code the server answers with', () => {
    expect([...SERVER_ERROR_CODES].sort()).toEqual(Object.keys(ERROR_STATUS).sort());
  });
});
