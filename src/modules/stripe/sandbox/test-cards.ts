import { invalidParam } from './sandbox-errors.js';

/**
 * Stripe's test card numbers and what each one does. The sandbox keeps only the
 * behaviour, brand and last four digits of a card, never the number (PAY-1).
 */
export type CardBehaviour =
  /** Every payment succeeds. */
  | 'succeeds'
  /** Every payment, and setting the card up, is declined. */
  | 'declined'
  | 'insufficient_funds'
  /** Needs 3D Secure for on-session payments; off-session payments once set up succeed. */
  | 'requires_action'
  /** Needs 3D Secure for every payment. */
  | 'always_requires_action'
  /** Attaches (and can be set up), but every charge is declined. */
  | 'attach_then_fail';

export interface TestCard {
  readonly behaviour: CardBehaviour;
  readonly brand: string;
  readonly last4: string;
  readonly funding: string;
}

const CARDS: Record<string, TestCard> = {
  '4242424242424242': { behaviour: 'succeeds', brand: 'visa', last4: '4242', funding: 'credit' },
  '4000056655665556': { behaviour: 'succeeds', brand: 'visa', last4: '5556', funding: 'debit' },
  '5555555555554444': { behaviour: 'succeeds', brand: 'mastercard', last4: '4444', funding: 'credit' },
  '4000000000000002': { behaviour: 'declined', brand: 'visa', last4: '0002', funding: 'credit' },
  '4000000000009995': { behaviour: 'insufficient_funds', brand: 'visa', last4: '9995', funding: 'credit' },
  '4000002500003155': { behaviour: 'requires_action', brand: 'visa', last4: '3155', funding: 'credit' },
  '4000002760003184': { behaviour: 'always_requires_action', brand: 'visa', last4: '3184', funding: 'credit' },
  '4000000000000341': { behaviour: 'attach_then_fail', brand: 'visa', last4: '0341', funding: 'credit' },
};

export const SUPPORTED_TEST_CARDS: readonly string[] = Object.keys(CARDS);

/** Resolves a typed card number (spaces and dashes allowed); anything else is refused. */
export function testCard(number: string, param = 'card'): TestCard {
  const digits = number.replace(/[\s-]/g, '');
  if (!/^\d{12,19}$/.test(digits)) throw invalidParam(param, 'Your card number is incomplete or invalid.', 'invalid_number');
  const card = CARDS[digits];
  if (!card) {
    throw invalidParam(param, `The sandbox accepts Stripe's test card numbers only (for example 4242 4242 4242 4242).`, 'invalid_number');
  }
  return card;
}

export interface CardAttempt {
  readonly outcome: 'succeeded' | 'declined' | 'requires_action';
  readonly declineCode?: string;
  readonly message?: string;
}

const DECLINED: CardAttempt = { outcome: 'declined', declineCode: 'generic_decline', message: 'Your card was declined.' };

/** What a charge on the card does, on session (the customer is paying now) or off session (renewals, retries). */
export function chargeAttempt(behaviour: CardBehaviour, onSession: boolean): CardAttempt {
  switch (behaviour) {
    case 'succeeds':
      return { outcome: 'succeeded' };
    case 'declined':
    case 'attach_then_fail':
      return DECLINED;
    case 'insufficient_funds':
      return { outcome: 'declined', declineCode: 'insufficient_funds', message: 'Your card has insufficient funds.' };
    case 'requires_action':
      return onSession ? { outcome: 'requires_action' } : { outcome: 'succeeded' };
    case 'always_requires_action':
      return { outcome: 'requires_action' };
  }
}

/** What saving the card for later (a trial without a payment now) does. */
export function setupAttempt(behaviour: CardBehaviour): CardAttempt {
  switch (behaviour) {
    case 'succeeds':
    case 'attach_then_fail':
      return { outcome: 'succeeded' };
    case 'declined':
      return DECLINED;
    case 'insufficient_funds':
      return { outcome: 'succeeded' };
    case 'requires_action':
    case 'always_requires_action':
      return { outcome: 'requires_action' };
  }
}
