import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { registerErrorHandling } from '../../src/errors/error-handler.js';
import { adminPrincipalGuard, adminTokenGuard, type AdminGuard, type AdminTokenGuardOptions } from '../../src/modules/audit/admin-guard.js';
import { Alerter, AuthFailureDetector } from '../../src/modules/audit/alerts.js';
import { ManualClock } from '../../src/platform/clock.js';
import { noErrorReporter } from '../../src/platform/observability/error-reporter.js';
import { createLogger } from '../../src/platform/observability/logger.js';
import { LogCapture } from '../helpers/app.js';

const token = randomBytes(32).toString('hex');
const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

/** A bare app with one route behind the guard, answering the principal it saw. */
async function guarded(guard: AdminGuard): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  registerErrorHandling(app, noErrorReporter);
  app.get('/guarded', { preHandler: guard }, async (request) => ({ principal: request.principal ?? null }));
  await app.ready();
  return app;
}

const call = (app: FastifyInstance, authorization?: string) =>
  app.inject({ method: 'GET', url: '/guarded', headers: authorization === undefined ? {} : { authorization } });

describe('adminTokenGuard (KEY-3)', () => {
  it('admits exactly the configured token as the admin principal', async () => {
    const app = await guarded(adminTokenGuard(token));
    const admitted = await call(app, `Bearer ${token}`);
    expect(admitted.statusCode).toBe(200);
    expect(admitted.json()).toEqual({ principal: { kind: 'admin' } });
    for (const header of [undefined, '', `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Basic ${token}`, token, `Bearer  `]) {
      const refused = await call(app, header);
      expect(refused.statusCode, String(header)).toBe(401);
      expect(refused.headers['www-authenticate']).toBe('Bearer realm="admin"');
      expect(refused.json().error.code).toBe('UNAUTHENTICATED');
    }
  });

  it('refuses everyone when no token is configured', async () => {
    for (const configured of [undefined, '']) {
      const app = await guarded(adminTokenGuard(configured));
      expect((await call(app, 'Bearer ')).statusCode).toBe(401);
      expect((await call(app)).statusCode).toBe(401);
    }
  });

  it('reports each refusal, so failed admin authentications are counted and alerted (KEY-5, AUD-3)', async () => {
    const logs = new LogCapture();
    const clock = new ManualClock();
    const alerter = new Alerter({ logger: createLogger({ log: { level: 'info', debug: false }, env: 'test' }, logs), clock });
    const detector = new AuthFailureDetector({ alerter, clock });
    const refused: string[] = [];
    const options: AdminTokenGuardOptions = {
      onFailure: (request) => {
        refused.push(request.ip);
        detector.recordAuthFailure({ ip: request.ip });
      },
    };
    const app = await guarded(adminTokenGuard(token, options));
    expect((await call(app, `Bearer ${token}`)).statusCode).toBe(200);
    for (let attempt = 1; attempt <= 11; attempt += 1) expect((await call(app, `Bearer wrong${attempt}`)).statusCode).toBe(401);
    expect(refused).toEqual(Array.from({ length: 11 }, () => '127.0.0.1'));
    const alerts = logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ level: 60, alert: true, alertKind: 'auth_failures', scope: 'ip', failures: 11 });
  });
});

describe('adminPrincipalGuard', () => {
  it('admits only a request the authentication hook resolved to the admin principal', async () => {
    const app = Fastify();
    apps.push(app);
    registerErrorHandling(app, noErrorReporter);
    app.addHook('onRequest', async (request) => {
      const kind = request.headers['x-test-principal'];
      if (kind === 'admin') request.principal = { kind: 'admin' };
      if (kind === 'apiKey') request.principal = { kind: 'apiKey', accountId: 'acct_a', keyId: 'key_a' };
    });
    app.get('/guarded', { preHandler: adminPrincipalGuard }, async () => ({ ok: true }));
    await app.ready();
    const as = (kind?: string) => app.inject({ method: 'GET', url: '/guarded', headers: kind ? { 'x-test-principal': kind } : {} });
    expect((await as('admin')).statusCode).toBe(200);
    expect((await as('apiKey')).statusCode).toBe(401);
    expect((await as()).statusCode).toBe(401);
  });
});
