import type Stripe from 'stripe';
import type { SandboxCore } from './core.js';
import { changedFields } from './core.js';
import { discountObject, invoiceLineObject, invoiceObject, invoicePaymentObject, subscriptionItemObject, subscriptionObject, type Metadata } from './objects.js';
import { attemptPayment, defaultPaymentMethod, newPaymentIntent } from './payments.js';
import { pageParams } from './resources.js';
import { invalidParam, invalidState, missingParam, StripeApiError } from './sandbox-errors.js';
import type { PendingLine, SubscriptionInternal } from './store.js';
import type { Params } from './wire-format.js';

/**
 * Subscriptions, invoices, discounts and the billing engine that moves them through
 * time: renewals, trial ends, Stripe's retry schedule for failed payments, and what
 * happens when the retries run out (the account's "Manage failed payments" setting).
 */

/** Days between payment attempts of a failed invoice: 8 tries within 2 weeks (Stripe's recommended Smart Retries default). */
export const DEFAULT_RETRY_DAYS: readonly number[] = [1, 2, 2, 2, 2, 2, 3];
const DAY = 86_400;
const TRIAL_WILL_END_NOTICE = 3 * DAY;

/**
 * What Stripe does to a subscription once every retry of a failed invoice has failed (the
 * Dashboard's "Manage failed payments" setting): cancel it, mark it `unpaid` (its open
 * invoice stays open and is not tried again; later renewals make draft invoices that are
 * never attempted), or leave it `past_due` (later renewals are still invoiced and tried).
 */
export type AfterFailedRetries = 'cancel' | 'unpaid' | 'past_due';
export const AFTER_FAILED_RETRIES: readonly AfterFailedRetries[] = ['cancel', 'unpaid', 'past_due'];

export interface BillingSettings {
  retryDays: readonly number[];
  afterFailedRetries: AfterFailedRetries;
}

// --- arithmetic --------------------------------------------------------------

/** round(amount * numerator / denominator), half away from zero, in integers only. */
export function prorate(amount: number, numerator: number, denominator: number): number {
  if (denominator <= 0) return 0;
  const product = BigInt(amount) * BigInt(numerator) * 2n;
  const divisor = BigInt(denominator) * 2n;
  const negative = product < 0n;
  const magnitude = negative ? -product : product;
  const rounded = (magnitude + BigInt(denominator)) / divisor;
  return Number(negative ? -rounded : rounded);
}

/**
 * The end of period `index` (1 = the first) counted from `anchor`: months keep the
 * anchor's day of the month, clamped to the month's last day (Jan 31 -> Feb 28 -> Mar 31).
 */
export function periodEnd(anchor: number, interval: Stripe.Price.Recurring.Interval, intervalCount: number, index: number): number {
  const steps = intervalCount * index;
  if (interval === 'day') return anchor + steps * DAY;
  if (interval === 'week') return anchor + steps * 7 * DAY;
  const months = interval === 'year' ? steps * 12 : steps;
  const start = new Date(anchor * 1000);
  const targetMonth = start.getUTCMonth() + months;
  const year = start.getUTCFullYear() + Math.floor(targetMonth / 12);
  const month = ((targetMonth % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  const day = Math.min(start.getUTCDate(), lastDay);
  return Math.floor(Date.UTC(year, month, day, start.getUTCHours(), start.getUTCMinutes(), start.getUTCSeconds()) / 1000);
}

export function discountAmount(coupon: Stripe.Coupon, subtotal: number): number {
  if (subtotal <= 0) return 0;
  if (coupon.amount_off !== null) return Math.min(coupon.amount_off, subtotal);
  // percent_off has at most two decimals: work in hundredths of a percent, in integers.
  const hundredths = Math.round((coupon.percent_off ?? 0) * 100);
  return Math.min(subtotal, prorate(subtotal, hundredths, 10_000));
}

// --- discounts ---------------------------------------------------------------

/** A coupon or promotion code as the caller named it, checked the way Stripe checks it. */
export function resolveDiscount(core: SandboxCore, input: { coupon?: string | undefined; promotionCode?: string | undefined; code?: string | undefined }, param: string): { coupon: Stripe.Coupon; promotionCode: Stripe.PromotionCode | null } {
  let promotionCode: Stripe.PromotionCode | null = null;
  let couponId = input.coupon;
  if (input.promotionCode !== undefined || input.code !== undefined) {
    promotionCode =
      input.promotionCode !== undefined
        ? core.store.get<Stripe.PromotionCode>('promotion_code', input.promotionCode, param)
        : (core.store.all<Stripe.PromotionCode>('promotion_code', (item) => item.active && item.code.toLowerCase() === (input.code as string).toLowerCase())[0] ?? null);
    if (!promotionCode) throw invalidParam(param, 'This promotion code is invalid.', 'promotion_code_invalid');
    const now = core.now();
    if (!promotionCode.active || (promotionCode.expires_at !== null && promotionCode.expires_at <= now) || (promotionCode.max_redemptions !== null && promotionCode.times_redeemed >= promotionCode.max_redemptions)) {
      throw invalidParam(param, 'This promotion code is no longer valid.', 'promotion_code_invalid');
    }
    const coupon = promotionCode.promotion.coupon;
    couponId = typeof coupon === 'string' ? coupon : (coupon?.id ?? undefined);
  }
  if (couponId === undefined) throw missingParam(param);
  const coupon = core.store.get<Stripe.Coupon>('coupon', couponId, param);
  if (!coupon.valid || (coupon.max_redemptions !== null && coupon.times_redeemed >= coupon.max_redemptions) || (coupon.redeem_by !== null && coupon.redeem_by <= core.now())) {
    throw invalidParam(param, `Coupon ${coupon.id} is no longer valid.`, 'coupon_expired');
  }
  return { coupon, promotionCode };
}

/** Counts a redemption and makes the Discount object that carries it. */
export function redeem(core: SandboxCore, found: { coupon: Stripe.Coupon; promotionCode: Stripe.PromotionCode | null }, owner: { customer: string | null; subscription: string | null; checkoutSession: string | null }, start: number): Stripe.Discount {
  found.coupon.times_redeemed += 1;
  if (found.coupon.max_redemptions !== null && found.coupon.times_redeemed >= found.coupon.max_redemptions) found.coupon.valid = false;
  if (found.promotionCode) found.promotionCode.times_redeemed += 1;
  const end = found.coupon.duration === 'repeating' && found.coupon.duration_in_months !== null ? periodEnd(start, 'month', found.coupon.duration_in_months, 1) : null;
  const discount = discountObject({
    id: core.store.newId('discount'),
    coupon: found.coupon.id,
    promotionCode: found.promotionCode?.id ?? null,
    customer: owner.customer,
    subscription: owner.subscription,
    checkoutSession: owner.checkoutSession,
    start,
    end,
  });
  core.store.insert('discount', discount);
  return discount;
}

function discountOf(core: SandboxCore, discountId: string): { discount: Stripe.Discount; coupon: Stripe.Coupon } | undefined {
  const discount = core.store.find<Stripe.Discount>('discount', discountId);
  if (!discount) return undefined;
  const couponId = typeof discount.source.coupon === 'string' ? discount.source.coupon : discount.source.coupon?.id;
  const coupon = couponId ? core.store.find<Stripe.Coupon>('coupon', couponId) : undefined;
  return coupon ? { discount, coupon } : undefined;
}

// --- invoices ----------------------------------------------------------------

interface InvoiceLineInput {
  readonly description: string;
  readonly amount: number;
  readonly quantity: number;
  readonly price: Stripe.Price;
  readonly subscriptionItem: string | null;
  readonly periodStart: number;
  readonly periodEnd: number;
  readonly proration: boolean;
}

function internalOf(core: SandboxCore, subscriptionId: string): SubscriptionInternal {
  const internal = core.store.data.internal.subscriptions[subscriptionId];
  if (!internal) throw new Error(`sandbox has no billing state for ${subscriptionId}`);
  return internal;
}

function customerIdOf(subscription: Stripe.Subscription): string {
  return typeof subscription.customer === 'string' ? subscription.customer : subscription.customer.id;
}

/** Creates and finalizes an invoice (invoice.created, invoice.finalized); a zero total is paid at once. A draft is only created. */
export function createInvoice(
  core: SandboxCore,
  input: {
    customer: Stripe.Customer;
    subscription: Stripe.Subscription | null;
    billingReason: Stripe.Invoice.BillingReason;
    lines: readonly InvoiceLineInput[];
    periodStart: number;
    periodEnd: number;
    /** Leave it a draft that never advances (auto_advance false): an unpaid subscription's renewals. */
    draft?: boolean;
  },
): Stripe.Invoice {
  const id = core.store.newId('invoice');
  const currency = input.lines[0]?.price.currency ?? input.subscription?.currency ?? 'usd';
  const subtotal = input.lines.reduce((sum, line) => sum + line.amount, 0);
  const discountable = input.lines.filter((line) => !line.proration).reduce((sum, line) => sum + line.amount, 0);
  const now = core.now(input.customer.id);
  let discountTotal = 0;
  const appliedDiscounts: string[] = [];
  if (input.subscription) {
    for (const discountId of [...input.subscription.discounts]) {
      const found = discountOf(core, typeof discountId === 'string' ? discountId : discountId.id);
      if (!found) continue;
      if (found.discount.end !== null && found.discount.end <= now) continue;
      const amount = Math.min(discountAmount(found.coupon, discountable - discountTotal), discountable - discountTotal);
      if (amount > 0) {
        discountTotal += amount;
        appliedDiscounts.push(found.discount.id);
      }
      if (found.coupon.duration === 'once') {
        input.subscription.discounts = input.subscription.discounts.filter((item) => (typeof item === 'string' ? item : item.id) !== found.discount.id);
      }
    }
  }
  let remainingDiscount = discountTotal;
  const lines = input.lines.map((line, index) => {
    const lineDiscount = line.proration || remainingDiscount === 0 ? 0 : index === input.lines.length - 1 ? remainingDiscount : Math.min(remainingDiscount, prorate(discountTotal, line.amount, Math.max(1, discountable)));
    remainingDiscount -= lineDiscount;
    return invoiceLineObject({
      id: `il_${id.slice(3)}_${index}`,
      invoice: id,
      amount: line.amount,
      currency,
      description: line.description,
      quantity: line.quantity,
      priceId: line.price.id,
      productId: typeof line.price.product === 'string' ? line.price.product : line.price.product.id,
      unitAmount: line.price.unit_amount ?? 0,
      subscription: input.subscription?.id ?? null,
      subscriptionItem: line.subscriptionItem,
      periodStart: line.periodStart,
      periodEnd: line.periodEnd,
      proration: line.proration,
      discountAmounts: lineDiscount > 0 && appliedDiscounts[0] ? [{ amount: lineDiscount, discount: appliedDiscounts[0] }] : [],
    });
  });
  const sequence = input.customer.next_invoice_sequence ?? 1;
  input.customer.next_invoice_sequence = sequence + 1;
  const invoice = invoiceObject({
    id,
    created: now,
    customer: input.customer,
    subscription: input.subscription?.id ?? null,
    subscriptionMetadata: input.subscription?.metadata ?? null,
    billingReason: input.billingReason,
    currency,
    lines,
    subtotal,
    discountTotal,
    discounts: appliedDiscounts,
    periodStart: input.periodStart,
    periodEnd: input.periodEnd,
    defaultPaymentMethod: null,
    number: `${input.customer.invoice_prefix ?? 'SANDBOX'}-${String(sequence).padStart(4, '0')}`,
  });
  if (input.draft) invoice.auto_advance = false;
  core.store.insert('invoice', invoice);
  core.emit('invoice.created', invoice, undefined, input.customer.id);
  if (input.draft) {
    if (input.subscription) input.subscription.latest_invoice = invoice.id;
    return invoice;
  }
  const before = structuredClone(invoice);
  invoice.status = 'open';
  invoice.status_transitions.finalized_at = now;
  invoice.effective_at = now;
  invoice.hosted_invoice_url = `${core.hostedBaseUrl}/sandbox/invoices/${id}`;
  core.emit('invoice.finalized', invoice, changedFields(before, invoice), input.customer.id);
  if (invoice.amount_due === 0) markInvoicePaid(core, invoice, null);
  if (input.subscription) input.subscription.latest_invoice = invoice.id;
  return invoice;
}

function markInvoicePaid(core: SandboxCore, invoice: Stripe.Invoice, intent: Stripe.PaymentIntent | null): void {
  const customer = typeof invoice.customer === 'string' ? invoice.customer : (invoice.customer?.id ?? null);
  const before = structuredClone(invoice);
  const now = core.now(customer);
  invoice.status = 'paid';
  invoice.amount_paid = invoice.amount_due;
  invoice.amount_remaining = 0;
  invoice.attempted = true;
  invoice.next_payment_attempt = null;
  invoice.status_transitions.paid_at = now;
  if (intent) {
    const payment = core.store.all<Stripe.InvoicePayment>('invoice_payment', (item) => item.invoice === invoice.id && item.payment.payment_intent === intent.id)[0];
    if (payment) {
      payment.status = 'paid';
      payment.amount_paid = intent.amount;
      payment.status_transitions.paid_at = now;
      core.emit('invoice_payment.paid', payment, undefined, customer);
    }
  }
  const previous = changedFields(before, invoice);
  core.emit('invoice.paid', invoice, previous, customer);
  core.emit('invoice.payment_succeeded', invoice, previous, customer);
}

/** The invoice's payment intent (one per invoice, reused by every retry) and its InvoicePayment. */
function intentFor(core: SandboxCore, invoice: Stripe.Invoice, existing?: Stripe.PaymentIntent): Stripe.PaymentIntent {
  const payment = core.store.all<Stripe.InvoicePayment>('invoice_payment', (item) => item.invoice === invoice.id)[0];
  const linked = payment?.payment.payment_intent;
  if (linked) return core.store.get<Stripe.PaymentIntent>('payment_intent', typeof linked === 'string' ? linked : linked.id);
  const customer = typeof invoice.customer === 'string' ? invoice.customer : (invoice.customer?.id ?? null);
  const intent =
    existing ??
    newPaymentIntent(core, {
      customer,
      amount: invoice.amount_due,
      currency: invoice.currency,
      description: invoice.billing_reason === 'subscription_create' ? 'Subscription creation' : 'Subscription update',
      metadata: {},
    });
  core.store.insert(
    'invoice_payment',
    invoicePaymentObject({ id: core.store.newId('invoice_payment'), created: core.now(customer), invoice: invoice.id, amountRequested: invoice.amount_due, currency: invoice.currency, paymentIntent: intent.id }),
  );
  return intent;
}

export type InvoicePaymentOutcome = 'paid' | 'failed' | 'requires_action';

/**
 * Tries to collect an open invoice: on success it is paid; on failure it stays open with
 * invoice.payment_failed, and its next attempt follows the retry schedule (null when the
 * retries have run out).
 */
export function collectInvoice(core: SandboxCore, settings: BillingSettings, invoice: Stripe.Invoice, options: { onSession: boolean; paymentMethod?: string | null; paidWith?: Stripe.PaymentIntent }): InvoicePaymentOutcome {
  if (invoice.status === 'paid') return 'paid';
  if (invoice.status !== 'open') throw invalidState(`Invoice ${invoice.id} is ${invoice.status ?? 'not open'}; only open invoices can be paid.`);
  const customerId = typeof invoice.customer === 'string' ? invoice.customer : (invoice.customer?.id ?? '');
  const subscriptionId = invoice.parent?.subscription_details?.subscription;
  const subscription = subscriptionId ? core.store.find<Stripe.Subscription>('subscription', typeof subscriptionId === 'string' ? subscriptionId : subscriptionId.id) : undefined;
  const intent = intentFor(core, invoice, options.paidWith);
  let outcome: InvoicePaymentOutcome;
  if (intent.status === 'succeeded') {
    outcome = 'paid';
  } else {
    const method = options.paymentMethod !== undefined ? options.paymentMethod : defaultPaymentMethod(core, customerId, subscription);
    const attempt = attemptPayment(core, intent, method, { onSession: options.onSession });
    outcome = attempt.outcome === 'succeeded' ? 'paid' : attempt.outcome === 'requires_action' ? 'requires_action' : 'failed';
  }
  const before = structuredClone(invoice);
  invoice.attempt_count += 1;
  invoice.attempted = true;
  if (outcome === 'paid') {
    markInvoicePaid(core, invoice, intent);
    return outcome;
  }
  const delayDays = settings.retryDays[invoice.attempt_count - 1];
  invoice.next_payment_attempt = delayDays === undefined ? null : core.now(customerId) + delayDays * DAY;
  const previous = changedFields(before, invoice);
  if (outcome === 'requires_action') core.emit('invoice.payment_action_required', invoice, previous, customerId);
  core.emit('invoice.payment_failed', invoice, previous, customerId);
  return outcome;
}

export function listInvoices(core: SandboxCore, params: Params) {
  const customer = params.string('customer');
  const subscription = params.string('subscription');
  const status = params.string('status');
  return core.store.page<Stripe.Invoice>('invoice', '/v1/invoices', pageParams(params), (invoice) =>
    (customer === undefined || invoice.customer === customer) &&
    (subscription === undefined || invoice.parent?.subscription_details?.subscription === subscription) &&
    (status === undefined || invoice.status === status),
  );
}

export function listInvoicePayments(core: SandboxCore, params: Params) {
  const invoice = params.string('invoice');
  return core.store.page<Stripe.InvoicePayment>('invoice_payment', '/v1/invoice_payments', pageParams(params), (payment) => invoice === undefined || payment.invoice === invoice);
}

// --- subscriptions -----------------------------------------------------------

function recurringOf(price: Stripe.Price, param: string): Stripe.Price.Recurring {
  if (!price.recurring) throw invalidParam(param, `The price ${price.id} is not recurring; subscriptions need recurring prices.`);
  return price.recurring;
}

function itemLines(subscription: Stripe.Subscription, periodStart: number, periodEndAt: number): InvoiceLineInput[] {
  return subscription.items.data.map((item) => {
    const quantity = item.quantity ?? 1;
    const product = typeof item.price.product === 'string' ? item.price.product : item.price.product.id;
    return {
      description: `${quantity} × ${product} (at ${item.price.unit_amount ?? 0} ${item.price.currency} / ${item.price.recurring?.interval ?? 'month'})`,
      amount: (item.price.unit_amount ?? 0) * quantity,
      quantity,
      price: item.price,
      subscriptionItem: item.id,
      periodStart,
      periodEnd: periodEndAt,
      proration: false,
    };
  });
}

function pendingLineInputs(core: SandboxCore, subscription: Stripe.Subscription): InvoiceLineInput[] {
  const internal = internalOf(core, subscription.id);
  const lines = internal.pendingLines.map((line) => ({
    description: line.description,
    amount: line.amount,
    quantity: 1,
    price: core.store.get<Stripe.Price>('price', line.priceId),
    subscriptionItem: line.subscriptionItemId,
    periodStart: line.periodStart,
    periodEnd: line.periodEnd,
    proration: line.proration,
  }));
  internal.pendingLines = [];
  return lines;
}

export interface NewSubscription {
  readonly customer: Stripe.Customer;
  readonly items: ReadonlyArray<{ price: Stripe.Price; quantity: number; metadata?: Metadata }>;
  readonly trialDays: number | null;
  readonly trialEnd?: number | null;
  readonly defaultPaymentMethod: string | null;
  readonly metadata: Metadata;
  readonly description: string | null;
  readonly missingPaymentMethod: Stripe.Subscription.TrialSettings.EndBehavior.MissingPaymentMethod;
  readonly discount?: { coupon: Stripe.Coupon; promotionCode: Stripe.PromotionCode | null };
  /** Checkout already collected the first payment with this payment intent. */
  readonly paidWith?: Stripe.PaymentIntent;
}

/**
 * Starts a subscription (customer.subscription.created) with its first invoice: zero
 * for a trial, otherwise collected now. Without a successful payment it is `incomplete`.
 */
export function startSubscription(core: SandboxCore, settings: BillingSettings, input: NewSubscription): { subscription: Stripe.Subscription; invoice: Stripe.Invoice; outcome: InvoicePaymentOutcome } {
  const customerId = input.customer.id;
  const now = core.now(customerId);
  const first = input.items[0];
  if (!first) throw missingParam('items');
  const recurring = recurringOf(first.price, 'items[0][price]');
  for (const [index, item] of input.items.entries()) {
    const other = recurringOf(item.price, `items[${index}][price]`);
    if (other.interval !== recurring.interval || other.interval_count !== recurring.interval_count || item.price.currency !== first.price.currency) {
      throw invalidParam(`items[${index}][price]`, 'All prices on a subscription must have the same currency and billing interval.');
    }
  }
  const trialEnd = input.trialEnd ?? (input.trialDays ? now + input.trialDays * DAY : null);
  const anchor = trialEnd ?? now;
  const currentEnd = trialEnd ?? periodEnd(anchor, recurring.interval, recurring.interval_count, 1);
  const id = core.store.newId('subscription');
  const items = input.items.map((item, index) =>
    subscriptionItemObject({
      id: `si_${id.slice(4, 20)}${index}`,
      created: now,
      subscription: id,
      price: item.price,
      quantity: item.quantity,
      periodStart: now,
      periodEnd: currentEnd,
      metadata: item.metadata ?? {},
    }),
  );
  const subscription = subscriptionObject({
    id,
    created: now,
    customer: customerId,
    currency: first.price.currency,
    items,
    status: trialEnd ? 'trialing' : 'incomplete',
    billingCycleAnchor: anchor,
    trialStart: trialEnd ? now : null,
    trialEnd,
    missingPaymentMethod: input.missingPaymentMethod,
    defaultPaymentMethod: input.defaultPaymentMethod,
    discounts: [],
    metadata: input.metadata,
    description: input.description,
    testClock: core.testClockOf(customerId),
  });
  core.store.insert('subscription', subscription);
  // Period n ends at periodEnd(anchor, n): a trial is period 0 (it ends at the anchor), the first paid period is 1.
  core.store.data.internal.subscriptions[id] = { anchor, periodIndex: trialEnd ? 0 : 1, trialWillEndSent: false, pendingLines: [] };
  if (input.discount) {
    const discount = redeem(core, input.discount, { customer: customerId, subscription: id, checkoutSession: null }, now);
    subscription.discounts = [discount.id];
  }
  core.emit('customer.subscription.created', subscription, undefined, customerId);
  const lines = itemLines(subscription, now, currentEnd).map((line) => (trialEnd ? { ...line, amount: 0, description: `Trial period for ${line.description}` } : line));
  const invoice = createInvoice(core, { customer: input.customer, subscription, billingReason: 'subscription_create', lines, periodStart: now, periodEnd: now });
  let outcome: InvoicePaymentOutcome = 'paid';
  if (invoice.status !== 'paid') {
    outcome = collectInvoice(core, settings, invoice, { onSession: true, ...(input.paidWith ? { paidWith: input.paidWith } : {}) });
  }
  if (!trialEnd && outcome === 'paid') setStatus(core, subscription, 'active');
  return { subscription, invoice, outcome };
}

function setStatus(core: SandboxCore, subscription: Stripe.Subscription, status: Stripe.Subscription.Status, extra: (subscription: Stripe.Subscription) => void = () => undefined): void {
  const before = structuredClone(subscription);
  subscription.status = status;
  extra(subscription);
  const previous = changedFields(before, subscription);
  if (Object.keys(previous).length > 0) core.emit('customer.subscription.updated', subscription, previous, customerIdOf(subscription));
}

export function endSubscription(core: SandboxCore, subscription: Stripe.Subscription, reason: Stripe.Subscription.CancellationDetails.Reason): void {
  const before = structuredClone(subscription);
  const now = core.now(customerIdOf(subscription));
  subscription.status = 'canceled';
  subscription.canceled_at ??= now;
  subscription.ended_at = now;
  subscription.cancellation_details = { ...(subscription.cancellation_details ?? { comment: null, feedback: null, feedback_option: null }), reason } as Stripe.Subscription.CancellationDetails;
  core.emit('customer.subscription.deleted', subscription, changedFields(before, subscription), customerIdOf(subscription));
}

function openInvoiceOf(core: SandboxCore, subscription: Stripe.Subscription): Stripe.Invoice | undefined {
  return core.store.all<Stripe.Invoice>('invoice', (invoice) => invoice.status === 'open' && invoice.parent?.subscription_details?.subscription === subscription.id)[0];
}

/**
 * What a failed (or retried) renewal does to the subscription's status: past_due, and when
 * the retries have run out, what the settings say (canceled, unpaid, or still past_due).
 * A paid invoice makes a past_due or unpaid subscription active again.
 */
function afterCollection(core: SandboxCore, settings: BillingSettings, subscription: Stripe.Subscription, invoice: Stripe.Invoice, outcome: InvoicePaymentOutcome): void {
  if (outcome === 'paid') {
    if (subscription.status === 'past_due' || subscription.status === 'unpaid' || subscription.status === 'trialing') setStatus(core, subscription, 'active');
    return;
  }
  if (subscription.status === 'active' || subscription.status === 'trialing') setStatus(core, subscription, 'past_due');
  if (invoice.next_payment_attempt !== null) return;
  if (settings.afterFailedRetries === 'cancel') endSubscription(core, subscription, 'payment_failed');
  else if (settings.afterFailedRetries === 'unpaid') setStatus(core, subscription, 'unpaid');
}

function startNextPeriod(core: SandboxCore, settings: BillingSettings, subscription: Stripe.Subscription, billingReason: Stripe.Invoice.BillingReason): void {
  const internal = internalOf(core, subscription.id);
  const first = subscription.items.data[0];
  if (!first) return;
  const recurring = recurringOf(first.price, 'items');
  const start = first.current_period_end;
  internal.periodIndex += 1;
  const end = periodEnd(internal.anchor, recurring.interval, recurring.interval_count, internal.periodIndex);
  const customerId = customerIdOf(subscription);
  const customer = core.store.get<Stripe.Customer>('customer', customerId);
  const before = structuredClone(subscription);
  for (const item of subscription.items.data) {
    item.current_period_start = start;
    item.current_period_end = end;
  }
  const pending = pendingLineInputs(core, subscription);
  const lines = [...pending, ...itemLines(subscription, start, end)];
  const wasTrialing = subscription.status === 'trialing';
  const noMethod = defaultPaymentMethod(core, customerId, subscription) === null;
  if (wasTrialing && noMethod && subscription.trial_settings?.end_behavior.missing_payment_method === 'cancel') {
    endSubscription(core, subscription, 'cancellation_requested');
    return;
  }
  if (wasTrialing && noMethod && subscription.trial_settings?.end_behavior.missing_payment_method === 'pause') {
    subscription.status = 'paused';
    core.emit('customer.subscription.paused', subscription, changedFields(before, subscription), customerId);
    return;
  }
  if (wasTrialing) subscription.status = 'active';
  core.emit('customer.subscription.updated', subscription, changedFields(before, subscription), customerId);
  // Stripe keeps invoicing an unpaid subscription, but as drafts it never finalizes or attempts.
  const unpaid = subscription.status === 'unpaid';
  const invoice = createInvoice(core, { customer, subscription, billingReason, lines, periodStart: start, periodEnd: end, draft: unpaid });
  if (unpaid) return;
  if (invoice.status === 'paid') return;
  const outcome = collectInvoice(core, settings, invoice, { onSession: false });
  afterCollection(core, settings, subscription, invoice, outcome);
}

interface DueAction {
  readonly at: number;
  readonly run: () => void;
}

function nextAction(core: SandboxCore, settings: BillingSettings, subscription: Stripe.Subscription): DueAction | undefined {
  if (subscription.status === 'canceled' || subscription.status === 'incomplete_expired' || subscription.status === 'paused') return undefined;
  const internal = internalOf(core, subscription.id);
  const candidates: DueAction[] = [];
  const customerId = customerIdOf(subscription);
  if (subscription.status === 'incomplete') {
    // Stripe gives the first payment 23 hours, then expires the subscription.
    candidates.push({ at: subscription.created + 23 * 3600, run: () => setStatus(core, subscription, 'incomplete_expired') });
  }
  if (subscription.status === 'trialing' && subscription.trial_end !== null) {
    const notice = subscription.trial_end - TRIAL_WILL_END_NOTICE;
    if (!internal.trialWillEndSent && subscription.trial_start !== null && notice > subscription.trial_start) {
      candidates.push({
        at: notice,
        run: () => {
          internal.trialWillEndSent = true;
          core.emit('customer.subscription.trial_will_end', subscription, undefined, customerId);
        },
      });
    }
    candidates.push({ at: subscription.trial_end, run: () => startNextPeriod(core, settings, subscription, 'subscription_cycle') });
  }
  if (subscription.cancel_at !== null) {
    candidates.push({ at: subscription.cancel_at, run: () => endSubscription(core, subscription, 'cancellation_requested') });
  }
  const periodEndAt = subscription.items.data[0]?.current_period_end;
  if ((subscription.status === 'active' || subscription.status === 'past_due' || subscription.status === 'unpaid') && periodEndAt !== undefined) {
    candidates.push({
      at: periodEndAt,
      run: () => (subscription.cancel_at_period_end ? endSubscription(core, subscription, 'cancellation_requested') : startNextPeriod(core, settings, subscription, 'subscription_cycle')),
    });
  }
  const open = openInvoiceOf(core, subscription);
  if (open && open.next_payment_attempt !== null && subscription.status !== 'incomplete') {
    candidates.push({
      at: open.next_payment_attempt,
      run: () => {
        const outcome = collectInvoice(core, settings, open, { onSession: false });
        afterCollection(core, settings, subscription, open, outcome);
      },
    });
  }
  return candidates.sort((a, b) => a.at - b.at)[0];
}

/** Runs every billing action due up to `until`, in time order, each at its own time. */
export function advanceBilling(core: SandboxCore, settings: BillingSettings, scope: { testClock: string | null; until: number }): void {
  for (let step = 0; step < 100_000; step += 1) {
    let next: DueAction | undefined;
    for (const subscription of core.store.all<Stripe.Subscription>('subscription', (item) => (item.test_clock ?? null) === scope.testClock)) {
      const action = nextAction(core, settings, subscription);
      if (action && action.at <= scope.until && (!next || action.at < next.at)) next = action;
    }
    if (!next) return;
    const action = next;
    core.at(action.at, action.run);
  }
  throw new Error('billing engine did not settle');
}

const PRORATION_BEHAVIOURS = ['create_prorations', 'none', 'always_invoice'] as const;

/**
 * Subscription updates: cancel_at_period_end, cancel_at, metadata, default payment method,
 * ending a trial now, and price or quantity changes with proration (pending lines on the
 * next invoice, or an invoice now with always_invoice).
 */
export function updateSubscription(core: SandboxCore, settings: BillingSettings, id: string, params: Params): Stripe.Subscription {
  const subscription = core.store.get<Stripe.Subscription>('subscription', id);
  if (subscription.status === 'canceled' || subscription.status === 'incomplete_expired') {
    throw invalidState(`A canceled subscription can only update its cancellation_details and metadata.`);
  }
  const customerId = customerIdOf(subscription);
  const now = core.now(customerId);
  const before = structuredClone(subscription);
  const cancelAtPeriodEnd = params.boolean('cancel_at_period_end');
  const periodEndAt = subscription.items.data[0]?.current_period_end ?? null;
  if (cancelAtPeriodEnd !== undefined) {
    subscription.cancel_at_period_end = cancelAtPeriodEnd;
    subscription.cancel_at = cancelAtPeriodEnd ? periodEndAt : null;
    subscription.canceled_at = cancelAtPeriodEnd ? now : null;
    if (cancelAtPeriodEnd) subscription.cancellation_details = { comment: null, feedback: null, feedback_option: null, reason: 'cancellation_requested' } as Stripe.Subscription.CancellationDetails;
    else subscription.cancellation_details = { comment: null, feedback: null, feedback_option: null, reason: null } as Stripe.Subscription.CancellationDetails;
  }
  if (params.has('cancel_at')) {
    if (params.isEmpty('cancel_at')) {
      subscription.cancel_at = null;
      subscription.cancel_at_period_end = false;
    } else {
      const cancelAt = params.integer('cancel_at', { min: now });
      subscription.cancel_at = cancelAt ?? null;
      subscription.cancel_at_period_end = cancelAt !== undefined && cancelAt === periodEndAt;
    }
  }
  const metadata = params.metadata('metadata', subscription.metadata);
  if (metadata) subscription.metadata = metadata;
  const description = params.nullableString('description');
  if (description !== undefined) subscription.description = description;
  const defaultMethod = params.string('default_payment_method');
  if (defaultMethod !== undefined) {
    const method = core.store.get<Stripe.PaymentMethod>('payment_method', defaultMethod, 'default_payment_method');
    if (method.customer !== customerId) throw invalidParam('default_payment_method', `The payment method ${defaultMethod} is not attached to ${customerId}.`);
    subscription.default_payment_method = defaultMethod;
  }
  for (const discountParams of params.array('discounts')) {
    const found = resolveDiscount(core, { coupon: discountParams.string('coupon'), promotionCode: discountParams.string('promotion_code') }, 'discounts');
    const discount = redeem(core, found, { customer: customerId, subscription: id, checkoutSession: null }, now);
    subscription.discounts = [...subscription.discounts, discount.id];
  }
  const items = params.array('items');
  const proration = params.enumValue('proration_behavior', PRORATION_BEHAVIOURS) ?? 'create_prorations';
  const prorationDate = params.integer('proration_date') ?? now;
  const newLines: PendingLine[] = [];
  for (const [index, itemParams] of items.entries()) {
    const itemId = itemParams.string('id');
    const item = itemId ? subscription.items.data.find((candidate) => candidate.id === itemId) : subscription.items.data.length === 1 && !itemParams.string('price') ? subscription.items.data[0] : undefined;
    if (itemId && !item) throw invalidParam(`items[${index}][id]`, `No such subscription item: '${itemId}'`, 'resource_missing');
    if (!item) throw invalidParam(`items[${index}][id]`, 'Adding items to a subscription is not supported by the sandbox; name the item to change with items[][id].');
    const priceId = itemParams.string('price');
    const newPrice = priceId ? core.store.get<Stripe.Price>('price', priceId, `items[${index}][price]`) : item.price;
    const newRecurring = recurringOf(newPrice, `items[${index}][price]`);
    const quantity = itemParams.integer('quantity', { min: 1, max: 10_000 }) ?? item.quantity ?? 1;
    const oldAmount = (item.price.unit_amount ?? 0) * (item.quantity ?? 1);
    const newAmount = (newPrice.unit_amount ?? 0) * quantity;
    const oldRecurring = item.price.recurring;
    if (oldRecurring && (oldRecurring.interval !== newRecurring.interval || oldRecurring.interval_count !== newRecurring.interval_count)) {
      throw invalidParam(`items[${index}][price]`, 'The sandbox changes prices within the same billing interval only.');
    }
    if (subscription.status !== 'trialing' && proration !== 'none' && oldAmount !== newAmount) {
      const start = item.current_period_start;
      const end = item.current_period_end;
      const remaining = Math.max(0, end - prorationDate);
      const length = end - start;
      const when = new Date(prorationDate * 1000).toISOString().slice(0, 10);
      newLines.push(
        { description: `Unused time on ${item.price.id} after ${when}`, amount: -prorate(oldAmount, remaining, length), priceId: item.price.id, subscriptionItemId: item.id, periodStart: prorationDate, periodEnd: end, proration: true },
        { description: `Remaining time on ${newPrice.id} after ${when}`, amount: prorate(newAmount, remaining, length), priceId: newPrice.id, subscriptionItemId: item.id, periodStart: prorationDate, periodEnd: end, proration: true },
      );
    }
    item.price = newPrice;
    item.plan = { ...item.plan, ...subscriptionItemObject({ id: item.id, created: item.created, subscription: id, price: newPrice, quantity, periodStart: item.current_period_start, periodEnd: item.current_period_end, metadata: item.metadata }).plan };
    item.quantity = quantity;
  }
  const trialEnd = params.string('trial_end');
  const endTrialNow = trialEnd === 'now' && subscription.status === 'trialing';
  if (trialEnd !== undefined && trialEnd !== 'now') {
    const at = params.integer('trial_end', { min: now + 1 });
    if (subscription.status !== 'trialing') throw invalidParam('trial_end', 'Only a trialing subscription can move its trial end in the sandbox.');
    subscription.trial_end = at ?? subscription.trial_end;
    for (const item of subscription.items.data) item.current_period_end = subscription.trial_end ?? item.current_period_end;
    internalOf(core, id).anchor = subscription.trial_end ?? internalOf(core, id).anchor;
  }
  const previous = changedFields(before, subscription);
  if (Object.keys(previous).length > 0) core.emit('customer.subscription.updated', subscription, previous, customerId);
  if (newLines.length > 0) {
    if (proration === 'always_invoice') {
      const customer = core.store.get<Stripe.Customer>('customer', customerId);
      const lines = newLines.map((line) => ({ ...line, quantity: 1, price: core.store.get<Stripe.Price>('price', line.priceId), subscriptionItem: line.subscriptionItemId }));
      const total = lines.reduce((sum, line) => sum + line.amount, 0);
      if (total > 0) {
        const invoice = createInvoice(core, { customer, subscription, billingReason: 'subscription_update', lines, periodStart: prorationDate, periodEnd: prorationDate });
        if (invoice.status !== 'paid') afterCollection(core, settings, subscription, invoice, collectInvoice(core, settings, invoice, { onSession: false }));
      } else {
        internalOf(core, id).pendingLines.push(...newLines);
      }
    } else {
      internalOf(core, id).pendingLines.push(...newLines);
    }
  }
  if (endTrialNow) {
    core.at(now, () => {
      subscription.trial_end = now;
      for (const item of subscription.items.data) item.current_period_end = now;
      internalOf(core, id).anchor = now;
      internalOf(core, id).periodIndex = 0;
      startNextPeriod(core, settings, subscription, 'subscription_update');
    });
  }
  return subscription;
}

/** DELETE /v1/subscriptions/:id: ends it now (customer.subscription.deleted). */
export function cancelSubscription(core: SandboxCore, id: string, params: Params): Stripe.Subscription {
  const subscription = core.store.get<Stripe.Subscription>('subscription', id);
  if (subscription.status === 'canceled') throw invalidState(`This subscription (${id}) is already canceled.`);
  const details = params.object('cancellation_details');
  const comment = details?.string('comment', { max: 5000 });
  if (comment !== undefined && subscription.cancellation_details) subscription.cancellation_details.comment = comment;
  endSubscription(core, subscription, 'cancellation_requested');
  return subscription;
}

export function listSubscriptions(core: SandboxCore, params: Params) {
  const customer = params.string('customer');
  const status = params.string('status');
  const price = params.string('price');
  return core.store.page<Stripe.Subscription>('subscription', '/v1/subscriptions', pageParams(params), (subscription) => {
    const statusMatches =
      status === 'all' ||
      (status === undefined ? subscription.status !== 'canceled' && subscription.status !== 'incomplete_expired' : status === 'ended' ? subscription.status === 'canceled' || subscription.status === 'incomplete_expired' : subscription.status === status);
    return (
      statusMatches &&
      (customer === undefined || subscription.customer === customer) &&
      (price === undefined || subscription.items.data.some((item) => item.price.id === price))
    );
  });
}

/** POST /v1/subscriptions: a subscription started directly, charged to the customer's default card. */
export function createSubscription(core: SandboxCore, settings: BillingSettings, params: Params): Stripe.Subscription {
  const customerId = params.requiredString('customer');
  const customer = core.store.get<Stripe.Customer>('customer', customerId, 'customer');
  const items = params.array('items');
  if (items.length === 0) throw missingParam('items');
  const discounts = params.array('discounts');
  const firstDiscount = discounts[0];
  const trialEndParam = params.string('trial_end');
  const { subscription } = startSubscription(core, settings, {
    customer,
    items: items.map((item, index) => ({
      price: core.store.get<Stripe.Price>('price', item.requiredString('price'), `items[${index}][price]`),
      quantity: item.integer('quantity', { min: 1, max: 10_000 }) ?? 1,
      metadata: item.metadata() ?? {},
    })),
    trialDays: params.integer('trial_period_days', { min: 1, max: 730 }) ?? null,
    ...(trialEndParam !== undefined && trialEndParam !== 'now' ? { trialEnd: params.integer('trial_end', { min: core.now(customerId) + 1 }) ?? null } : {}),
    defaultPaymentMethod: params.string('default_payment_method') ?? null,
    metadata: params.metadata() ?? {},
    description: params.nullableString('description') ?? null,
    missingPaymentMethod: params.object('trial_settings')?.object('end_behavior')?.enumValue('missing_payment_method', ['cancel', 'create_invoice', 'pause'] as const) ?? 'create_invoice',
    ...(firstDiscount ? { discount: resolveDiscount(core, { coupon: firstDiscount.string('coupon'), promotionCode: firstDiscount.string('promotion_code') }, 'discounts[0]') } : {}),
  });
  return subscription;
}

/** POST /v1/invoices/:id/pay: an attempt now, on the invoice's payment method or the one given. */
export function payInvoice(core: SandboxCore, settings: BillingSettings, id: string, params: Params): Stripe.Invoice {
  const invoice = core.store.get<Stripe.Invoice>('invoice', id);
  const method = params.string('payment_method');
  if (method !== undefined) core.store.get<Stripe.PaymentMethod>('payment_method', method, 'payment_method');
  const outcome = collectInvoice(core, settings, invoice, { onSession: false, ...(method !== undefined ? { paymentMethod: method } : {}) });
  const subscriptionId = invoice.parent?.subscription_details?.subscription;
  const subscription = subscriptionId ? core.store.find<Stripe.Subscription>('subscription', typeof subscriptionId === 'string' ? subscriptionId : subscriptionId.id) : undefined;
  if (subscription) afterCollection(core, settings, subscription, invoice, outcome);
  if (outcome !== 'paid') {
    const intent = intentFor(core, invoice);
    throw new StripeApiError(402, { type: 'card_error', code: 'card_declined', message: 'Your card was declined.', payment_intent: intent });
  }
  return invoice;
}
