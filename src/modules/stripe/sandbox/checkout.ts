import type Stripe from 'stripe';
import type { SandboxCore } from './core.js';
import { changedFields } from './core.js';
import { discountAmount, redeem, resolveDiscount, startSubscription, type BillingSettings } from './billing.js';
import { checkoutLineItemObject, checkoutSessionObject, customerObject } from './objects.js';
import { attemptPayment, attachPaymentMethod, createCardPaymentMethod, newPaymentIntent } from './payments.js';
import { pageParams } from './resources.js';
import { invalidParam, invalidState, missingParam } from './sandbox-errors.js';
import { setupAttempt, testCard } from './test-cards.js';
import type { Params } from './wire-format.js';

/** Checkout sessions (subscription and payment modes) and paying them on the hosted page. */

const DEFAULT_EXPIRY_SECONDS = 24 * 3600;
const URL_PATTERN = /^https?:\/\/\S+$/;

function url(params: Params, key: string): string | null {
  const value = params.string(key, { max: 5000 });
  if (value === undefined) return null;
  if (!URL_PATTERN.test(value)) throw invalidParam(key, `Not a valid URL`, 'url_invalid');
  return value;
}

function lineItemsOf(core: SandboxCore, sessionId: string): Stripe.LineItem[] {
  return (core.store.data.internal.sessionLineItems[sessionId] ?? []) as Stripe.LineItem[];
}

export function createCheckoutSession(core: SandboxCore, params: Params): Stripe.Checkout.Session {
  const mode = params.enumValue('mode', ['payment', 'subscription', 'setup'] as const);
  if (!mode) throw missingParam('mode');
  if (mode === 'setup') throw invalidParam('mode', 'The sandbox supports payment and subscription modes.');
  const customer = params.string('customer') ?? null;
  if (customer) core.store.get<Stripe.Customer>('customer', customer, 'customer');
  const customerEmail = params.string('customer_email') ?? null;
  if (customer && customerEmail) throw invalidParam('customer_email', 'You may only specify one of these parameters: customer, customer_email.');
  const items = params.array('line_items');
  if (items.length === 0) throw missingParam('line_items');
  const id = core.store.newId('checkout.session');
  const lineItems = items.map((item, index) => {
    const param = `line_items[${index}][price]`;
    const price = core.store.get<Stripe.Price>('price', item.requiredString('price'), param);
    if (!price.active) throw invalidParam(param, `The price ${price.id} is not active.`);
    if (mode === 'subscription' && price.type !== 'recurring') throw invalidParam(param, 'In subscription mode, line items need recurring prices.');
    if (mode === 'payment' && price.type !== 'one_time') throw invalidParam(param, 'In payment mode, line items need one-time prices; use subscription mode for recurring prices.');
    const product = core.store.find<Stripe.Product>('product', typeof price.product === 'string' ? price.product : price.product.id);
    return checkoutLineItemObject({ id: `li_${id.slice(8, 24)}${index}`, price, productName: product?.name ?? 'Product', quantity: item.integer('quantity', { min: 1, max: 10_000 }) ?? 1, amountDiscount: 0 });
  });
  const currency = lineItems[0]?.currency ?? 'usd';
  if (lineItems.some((item) => item.currency !== currency)) throw invalidParam('line_items', 'All line items must have the same currency.');
  const allowPromotionCodes = params.boolean('allow_promotion_codes') ?? false;
  const discounts = params.array('discounts');
  if (allowPromotionCodes && discounts.length > 0) throw invalidParam('discounts', 'You may only specify one of these parameters: allow_promotion_codes, discounts.');
  const sessionDiscounts: Stripe.Checkout.Session.Discount[] = discounts.map((discount, index) => {
    const found = resolveDiscount(core, { coupon: discount.string('coupon'), promotionCode: discount.string('promotion_code') }, `discounts[${index}]`);
    return { coupon: found.coupon.id, promotion_code: found.promotionCode?.id ?? null };
  });
  const subscriptionData = params.object('subscription_data');
  if (mode === 'payment' && subscriptionData) throw invalidParam('subscription_data', 'subscription_data is for subscription mode only.');
  const trialDays = subscriptionData?.integer('trial_period_days', { min: 1, max: 730 });
  subscriptionData?.metadata();
  subscriptionData?.object('trial_settings')?.object('end_behavior')?.enumValue('missing_payment_method', ['cancel', 'create_invoice', 'pause'] as const);
  const now = core.now(customer);
  const expiresAt = params.integer('expires_at', { min: now + 1800, max: now + DEFAULT_EXPIRY_SECONDS }) ?? now + DEFAULT_EXPIRY_SECONDS;
  const paymentMethodCollection = params.enumValue('payment_method_collection', ['always', 'if_required'] as const) ?? (mode === 'subscription' ? 'always' : null);
  const customerCreation = params.enumValue('customer_creation', ['always', 'if_required'] as const) ?? (mode === 'payment' && !customer ? 'if_required' : null);
  const subtotal = lineItems.reduce((sum, item) => sum + item.amount_subtotal, 0);
  const session = checkoutSessionObject({
    id,
    created: now,
    expiresAt,
    mode,
    currency,
    amountSubtotal: subtotal,
    customer,
    customerEmail,
    clientReferenceId: params.string('client_reference_id', { max: 200 }) ?? null,
    metadata: params.metadata() ?? {},
    successUrl: url(params, 'success_url'),
    cancelUrl: url(params, 'cancel_url'),
    allowPromotionCodes,
    paymentMethodCollection,
    customerCreation,
    discounts: sessionDiscounts,
    url: `${core.hostedBaseUrl}/sandbox/checkout/${id}`,
  });
  if (session.success_url === null) throw missingParam('success_url');
  core.store.insert('checkout.session', session);
  core.store.data.internal.sessionLineItems[id] = lineItems;
  core.store.data.internal.sessionSettings[id] = { subscriptionData: { ...(subscriptionData?.raw ?? {}) }, paymentIntent: null };
  applyAmounts(core, session, sessionDiscounts[0] ?? null, trialDays ?? null);
  return session;
}

function subscriptionDataOf(core: SandboxCore, sessionId: string): { trialDays: number | null; metadata: Record<string, string>; missingPaymentMethod: 'cancel' | 'create_invoice' | 'pause'; description: string | null } {
  const raw = core.store.data.internal.sessionSettings[sessionId]?.subscriptionData ?? {};
  const days = typeof raw.trial_period_days === 'string' ? Number(raw.trial_period_days) : null;
  const metadata = (raw.metadata && typeof raw.metadata === 'object' ? raw.metadata : {}) as Record<string, string>;
  const endBehavior = ((raw.trial_settings as Record<string, unknown> | undefined)?.end_behavior ?? {}) as Record<string, unknown>;
  const missing = endBehavior.missing_payment_method;
  return {
    trialDays: days,
    metadata: { ...metadata },
    missingPaymentMethod: missing === 'cancel' || missing === 'pause' ? missing : 'create_invoice',
    description: typeof raw.description === 'string' ? raw.description : null,
  };
}

/** Totals and per-line discounts for what is due now (nothing during a trial). */
function applyAmounts(core: SandboxCore, session: Stripe.Checkout.Session, discount: Stripe.Checkout.Session.Discount | null, trialDays: number | null): void {
  const lineItems = lineItemsOf(core, session.id);
  const subtotal = lineItems.reduce((sum, item) => sum + item.amount_subtotal, 0);
  const coupon = discount?.coupon ? core.store.get<Stripe.Coupon>('coupon', typeof discount.coupon === 'string' ? discount.coupon : discount.coupon.id) : null;
  const off = coupon ? discountAmount(coupon, subtotal) : 0;
  let left = off;
  lineItems.forEach((item, index) => {
    const share = index === lineItems.length - 1 ? left : Math.min(left, Math.floor((off * item.amount_subtotal) / Math.max(1, subtotal)));
    left -= share;
    item.amount_discount = share;
    item.amount_total = item.amount_subtotal - share;
  });
  session.amount_subtotal = trialDays ? 0 : subtotal;
  session.amount_total = trialDays ? 0 : subtotal - off;
  session.total_details = { amount_discount: trialDays ? 0 : off, amount_shipping: 0, amount_tax: 0 };
}

export function listCheckoutSessions(core: SandboxCore, params: Params) {
  const customer = params.string('customer');
  const subscription = params.string('subscription');
  const paymentIntent = params.string('payment_intent');
  const status = params.string('status');
  return core.store.page<Stripe.Checkout.Session>('checkout.session', '/v1/checkout/sessions', pageParams(params), (session) =>
    (customer === undefined || session.customer === customer) &&
    (subscription === undefined || session.subscription === subscription) &&
    (paymentIntent === undefined || session.payment_intent === paymentIntent) &&
    (status === undefined || session.status === status),
  );
}

export function listLineItems(core: SandboxCore, sessionId: string, params: Params) {
  core.store.get<Stripe.Checkout.Session>('checkout.session', sessionId);
  const items = lineItemsOf(core, sessionId);
  const limit = params.integer('limit', { min: 1, max: 100 }) ?? 10;
  return { object: 'list' as const, data: items.slice(0, limit), has_more: items.length > limit, url: `/v1/checkout/sessions/${sessionId}/line_items` };
}

export function expireSession(core: SandboxCore, session: Stripe.Checkout.Session): Stripe.Checkout.Session {
  if (session.status !== 'open') throw invalidState(`Only open Checkout Sessions can be expired; this one is ${session.status ?? 'closed'}.`);
  const before = structuredClone(session);
  session.status = 'expired';
  session.url = null;
  core.emit('checkout.session.expired', session, changedFields(before, session), typeof session.customer === 'string' ? session.customer : null);
  return session;
}

/** Open sessions whose expiry has passed, for the clock. */
export function expireDueSessions(core: SandboxCore, scope: { testClock: string | null; until: number }): void {
  if (scope.testClock !== null) return;
  for (const session of core.store.all<Stripe.Checkout.Session>('checkout.session', (item) => item.status === 'open' && item.expires_at <= scope.until)) {
    core.at(session.expires_at, () => expireSession(core, session));
  }
}

export interface PayInput {
  readonly card?: string | undefined;
  readonly email?: string | undefined;
  readonly name?: string | undefined;
  readonly promotionCode?: string | undefined;
}

export interface PayResult {
  readonly id: string;
  readonly status: Stripe.Checkout.Session.Status | null;
  readonly paymentStatus: Stripe.Checkout.Session.PaymentStatus;
  readonly outcome: 'succeeded' | 'declined' | 'requires_action';
  readonly paymentIntent: { id: string; status: string } | null;
  readonly subscription: string | null;
  readonly customer: string | null;
  readonly error?: { code: string; declineCode?: string; message: string };
  readonly successUrl: string | null;
}

function result(session: Stripe.Checkout.Session, outcome: PayResult['outcome'], error?: PayResult['error']): PayResult {
  const intentId = typeof session.payment_intent === 'string' ? session.payment_intent : (session.payment_intent?.id ?? null);
  return {
    id: session.id,
    status: session.status,
    paymentStatus: session.payment_status,
    outcome,
    paymentIntent: null,
    subscription: typeof session.subscription === 'string' ? session.subscription : (session.subscription?.id ?? null),
    customer: typeof session.customer === 'string' ? session.customer : (session.customer?.id ?? null),
    ...(error ? { error } : {}),
    successUrl: session.success_url ? session.success_url.replaceAll('{CHECKOUT_SESSION_ID}', session.id) : null,
    ...(intentId ? { paymentIntent: { id: intentId, status: 'unknown' } } : {}),
  };
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * A person paying on the hosted page with a test card: success completes the session
 * (checkout.session.completed) and, in subscription mode, starts the subscription; a
 * decline or a card needing authentication leaves it open and unpaid.
 */
export function payCheckoutSession(core: SandboxCore, settings: BillingSettings, sessionId: string, input: PayInput): PayResult {
  const session = core.store.get<Stripe.Checkout.Session>('checkout.session', sessionId);
  if (session.status === 'complete') throw invalidState('This Checkout Session is already complete.');
  if (session.status === 'expired' || session.expires_at <= core.now()) throw invalidState('This Checkout Session has expired.');
  const existingCustomer = typeof session.customer === 'string' ? core.store.get<Stripe.Customer>('customer', session.customer) : null;
  const email = input.email?.trim() || existingCustomer?.email || session.customer_email || null;
  if (email !== null && !EMAIL.test(email)) throw invalidParam('email', 'Invalid email address', 'email_invalid');
  const subscriptionData = session.mode === 'subscription' ? subscriptionDataOf(core, sessionId) : null;
  const trialDays = subscriptionData?.trialDays ?? null;

  let discount = session.discounts?.[0] ?? null;
  let promotion: ReturnType<typeof resolveDiscount> | undefined;
  if (input.promotionCode) {
    if (!session.allow_promotion_codes) throw invalidParam('promotionCode', 'This Checkout Session does not accept promotion codes.');
    promotion = resolveDiscount(core, { code: input.promotionCode }, 'promotionCode');
    discount = { coupon: promotion.coupon.id, promotion_code: promotion.promotionCode?.id ?? null };
  } else if (discount?.coupon) {
    promotion = resolveDiscount(core, {
      coupon: typeof discount.coupon === 'string' ? discount.coupon : discount.coupon.id,
      ...(discount.promotion_code ? { promotionCode: typeof discount.promotion_code === 'string' ? discount.promotion_code : discount.promotion_code.id } : {}),
    }, 'discounts');
  }
  applyAmounts(core, session, discount, trialDays);
  const amountDue = session.amount_total ?? 0;
  const needsCard = amountDue > 0 || session.payment_method_collection !== 'if_required';
  if (needsCard && !input.card) throw missingParam('card');
  if (input.card) testCard(input.card);

  // Stripe creates the customer when the person confirms, in subscription mode or when asked to.
  let customer = existingCustomer;
  if (!customer && (session.mode === 'subscription' || session.customer_creation === 'always')) {
    customer = customerObject({ id: core.store.newId('customer'), created: core.now(), email, name: input.name ?? null, description: null, phone: null, metadata: {}, testClock: null });
    core.store.insert('customer', customer);
    core.emit('customer.created', customer, undefined, customer.id);
    session.customer = customer.id;
  }
  const customerId = customer?.id ?? null;
  const method = input.card ? createCardPaymentMethod(core, input.card, { customer: null, email, name: input.name ?? null }) : null;
  const before = structuredClone(session);
  session.customer_details = { address: null, business_name: null, email, individual_name: null, name: input.name ?? null, phone: null, tax_exempt: 'none', tax_ids: [] };

  let paidWith: Stripe.PaymentIntent | undefined;
  if (amountDue > 0) {
    const checkoutSettings = core.store.data.internal.sessionSettings[sessionId];
    const earlierIntent = typeof session.payment_intent === 'string' ? session.payment_intent : (checkoutSettings?.paymentIntent ?? null);
    const existingIntent = earlierIntent ? core.store.get<Stripe.PaymentIntent>('payment_intent', earlierIntent) : undefined;
    const intent =
      existingIntent && existingIntent.status !== 'succeeded'
        ? existingIntent
        : newPaymentIntent(core, { customer: customerId, amount: amountDue, currency: session.currency ?? 'usd', description: session.mode === 'subscription' ? 'Subscription creation' : null, metadata: session.mode === 'payment' ? (session.metadata ?? {}) : {} });
    if (session.mode === 'payment') session.payment_intent = intent.id;
    if (checkoutSettings) checkoutSettings.paymentIntent = intent.id;
    intent.amount = amountDue;
    const attempt = attemptPayment(core, intent, method?.id ?? null, { onSession: true, email, name: input.name ?? null });
    if (attempt.outcome !== 'succeeded') {
      const outcome = attempt.outcome === 'requires_action' ? 'requires_action' : 'declined';
      return {
        ...result(session, outcome, outcome === 'declined' ? { code: 'card_declined', declineCode: attempt.declineCode ?? 'generic_decline', message: attempt.message ?? 'Your card was declined.' } : { code: 'authentication_required', message: 'This payment needs the customer to authenticate (3D Secure).' }),
        paymentIntent: { id: intent.id, status: intent.status },
      };
    }
    paidWith = intent;
  } else if (method) {
    const setup = setupAttempt(core.store.data.internal.cards[method.id]?.behaviour as Parameters<typeof setupAttempt>[0]);
    if (setup.outcome !== 'succeeded') {
      const outcome = setup.outcome === 'requires_action' ? 'requires_action' : 'declined';
      return result(session, outcome, outcome === 'declined' ? { code: 'card_declined', declineCode: setup.declineCode ?? 'generic_decline', message: setup.message ?? 'Your card was declined.' } : { code: 'authentication_required', message: 'Saving this card needs the customer to authenticate (3D Secure).' });
    }
  }

  if (method && customerId) attachPaymentMethod(core, method, customerId);
  if (paidWith && customerId) {
    paidWith.customer = customerId;
    const charge = typeof paidWith.latest_charge === 'string' ? core.store.find<Stripe.Charge>('charge', paidWith.latest_charge) : undefined;
    if (charge) charge.customer = customerId;
  }
  if (session.mode === 'subscription' && customer) {
    const started = startSubscription(core, settings, {
      customer,
      items: lineItemsOf(core, sessionId).map((item) => ({ price: item.price as Stripe.Price, quantity: item.quantity ?? 1 })),
      trialDays,
      defaultPaymentMethod: method?.id ?? null,
      metadata: subscriptionData?.metadata ?? {},
      description: subscriptionData?.description ?? null,
      missingPaymentMethod: subscriptionData?.missingPaymentMethod ?? 'create_invoice',
      ...(promotion ? { discount: promotion } : {}),
      ...(paidWith ? { paidWith } : {}),
    });
    session.subscription = started.subscription.id;
    session.invoice = started.invoice.id;
  } else if (promotion) {
    redeem(core, promotion, { customer: customerId, subscription: null, checkoutSession: sessionId }, core.now(customerId));
  }
  session.discounts = discount ? [discount] : [];
  session.status = 'complete';
  session.payment_status = amountDue > 0 ? 'paid' : 'no_payment_required';
  session.url = null;
  core.emit('checkout.session.completed', session, changedFields(before, session), customerId);
  return { ...result(session, 'succeeded'), ...(paidWith ? { paymentIntent: { id: paidWith.id, status: paidWith.status } } : {}) };
}

/** The hosted page's view of a session: what is bought, what is due, what the form may ask. */
export function describeSession(core: SandboxCore, sessionId: string) {
  const session = core.store.get<Stripe.Checkout.Session>('checkout.session', sessionId);
  const trialDays = session.mode === 'subscription' ? subscriptionDataOf(core, sessionId).trialDays : null;
  return {
    session,
    lineItems: lineItemsOf(core, sessionId).map((item) => ({
      description: item.description,
      quantity: item.quantity,
      unitAmount: item.price?.unit_amount ?? 0,
      currency: item.currency,
      interval: item.price?.recurring?.interval ?? null,
    })),
    trialDays,
    amountDue: session.amount_total ?? 0,
    needsCard: (session.amount_total ?? 0) > 0 || session.payment_method_collection !== 'if_required',
  };
}
