import type Stripe from 'stripe';
import { advanceBilling, AFTER_FAILED_RETRIES, cancelSubscription, createSubscription, DEFAULT_RETRY_DAYS, listInvoicePayments, listInvoices, listSubscriptions, payInvoice, updateSubscription, type BillingSettings } from './billing.js';
import { createCheckoutSession, describeSession, expireDueSessions, expireSession, listCheckoutSessions, listLineItems, payCheckoutSession } from './checkout.js';
import { changedFields, type SandboxCore } from './core.js';
import * as payments from './payments.js';
import { ControlError, controlRoute, type ControlContext, type SandboxModule, type StripeSandboxOptions } from './sandbox-server.js';
import { id, route, type ApiRoute } from './api-routes.js';
import { invalidState } from './sandbox-errors.js';


function optionalString(body: Record<string, unknown>, key: string, max = 500): string | undefined {
  const value = body[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > max) throw new ControlError(400, `${key}: must be a string of at most ${max} characters`);
  return value;
}

function requiredCard(body: Record<string, unknown>): string {
  const card = optionalString(body, 'card', 32);
  if (card === undefined) throw new ControlError(400, 'card: required (a Stripe test card number such as 4242 4242 4242 4242)');
  return card;
}

/** POST /sandbox/customers/:id/payment-method: the customer switches to another card, used from now on. */
function switchCard(core: SandboxCore, customerId: string, card: string): { customer: string; paymentMethod: string } {
  return core.operation(() => {
    const customer = core.store.get<Stripe.Customer>('customer', customerId);
    const method = payments.createCardPaymentMethod(core, card, { customer: customerId, email: customer.email, name: customer.name ?? null });
    const before = structuredClone(customer);
    customer.invoice_settings.default_payment_method = method.id;
    core.emit('customer.updated', customer, changedFields(before, customer), customerId);
    for (const subscription of core.store.all<Stripe.Subscription>('subscription', (item) => item.customer === customerId && item.status !== 'canceled')) {
      const previous = structuredClone(subscription);
      subscription.default_payment_method = method.id;
      core.emit('customer.subscription.updated', subscription, changedFields(previous, subscription), customerId);
    }
    return { customer: customerId, paymentMethod: method.id };
  });
}

/** Checkout, payments, refunds, subscriptions, invoices and the clock. */
export function DEFAULT_MODULES(options: StripeSandboxOptions): SandboxModule[] {
  const afterFailedRetries = options.afterFailedRetries ?? 'cancel';
  if (!AFTER_FAILED_RETRIES.includes(afterFailedRetries)) throw new Error(`afterFailedRetries: one of ${AFTER_FAILED_RETRIES.join(', ')}, not ${String(afterFailedRetries)}`);
  const settings: BillingSettings = { retryDays: options.dunningRetryDays ?? DEFAULT_RETRY_DAYS, afterFailedRetries };
  const routes: ApiRoute[] = [
    route('POST', '/v1/checkout/sessions', ({ core, params }) => createCheckoutSession(core, params)),
    route('GET', '/v1/checkout/sessions', ({ core, params }) => listCheckoutSessions(core, params)),
    route('GET', '/v1/checkout/sessions/:id', (context) => context.core.store.get('checkout.session', id(context))),
    route('GET', '/v1/checkout/sessions/:id/line_items', (context) => listLineItems(context.core, id(context), context.params)),
    route('POST', '/v1/checkout/sessions/:id/expire', (context) => expireSession(context.core, context.core.store.get('checkout.session', id(context)))),

    route('GET', '/v1/payment_intents', ({ core, params }) => payments.listPaymentIntents(core, params)),
    route('GET', '/v1/payment_intents/:id', (context) => context.core.store.get('payment_intent', id(context))),
    route('GET', '/v1/charges', ({ core, params }) => payments.listCharges(core, params)),
    route('GET', '/v1/charges/:id', (context) => context.core.store.get('charge', id(context))),
    route('GET', '/v1/payment_methods', ({ core, params }) => payments.listPaymentMethods(core, params)),
    route('GET', '/v1/payment_methods/:id', (context) => context.core.store.get('payment_method', id(context))),
    route('POST', '/v1/refunds', ({ core, params }) => payments.createRefund(core, params)),
    route('GET', '/v1/refunds', ({ core, params }) => payments.listRefunds(core, params)),
    route('GET', '/v1/refunds/:id', (context) => context.core.store.get('refund', id(context))),

    route('POST', '/v1/subscriptions', ({ core, params }) => createSubscription(core, settings, params)),
    route('GET', '/v1/subscriptions', ({ core, params }) => listSubscriptions(core, params)),
    route('GET', '/v1/subscriptions/:id', (context) => context.core.store.get('subscription', id(context))),
    route('POST', '/v1/subscriptions/:id', (context) => updateSubscription(context.core, settings, id(context), context.params)),
    route('DELETE', '/v1/subscriptions/:id', (context) => cancelSubscription(context.core, id(context), context.params)),

    route('GET', '/v1/invoices', ({ core, params }) => listInvoices(core, params)),
    route('GET', '/v1/invoices/:id', (context) => context.core.store.get('invoice', id(context))),
    route('POST', '/v1/invoices/:id/pay', (context) => payInvoice(context.core, settings, id(context), context.params)),
    route('GET', '/v1/invoice_payments', ({ core, params }) => listInvoicePayments(core, params)),
    route('GET', '/v1/invoice_payments/:id', (context) => context.core.store.get('invoice_payment', id(context))),

    route('POST', '/v1/test_helpers/test_clocks/:id/advance', ({ core, params, path }) => {
      const clock = core.store.get<Stripe.TestHelpers.TestClock>('test_helpers.test_clock', path.id as string);
      const frozenTime = params.integer('frozen_time', { min: clock.frozen_time + 1 });
      if (frozenTime === undefined) throw invalidState('frozen_time must be later than the clock\'s current time.', 'frozen_time');
      advanceBilling(core, settings, { testClock: clock.id, until: frozenTime });
      clock.frozen_time = frozenTime;
      clock.status = 'ready';
      core.emit('test_helpers.test_clock.ready', clock);
      return clock;
    }),
  ];
  const controls = [
    controlRoute('GET', '/_sandbox/checkout/:id', ({ sandbox, path }: ControlContext) => describeSession(sandbox.core, path.id as string)),
    controlRoute('POST', '/_sandbox/checkout/:id/pay', ({ sandbox, path, body }: ControlContext) =>
      sandbox.core.operation(() =>
        payCheckoutSession(sandbox.core, settings, path.id as string, {
          card: optionalString(body, 'card', 32),
          email: optionalString(body, 'email', 254),
          name: optionalString(body, 'name', 200),
          promotionCode: optionalString(body, 'promotionCode', 100),
        }),
      ),
    ),
    controlRoute('POST', '/_sandbox/customers/:id/payment-method', ({ sandbox, path, body }: ControlContext) => switchCard(sandbox.core, path.id as string, requiredCard(body))),
  ];
  return [
    {
      routes,
      controls,
      advance: (core, scope) => {
        expireDueSessions(core, scope);
        advanceBilling(core, settings, scope);
      },
    },
  ];
}
