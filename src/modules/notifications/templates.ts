import type { EmailTemplate, NotificationData } from './notifier.js';

/**
 * The plain-text emails (MAIL-1), rendered at delivery from the notification's data. Each
 * template reads only ids, amounts (integers of the smallest unit), ISO dates and links;
 * a field a caller did not give is left out of the text rather than shown as "undefined".
 */
export interface RenderedEmail {
  readonly subject: string;
  readonly text: string;
}

const FOOTER = ['', '--', 'This email was sent by Bulwark about your account.'];

function text(data: NotificationData, key: string): string | undefined {
  const value = data[key];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function day(data: NotificationData, key: string): string | undefined {
  const value = text(data, key);
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString().slice(0, 10);
}

/** 1999 + "eur" -> "19.99 EUR"; zero-decimal currencies are not special-cased beyond a few common ones. */
export function formatAmount(amount: unknown, currency: unknown): string | undefined {
  if (typeof amount !== 'number' || !Number.isInteger(amount)) return undefined;
  const code = typeof currency === 'string' && /^[a-zA-Z]{3}$/.test(currency) ? currency.toUpperCase() : undefined;
  const zeroDecimal = code !== undefined && ['JPY', 'KRW', 'VND', 'CLP', 'ISK', 'UGX'].includes(code);
  const sign = amount < 0 ? '-' : '';
  const absolute = Math.abs(amount);
  const major = zeroDecimal ? String(absolute) : `${Math.floor(absolute / 100)}.${String(absolute % 100).padStart(2, '0')}`;
  return code ? `${sign}${major} ${code}` : `${sign}${major}`;
}

function lines(...parts: (string | undefined | false)[]): string {
  return [...parts.filter((part): part is string => typeof part === 'string'), ...FOOTER].join('\n');
}

export function renderEmail(template: EmailTemplate, data: NotificationData): RenderedEmail {
  switch (template) {
    case 'subscription_canceled': {
      const endsAt = day(data, 'endsAt') ?? day(data, 'canceledAt');
      return {
        subject: 'Your subscription has been canceled',
        text: lines(
          'Your subscription has been canceled.',
          endsAt !== undefined ? `Your plan stays active until ${endsAt}; after that the account moves to the free plan.` : 'The account has moved to the free plan.',
          '',
          'You can subscribe again at any time from the billing page of your account.',
        ),
      };
    }
    case 'payment_failed': {
      const amount = formatAmount(data.amountDue, data.currency);
      const retryAt = day(data, 'nextPaymentAttempt');
      return {
        subject: 'A payment for your subscription failed',
        text: lines(
          amount !== undefined ? `We could not collect a payment of ${amount} for your subscription.` : 'We could not collect a payment for your subscription.',
          retryAt !== undefined ? `We will try again on ${retryAt}.` : undefined,
          '',
          'Please check the payment method on the billing page of your account.',
          text(data, 'hostedInvoiceUrl') !== undefined ? `\nInvoice: ${text(data, 'hostedInvoiceUrl')}` : undefined,
        ),
      };
    }
    case 'payment_action_required': {
      const amount = formatAmount(data.amountDue, data.currency);
      const link = text(data, 'hostedInvoiceUrl');
      return {
        subject: 'Your payment needs confirmation',
        text: lines(
          amount !== undefined ? `Your bank asks you to confirm a payment of ${amount}.` : 'Your bank asks you to confirm a payment.',
          link !== undefined ? `\nConfirm it here:\n\n${link}` : '\nConfirm it from the billing page of your account.',
          '',
          'Until it is confirmed, the payment stays open.',
        ),
      };
    }
    case 'password_reset': {
      const link = text(data, 'resetLink');
      return {
        subject: 'Reset your Bulwark password',
        text: lines(
          'Someone asked to reset the password of your account. If it was you, open this link within 30 minutes:',
          '',
          link ?? '(the link is no longer available; ask for a new one)',
          '',
          'If it was not you, ignore this email; your password stays as it is.',
        ),
      };
    }
    case 'account_deleted': {
      const deletedAt = day(data, 'deletedAt');
      return {
        subject: 'Your Bulwark account has been deleted',
        text: [
          deletedAt !== undefined ? `Your account was deleted on ${deletedAt}, as you asked.` : 'Your account was deleted, as you asked.',
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
  }
}
