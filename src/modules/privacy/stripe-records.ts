import { listAll } from '../stripe/stripe-lists.js';
import Stripe from 'stripe';
import type { StripeGateway } from '../stripe/gateway.js';

/**
 * What Stripe holds about a customer of ours, read through the gateway for the export
 * (GDPR-1), and the erasure at Stripe (GDPR-2): cancel the subscriptions, delete the
 * customer. Objects are reduced to the personal and billing facts a person can read;
 * secrets of the payment flow (client secrets, hosted links) are not exported.
 */

/** More than any real customer has; a guard against an endless pagination. */
const MAX_ITEMS_PER_LIST = 10_000;
const listAllPages = <T extends { id: string }>(page: (startingAfter: string | undefined) => Promise<Stripe.ApiList<T>>) => listAll(page, MAX_ITEMS_PER_LIST);
const PAGE_SIZE = 100;

/** Subscription statuses that can still bill. */
const ENDED_SUBSCRIPTION_STATUSES: ReadonlySet<string> = new Set(['canceled', 'incomplete_expired']);

type Timestamp = string | null;

function iso(seconds: number | null | undefined): Timestamp {
  return seconds === null || seconds === undefined ? null : new Date(seconds * 1000).toISOString();
}

function idOf(value: string | { id: string } | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : value.id;
}

function address(value: Stripe.Address | null | undefined) {
  return value ? { line1: value.line1, line2: value.line2, postalCode: value.postal_code, city: value.city, state: value.state, country: value.country } : null;
}

function customerView(customer: Stripe.Customer) {
  return {
    id: customer.id,
    email: customer.email,
    name: customer.name ?? null,
    phone: customer.phone ?? null,
    description: customer.description,
    address: address(customer.address),
    shipping: customer.shipping ? { name: customer.shipping.name, phone: customer.shipping.phone ?? null, address: address(customer.shipping.address) } : null,
    preferredLocales: customer.preferred_locales ?? [],
    metadata: customer.metadata,
    createdAt: iso(customer.created),
  };
}

function subscriptionView(subscription: Stripe.Subscription) {
  return {
    id: subscription.id,
    status: subscription.status,
    createdAt: iso(subscription.created),
    startedAt: iso(subscription.start_date),
    cancelAtPeriodEnd: subscription.cancel_at_period_end,
    cancelAt: iso(subscription.cancel_at),
    canceledAt: iso(subscription.canceled_at),
    endedAt: iso(subscription.ended_at),
    trialStart: iso(subscription.trial_start),
    trialEnd: iso(subscription.trial_end),
    currency: subscription.currency,
    items: subscription.items.data.map((item) => ({
      price: item.price.id,
      product: idOf(item.price.product),
      unitAmount: item.price.unit_amount,
      interval: item.price.recurring?.interval ?? null,
      quantity: item.quantity ?? null,
      currentPeriodStart: iso(item.current_period_start),
      currentPeriodEnd: iso(item.current_period_end),
    })),
    metadata: subscription.metadata,
  };
}

function invoiceView(invoice: Stripe.Invoice) {
  return {
    id: invoice.id ?? null,
    number: invoice.number,
    status: invoice.status,
    billingReason: invoice.billing_reason,
    currency: invoice.currency,
    total: invoice.total,
    amountDue: invoice.amount_due,
    amountPaid: invoice.amount_paid,
    amountRemaining: invoice.amount_remaining,
    createdAt: iso(invoice.created),
    periodStart: iso(invoice.period_start),
    periodEnd: iso(invoice.period_end),
    customerEmail: invoice.customer_email,
    customerName: invoice.customer_name,
    customerPhone: invoice.customer_phone,
    customerAddress: address(invoice.customer_address),
    lines: invoice.lines.data.map((line) => ({
      description: line.description,
      amount: line.amount,
      currency: line.currency,
      quantity: line.quantity,
      periodStart: iso(line.period.start),
      periodEnd: iso(line.period.end),
    })),
  };
}

function chargeView(charge: Stripe.Charge) {
  const card = charge.payment_method_details?.card;
  return {
    id: charge.id,
    status: charge.status,
    amount: charge.amount,
    amountRefunded: charge.amount_refunded,
    currency: charge.currency,
    paid: charge.paid,
    refunded: charge.refunded,
    description: charge.description,
    createdAt: iso(charge.created),
    paymentIntent: idOf(charge.payment_intent),
    receiptEmail: charge.receipt_email,
    billingDetails: {
      name: charge.billing_details.name,
      email: charge.billing_details.email,
      phone: charge.billing_details.phone,
      address: address(charge.billing_details.address),
    },
    // Stripe's own summary of the card; Bulwark never sees card numbers (PAY-1).
    card: card ? { brand: card.brand, last4: card.last4, expMonth: card.exp_month, expYear: card.exp_year, country: card.country } : null,
  };
}

function refundView(refund: Stripe.Refund) {
  return {
    id: refund.id,
    charge: idOf(refund.charge),
    amount: refund.amount,
    currency: refund.currency,
    status: refund.status,
    reason: refund.reason,
    createdAt: iso(refund.created),
  };
}

export interface CustomerHistory {
  /** `{id, deleted: true}` when Stripe no longer has the customer. */
  readonly customer: ReturnType<typeof customerView> | { readonly id: string; readonly deleted: true };
  readonly subscriptions: ReturnType<typeof subscriptionView>[];
  readonly invoices: ReturnType<typeof invoiceView>[];
  readonly charges: ReturnType<typeof chargeView>[];
  readonly refunds: ReturnType<typeof refundView>[];
}

/** Stripe's answer for an id it does not have (a customer deleted before, say). */
export function isResourceMissing(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeInvalidRequestError && error.code === 'resource_missing';
}

/**
 * The customer (undefined when Stripe no longer has it). Real Stripe answers a deleted
 * customer with `{id, deleted: true}`; the sandbox with resource_missing: both mean gone.
 */
async function liveCustomer(gateway: StripeGateway, customerId: string): Promise<Stripe.Customer | undefined> {
  try {
    const customer = await gateway.retrieveCustomer(customerId);
    return 'deleted' in customer && customer.deleted ? undefined : (customer as Stripe.Customer);
  } catch (error) {
    if (isResourceMissing(error)) return undefined;
    throw error;
  }
}

/** GDPR-1: the billing history Stripe holds for one customer. */
export async function customerHistory(gateway: StripeGateway, customerId: string): Promise<CustomerHistory> {
  const customer = await liveCustomer(gateway, customerId);
  if (!customer) return { customer: { id: customerId, deleted: true }, subscriptions: [], invoices: [], charges: [], refunds: [] };
  const page = { customer: customerId, limit: PAGE_SIZE };
  const [subscriptions, invoices, charges] = await Promise.all([
    listAllPages((startingAfter) => gateway.listSubscriptions({ ...page, status: 'all', ...(startingAfter ? { starting_after: startingAfter } : {}) })),
    listAllPages((startingAfter) => gateway.listInvoices({ ...page, ...(startingAfter ? { starting_after: startingAfter } : {}) })),
    listAllPages((startingAfter) => gateway.listCharges({ ...page, ...(startingAfter ? { starting_after: startingAfter } : {}) })),
  ]);
  // Stripe lists refunds by charge, not by customer: only charges with something refunded have any.
  const refunds: Stripe.Refund[] = [];
  for (const charge of charges.filter((item) => item.amount_refunded > 0)) {
    refunds.push(
      ...(await listAllPages((startingAfter) => gateway.listRefunds({ charge: charge.id, limit: PAGE_SIZE, ...(startingAfter ? { starting_after: startingAfter } : {}) }))),
    );
  }
  return {
    customer: customerView(customer),
    subscriptions: subscriptions.map(subscriptionView),
    invoices: invoices.filter((invoice): invoice is Stripe.Invoice & { id: string } => typeof invoice.id === 'string').map(invoiceView),
    charges: charges.map(chargeView),
    refunds: refunds.map(refundView),
  };
}

export interface StripeErasure {
  readonly subscriptionsCanceled: number;
  readonly customerDeleted: boolean;
}

/**
 * GDPR-2 at Stripe: cancels every subscription of the customer that can still bill (at
 * once, without proration: the deletion ends the service) and deletes the customer.
 * Safe to repeat: the operation ids come from the account id, an ended subscription is
 * left alone and a customer Stripe no longer has counts as deleted.
 */
export async function eraseCustomerAtStripe(gateway: StripeGateway, accountId: string, customerId: string): Promise<StripeErasure> {
  const customer = await liveCustomer(gateway, customerId);
  if (!customer) return { subscriptionsCanceled: 0, customerDeleted: false };
  const subscriptions = await listAllPages((startingAfter) =>
    gateway.listSubscriptions({ customer: customerId, status: 'all', limit: PAGE_SIZE, ...(startingAfter ? { starting_after: startingAfter } : {}) }),
  );
  let subscriptionsCanceled = 0;
  for (const subscription of subscriptions.filter((item) => !ENDED_SUBSCRIPTION_STATUSES.has(item.status))) {
    try {
      await gateway.cancelSubscription(`${accountId}.${subscription.id}`, subscription.id, { prorate: false, invoice_now: false });
      subscriptionsCanceled += 1;
    } catch (error) {
      // Canceled in between (by us on another attempt, or by Stripe): fine if it has ended.
      const now = await gateway.retrieveSubscription(subscription.id).catch(() => undefined);
      if (!now || !ENDED_SUBSCRIPTION_STATUSES.has(now.status)) throw error;
    }
  }
  try {
    await gateway.deleteCustomer(`${accountId}.${customerId}`, customerId);
  } catch (error) {
    if (!isResourceMissing(error)) throw error;
  }
  return { subscriptionsCanceled, customerDeleted: true };
}

/** What a failed Stripe call is, for logs and the deletion row: type and code, never a message. */
export function stripeFailure(error: unknown): string {
  if (error instanceof Stripe.errors.StripeError) {
    return [error.type, error.code, error.statusCode].filter((part) => part !== undefined && part !== null).join(':').slice(0, 200);
  }
  return error instanceof Error ? error.name.slice(0, 200) : 'unknown';
}
