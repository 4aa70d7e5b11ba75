import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Alerter, AuthFailureDetector, type AlerterOptions } from '../../src/modules/audit/alerts.js';
import { ManualClock } from '../../src/platform/clock.js';
import { createLogger } from '../../src/platform/observability/logger.js';
import { LogCapture } from '../helpers/app.js';

interface Received {
  readonly method: string | undefined;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

/** A local alert webhook answering `status` (or never answering when status is 'hang'). */
async function webhookServer(status: number | 'hang' = 204): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    request.on('end', () => {
      received.push({ method: request.method, contentType: request.headers['content-type'], body: JSON.parse(text) });
      if (status !== 'hang') response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/alerts?token=secret-in-url`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function alerterWith(options: Partial<AlerterOptions> = {}) {
  const logs = new LogCapture();
  const clock = new ManualClock('2026-05-01T08:00:00.000Z');
  const alerter = new Alerter({ logger: createLogger({ log: { level: 'info', debug: false }, env: 'test' }, logs), clock, ...options });
  const lines = () => logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { alerter, logs, clock, lines };
}

describe('Alerter (AUD-3)', () => {
  it('logs at the critical (fatal) level with alert: true, redacting the IP', async () => {
    const { alerter, lines, logs } = alerterWith();
    alerter.alert('owner_charge_attempt', 'a charge was attempted on an owner account', { accountId: 'acct_owner', ip: '198.51.100.7' });
    await alerter.flush();
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatchObject({
      level: 60,
      alert: true,
      severity: 'critical',
      alertKind: 'owner_charge_attempt',
      accountId: 'acct_owner',
      ip: '[REDACTED]',
      msg: 'ALERT owner_charge_attempt: a charge was attempted on an owner account',
    });
    expect(logs.text).not.toContain('198.51.100.7');
  });

  it('POSTs the alert as JSON to the webhook', async () => {
    const hook = await webhookServer(204);
    cleanups.push(hook.close);
    const { alerter, lines } = alerterWith({ webhookUrl: hook.url });
    alerter.alert('webhook_signature_failed', 'a Stripe webhook had a bad signature', { ip: '198.51.100.7', eventType: 'unknown' });
    await alerter.flush();
    expect(hook.received).toEqual([
      {
        method: 'POST',
        contentType: 'application/json',
        body: {
          alert: 'webhook_signature_failed',
          severity: 'critical',
          message: 'a Stripe webhook had a bad signature',
          at: '2026-05-01T08:00:00.000Z',
          service: 'bulwark',
          details: { ip: '198.51.100.7', eventType: 'unknown' },
        },
      },
    ]);
    expect(lines().filter((line) => line.level === 50)).toEqual([]);
  });

  it('never throws into the caller when the webhook fails, and logs the failure without the URL', async () => {
    const refusing = await webhookServer(500);
    cleanups.push(refusing.close);
    const hanging = await webhookServer('hang');
    cleanups.push(hanging.close);
    const closed = await webhookServer(204);
    await closed.close(); // nothing listens on its port any more

    for (const url of [refusing.url, hanging.url, closed.url, 'http://[::1:bad-url']) {
      const { alerter, lines, logs } = alerterWith({ webhookUrl: url, webhookTimeoutMs: 200 });
      expect(() => alerter.alert('reconciliation_discrepancy', 'local and Stripe state differ', { accountId: 'acct_1' })).not.toThrow();
      await expect(alerter.flush()).resolves.toBeUndefined();
      const failures = lines().filter((line) => line.level === 50);
      expect(failures, url).toHaveLength(1);
      expect(failures[0]).toMatchObject({ alertKind: 'reconciliation_discrepancy' });
      expect(logs.text).not.toContain('secret-in-url');
      expect(lines()[0]).toMatchObject({ level: 60, alert: true });
    }
    expect(refusing.received).toHaveLength(1);
  });
});

describe('AuthFailureDetector: more than 10 failed authentications per hour (AUD-3)', () => {
  function detectorWith(options: { maxTrackedKeys?: number } = {}) {
    const { alerter, lines, clock } = alerterWith();
    const detector = new AuthFailureDetector({ alerter, clock, ...options });
    const alerts = () => lines().filter((line) => line.alert === true);
    return { detector, clock, alerts };
  }

  it('alerts once when one source IP passes 10 failures within the hour', () => {
    const { detector, clock, alerts } = detectorWith();
    for (let attempt = 1; attempt <= 10; attempt += 1) {
      detector.recordAuthFailure({ ip: '198.51.100.7' });
      clock.advance(60_000);
    }
    expect(alerts()).toEqual([]);
    detector.recordAuthFailure({ ip: '198.51.100.7' });
    expect(alerts()).toHaveLength(1);
    expect(alerts()[0]).toMatchObject({ level: 60, alertKind: 'auth_failures', scope: 'ip', failures: 11, windowMinutes: 60 });
    for (let attempt = 0; attempt < 20; attempt += 1) detector.recordAuthFailure({ ip: '198.51.100.7' });
    expect(alerts()).toHaveLength(1);
    // Another source has its own count.
    detector.recordAuthFailure({ ip: '198.51.100.8' });
    expect(alerts()).toHaveLength(1);
  });

  it('alerts for one account attacked from many sources', () => {
    const { detector, alerts } = detectorWith();
    for (let attempt = 1; attempt <= 11; attempt += 1) detector.recordAuthFailure({ ip: `203.0.113.${attempt}`, accountId: 'acct_target' });
    expect(alerts()).toHaveLength(1);
    expect(alerts()[0]).toMatchObject({ scope: 'account', accountId: 'acct_target', failures: 11 });
  });

  it('counts over a sliding hour: failures older than an hour do not count', () => {
    const { detector, clock, alerts } = detectorWith();
    for (let attempt = 0; attempt < 6; attempt += 1) detector.recordAuthFailure({ accountId: 'acct_a' });
    clock.advance(60 * 60_000 + 1);
    for (let attempt = 0; attempt < 5; attempt += 1) detector.recordAuthFailure({ accountId: 'acct_a' });
    expect(alerts()).toEqual([]);

    for (let attempt = 0; attempt < 6; attempt += 1) detector.recordAuthFailure({ accountId: 'acct_b' });
    clock.advance(59 * 60_000);
    for (let attempt = 0; attempt < 5; attempt += 1) detector.recordAuthFailure({ accountId: 'acct_b' });
    expect(alerts()).toHaveLength(1);
    expect(alerts()[0]).toMatchObject({ accountId: 'acct_b' });
  });

  it('alerts again once the count has dropped back and crosses the threshold anew', () => {
    const { detector, clock, alerts } = detectorWith();
    for (let attempt = 0; attempt < 11; attempt += 1) detector.recordAuthFailure({ ip: '198.51.100.7' });
    expect(alerts()).toHaveLength(1);
    clock.advance(61 * 60_000);
    for (let attempt = 0; attempt < 10; attempt += 1) detector.recordAuthFailure({ ip: '198.51.100.7' });
    expect(alerts()).toHaveLength(1);
    detector.recordAuthFailure({ ip: '198.51.100.7' });
    expect(alerts()).toHaveLength(2);
  });

  it('bounds its memory: the least recently failing key is forgotten first', () => {
    const forgetting = detectorWith({ maxTrackedKeys: 3 });
    for (let attempt = 0; attempt < 10; attempt += 1) forgetting.detector.recordAuthFailure({ ip: '198.51.100.1' });
    for (const ip of ['198.51.100.2', '198.51.100.3', '198.51.100.4']) forgetting.detector.recordAuthFailure({ ip });
    expect(forgetting.detector.size).toBe(3);
    forgetting.detector.recordAuthFailure({ ip: '198.51.100.1' }); // .1 was forgotten: this is its first failure again
    expect(forgetting.alerts()).toEqual([]);

    const keeping = detectorWith({ maxTrackedKeys: 3 });
    for (let attempt = 0; attempt < 5; attempt += 1) keeping.detector.recordAuthFailure({ ip: '198.51.100.1' });
    keeping.detector.recordAuthFailure({ ip: '198.51.100.2' });
    for (let attempt = 0; attempt < 5; attempt += 1) keeping.detector.recordAuthFailure({ ip: '198.51.100.1' });
    for (const ip of ['198.51.100.3', '198.51.100.4']) keeping.detector.recordAuthFailure({ ip }); // forgets .2
    keeping.detector.recordAuthFailure({ ip: '198.51.100.1' }); // the 11th
    expect(keeping.alerts()).toHaveLength(1);
    expect(keeping.detector.size).toBe(3);
  });
});
