import { statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMAIL_TEMPLATES } from '../../src/modules/notifications/notifier.js';
import { formatAmount, renderEmail } from '../../src/modules/notifications/templates.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { parseEml, readOutbox } from '../helpers/outbox.js';
import { adminHeaders, createEndpoint, deliveriesOf, emitCommitted, freePort, NOTIFY_LIMITS, TinySmtpServer } from './helpers.js';

const PASSWORD = 'a sturdy passphrase 42';

async function signUp(testApp: TestApp, email: string): Promise<{ accountId: string; userId: string }> {
  const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: PASSWORD, name: 'Mail Person' } });
  if (response.statusCode !== 201) throw new Error(`signup answered ${response.statusCode}: ${response.body}`);
  const body = response.json() as { user: { id: string }; account: { id: string } };
  return { accountId: body.account.id, userId: body.user.id };
}

/** The reset is queued after the 202 (the route does not wait): its notification's id once it is there. */
async function resetNotificationOf(testApp: TestApp, userId: string): Promise<string> {
  let id: string | undefined;
  await expect
    .poll(async () => {
      const { rows } = await asSystem(testApp.deps.database, (tx) =>
        tx.query<{ notification_id: string }>(`SELECT notification_id FROM notification_deliveries WHERE user_id = $1 AND template = 'password_reset'`, [userId]),
      );
      id = rows[0]?.notification_id;
      return id;
    })
    .toBeDefined();
  return id!;
}

describe('emails (MAIL-1)', () => {
  describe('the development outbox', () => {
    let testApp: TestApp;
    const clock = new ManualClock('2026-07-02T09:00:00Z');

    beforeAll(async () => {
      testApp = await createTestApp({ clock, env: { RATE_LIMITS: NOTIFY_LIMITS, PUBLIC_URL: 'https://billing.example.com' } });
    });
    afterAll(async () => {
      await testApp.close();
    });

    it('writes each email as an RFC 822 .eml file (0600) with From, To, Subject and the plain-text body', async () => {
      const { userId } = await signUp(testApp, 'eml@example.com');
      // An endpoint for every type: it must still hear nothing of a password reset.
      const everything = await createEndpoint(testApp, { url: 'http://127.0.0.1:9/everything' });
      const reset = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'eml@example.com' } });
      expect(reset.statusCode).toBe(202);
      const notificationId = await resetNotificationOf(testApp, userId);
      expect(readOutbox(testApp.config.mail.outboxDir)).toEqual([]);
      expect(await testApp.deps.notifications.deliverDue()).toMatchObject({ delivered: 1 });

      const [mail] = readOutbox(testApp.config.mail.outboxDir);
      expect(mail?.file).toMatch(/^\d+-password_reset-[0-9a-f-]{36}\.eml$/);
      expect(statSync(path.join(testApp.config.mail.outboxDir, mail!.file)).mode & 0o777).toBe(0o600);
      expect(mail?.raw).toMatch(/^From: Bulwark <no-reply@localhost>$/m);
      expect(mail?.raw).toMatch(/^To: eml@example\.com$/m);
      expect(mail?.raw).toMatch(/^Subject: Reset your Bulwark password$/m);
      expect(mail?.raw).toMatch(/^Message-ID: <.+>$/m);
      expect(mail?.raw).toMatch(/^Content-Type: text\/plain; charset=utf-8$/m);
      expect(mail?.text).toMatch(/^Someone asked to reset the password/);
      expect(mail?.text).toMatch(/https:\/\/billing\.example\.com\/reset\?token=[A-Za-z0-9_-]{20,}\n/);

      // Sent: the link is dropped from the stored notification, and the log names no address or link.
      const { rows } = await asSystem(testApp.deps.database, (tx) => tx.query<{ data: Record<string, unknown> }>('SELECT data FROM notifications WHERE id = $1', [notificationId]));
      expect(rows[0]?.data).toEqual({ resetId: expect.stringMatching(/^pwr_/) });
      expect(testApp.logs.text).toContain('notification delivered');
      expect(testApp.logs.text).not.toContain('eml@example.com');
      expect(testApp.logs.text).not.toContain('token=');
      // Nothing goes to webhook endpoints for a password reset.
      expect((await deliveriesOf(testApp, notificationId)).map((row) => row.channel)).toEqual(['email']);
      await testApp.app.inject({ method: 'DELETE', url: `/api/admin/webhook-endpoints/${everything.id}`, headers: adminHeaders(testApp) });
    });

    it('answers a reset for an unknown email exactly like a known one, and queues nothing', async () => {
      await signUp(testApp, 'known@example.com');
      const known = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'known@example.com' } });
      const unknown = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'unknown@example.com' } });
      expect(known.statusCode).toBe(202);
      expect(unknown.statusCode).toBe(202);
      expect(unknown.body).toBe(known.body);
      await testApp.deps.notifications.deliverDue();
      await expect
        .poll(async () => {
          await testApp.deps.notifications.deliverDue();
          return readOutbox(testApp.config.mail.outboxDir).map((message) => message.to);
        })
        .toContain('known@example.com');
      expect(readOutbox(testApp.config.mail.outboxDir).map((message) => message.to)).not.toContain('unknown@example.com');
    });

    it('an email to a user who is no longer active is given up (NO_RECIPIENT) and never sent', async () => {
      const { accountId, userId } = await signUp(testApp, 'gone@example.com');
      const notificationId = await emitCommitted(testApp, {
        type: 'subscription.canceled',
        accountId,
        data: { subscriptionId: 'sub_1' },
        email: { template: 'subscription_canceled', userId },
      });
      await asSystem(testApp.deps.database, (tx) => tx.query(`UPDATE users SET status = 'deleted', email = NULL WHERE id = $1`, [userId]));
      await testApp.deps.notifications.deliverDue();
      expect((await deliveriesOf(testApp, notificationId))[0]).toMatchObject({ status: 'dead', last_error: 'NO_RECIPIENT' });
      expect(readOutbox(testApp.config.mail.outboxDir).some((message) => message.to === 'gone@example.com')).toBe(false);
    });

    it("emails the account's owners by default", async () => {
      const { accountId } = await signUp(testApp, 'owner@example.com');
      const notificationId = await emitCommitted(testApp, {
        type: 'payment.failed',
        accountId,
        data: { amountDue: 1999, currency: 'eur', nextPaymentAttempt: '2026-07-05T09:00:00Z' },
        email: { template: 'payment_failed' },
      });
      await testApp.deps.notifications.deliverDue();
      expect((await deliveriesOf(testApp, notificationId))[0]).toMatchObject({ status: 'delivered', recipient: null });
      const mail = readOutbox(testApp.config.mail.outboxDir).find((message) => message.kind === 'payment_failed');
      expect(mail).toMatchObject({ to: 'owner@example.com', subject: 'A payment for your subscription failed' });
      expect(mail?.text).toContain('We could not collect a payment of 19.99 EUR for your subscription.');
      expect(mail?.text).toContain('We will try again on 2026-07-05.');
    });
  });

  describe('SMTP that fails', () => {
    let testApp: TestApp;
    let port: number;
    const smtp = new TinySmtpServer();
    const clock = new ManualClock('2026-07-03T09:00:00Z');

    beforeAll(async () => {
      port = await freePort();
      testApp = await createTestApp({ clock, env: { RATE_LIMITS: NOTIFY_LIMITS, SMTP_URL: `smtp://127.0.0.1:${port}` } });
    });
    afterAll(async () => {
      await testApp.close();
      await smtp.close();
    });

    it('does not fail the password reset; the email is retried and sent once the server is back', async () => {
      const { userId } = await signUp(testApp, 'smtp@example.com');
      const reset = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'smtp@example.com' } });
      expect(reset.statusCode).toBe(202);
      const notificationId = await resetNotificationOf(testApp, userId);

      // Nothing listens on the port: the attempt fails and is scheduled again.
      expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 0, retrying: 1, dead: 0 });
      const [failed] = await deliveriesOf(testApp, notificationId);
      expect(failed).toMatchObject({ status: 'pending', attempts: 1, last_error: 'ESOCKET' }); // nodemailer's code for a refused connection
      expect(testApp.logs.text).not.toContain('smtp@example.com');

      // The reset itself worked: the token exists and the request was answered.
      const resets = await asSystem(testApp.deps.database, (tx) => tx.query('SELECT 1 FROM password_reset_tokens WHERE user_id = $1', [userId]));
      expect(resets.rowCount).toBe(1);

      await smtp.listen(port);
      clock.set(failed!.next_attempt_at);
      expect(await testApp.deps.notifications.deliverDue()).toEqual({ delivered: 1, retrying: 0, dead: 0 });
      expect(smtp.messages).toHaveLength(1);
      const message = parseEml('smtp.eml', smtp.messages[0]!.data);
      expect(smtp.messages[0]?.to).toEqual(['smtp@example.com']);
      expect(message).toMatchObject({ to: 'smtp@example.com', subject: 'Reset your Bulwark password' });
      expect(message.text).toMatch(/\/reset\?token=[A-Za-z0-9_-]{20,}/);
      expect((await deliveriesOf(testApp, notificationId))[0]).toMatchObject({ status: 'delivered', attempts: 2, last_error: null });
    });
  });

  describe('templates', () => {
    it('render a subject and plain text for every template, leaving out what the data does not give', () => {
      for (const template of EMAIL_TEMPLATES) {
        const empty = renderEmail(template, {});
        expect(empty.subject.length, template).toBeGreaterThan(5);
        expect(empty.text, template).not.toMatch(/undefined|null|NaN/);
      }
      expect(renderEmail('payment_action_required', { amountDue: 500, currency: 'usd', hostedInvoiceUrl: 'https://pay.example.com/x' }).text).toContain(
        'Your bank asks you to confirm a payment of 5.00 USD.\n\nConfirm it here:\n\nhttps://pay.example.com/x',
      );
      expect(renderEmail('subscription_canceled', { endsAt: '2026-08-01T00:00:00Z' }).text).toContain('Your plan stays active until 2026-08-01');
      expect(renderEmail('account_deleted', { deletedAt: '2026-07-01T10:00:00Z' }).text).toMatch(/^Your account was deleted on 2026-07-01, as you asked\./);
      expect(renderEmail('account_deleted', {}).text).not.toMatch(/https?:|token/i);
      expect(formatAmount(1999, 'eur')).toBe('19.99 EUR');
      expect(formatAmount(5, 'usd')).toBe('0.05 USD');
      expect(formatAmount(500, 'jpy')).toBe('500 JPY');
      expect(formatAmount(1.5, 'usd')).toBeUndefined();
    });
  });
});
