import type { MailMessage } from '../../platform/mail/mailer.js';

/**
 * The email sent once an account's deletion is complete (GDPR-2). Plain text, no link and
 * no secret: there is nothing left to click, and a forwarded copy gives nothing away.
 */
export function accountDeletedEmail(to: string, completedAt: Date): MailMessage {
  return {
    kind: 'account_deleted',
    to,
    subject: 'Your Bulwark account has been deleted',
    text: [
      `Your account was deleted on ${completedAt.toISOString().slice(0, 10)}, as you asked.`,
      '',
      'Every session and API key of the account has been revoked, your subscriptions have been',
      'canceled and your customer record at our payment provider deleted. Your name, email',
      'address and the IP addresses we had recorded have been erased.',
      '',
      'We keep, without your name or email address, the financial records the law requires',
      '(credit ledger, usage charged, invoices and payments).',
      '',
      'This is the last email we send to this address. If you did not ask for this, contact the',
      'support of the service you used.',
    ].join('\n'),
  };
}
