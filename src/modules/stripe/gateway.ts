import Stripe from 'stripe';
import type { Config } from '../../config/config.js';

/**
 * Every call the service makes to Stripe goes through StripeGateway, implemented once over
 * the official `stripe` package. Pointed at the local sandbox only host, port and protocol
 * change. Each mutating call takes our durable operation id, from which its
 * Idempotency-Key is derived (`bulwark-<operation>-<operationId>`), so a retry after a lost
 * answer - by the client itself or by a later attempt of the same operation - can never
 * create a second object (PAY-9). The service never sees card data: payments happen on
 * Stripe's (or the sandbox's) hosted checkout page (PAY-1).
 */
export interface StripeGateway {
  createCustomer(operationId: string, params: Stripe.CustomerCreateParams): Promise<Stripe.Customer>;
  retrieveCustomer(customerId: string): Promise<Stripe.Customer | Stripe.DeletedCustomer>;
  updateCustomer(operationId: string, customerId: string, params: Stripe.CustomerUpdateParams): Promise<Stripe.Customer>;
  deleteCustomer(operationId: string, customerId: string): Promise<Stripe.DeletedCustomer>;

  /** A product with our own id (e.g. `bulwark_plan_PRO`), created on first use. */
  ensureProduct(params: { id: string; name: string; description?: string; metadata?: Record<string, string> }): Promise<Stripe.Product>;
  findPriceByLookupKey(lookupKey: string): Promise<Stripe.Price | null>;
  /**
   * The active price under a lookup key with this amount, currency and interval; when the
   * catalogue changed the amount, a new price takes over the lookup key.
   */
  ensurePrice(params: EnsurePriceParams): Promise<Stripe.Price>;

  createCheckoutSession(operationId: string, params: Stripe.Checkout.SessionCreateParams): Promise<Stripe.Checkout.Session>;
  retrieveCheckoutSession(sessionId: string, options?: { expand?: string[] }): Promise<Stripe.Checkout.Session>;
  listCheckoutSessions(params: Stripe.Checkout.SessionListParams): Promise<Stripe.ApiList<Stripe.Checkout.Session>>;
  listCheckoutSessionLineItems(sessionId: string): Promise<Stripe.ApiList<Stripe.LineItem>>;
  expireCheckoutSession(operationId: string, sessionId: string): Promise<Stripe.Checkout.Session>;

  retrieveSubscription(subscriptionId: string, options?: { expand?: string[] }): Promise<Stripe.Subscription>;
  listSubscriptions(params: Stripe.SubscriptionListParams): Promise<Stripe.ApiList<Stripe.Subscription>>;
  updateSubscription(operationId: string, subscriptionId: string, params: Stripe.SubscriptionUpdateParams): Promise<Stripe.Subscription>;
  cancelSubscription(operationId: string, subscriptionId: string, params?: Stripe.SubscriptionCancelParams): Promise<Stripe.Subscription>;

  retrieveInvoice(invoiceId: string, options?: { expand?: string[] }): Promise<Stripe.Invoice>;
  listInvoices(params: Stripe.InvoiceListParams): Promise<Stripe.ApiList<Stripe.Invoice>>;
  listInvoicePayments(params: Stripe.InvoicePaymentListParams): Promise<Stripe.ApiList<Stripe.InvoicePayment>>;

  retrievePaymentIntent(paymentIntentId: string, options?: { expand?: string[] }): Promise<Stripe.PaymentIntent>;
  listPaymentIntents(params: Stripe.PaymentIntentListParams): Promise<Stripe.ApiList<Stripe.PaymentIntent>>;
  retrieveCharge(chargeId: string, options?: { expand?: string[] }): Promise<Stripe.Charge>;
  listCharges(params: Stripe.ChargeListParams): Promise<Stripe.ApiList<Stripe.Charge>>;

  /** A full refund without `amount`, a partial one with it. */
  createRefund(operationId: string, params: Stripe.RefundCreateParams): Promise<Stripe.Refund>;
  listRefunds(params: Stripe.RefundListParams): Promise<Stripe.ApiList<Stripe.Refund>>;

  retrieveEvent(eventId: string): Promise<Stripe.Event>;
  listEvents(params: Stripe.EventListParams): Promise<Stripe.ApiList<Stripe.Event>>;

  /**
   * Verifies a webhook's signature against each secret (rotation) and parses the event;
   * `receivedAtMs` is the time the signed timestamp is compared with (the service's clock).
   */
  constructWebhookEvent(
    payload: string | Buffer,
    signatureHeader: string,
    secrets: readonly string[],
    toleranceSeconds?: number,
    receivedAtMs?: number,
  ): Stripe.Event;
}

export interface EnsurePriceParams {
  readonly lookupKey: string;
  readonly productId: string;
  readonly unitAmount: number;
  readonly currency: string;
  readonly recurring?: { readonly interval: Stripe.PriceCreateParams.Recurring.Interval; readonly intervalCount?: number };
  readonly nickname?: string;
  readonly metadata?: Record<string, string>;
}

const OPERATION_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/** The Idempotency-Key of one operation: constant across every attempt of it. */
export function idempotencyKey(operation: string, operationId: string): string {
  if (!OPERATION_ID.test(operationId)) {
    throw new Error(`operation id for ${operation} must be 1-200 characters of letters, digits, _ . : -`);
  }
  return `bulwark-${operation}-${operationId}`;
}

/** The key the gateway presents to the sandbox when no STRIPE_SECRET_KEY is configured (built at run time). */
export const SANDBOX_API_KEY = ['sk', 'test', 'bulwarksandbox'].join('_');

/** The `stripe` client's configuration: host, port and protocol from STRIPE_API_URL; timeout and retries (PAY-9). */
export function stripeClientConfig(stripe: Config['stripe']): Stripe.StripeConfig {
  const config: Stripe.StripeConfig = {
    apiVersion: Stripe.API_VERSION,
    timeout: stripe.timeoutMs,
    maxNetworkRetries: stripe.maxNetworkRetries,
    telemetry: false,
    appInfo: { name: 'bulwark', url: 'https://github.com/bulwark' },
  };
  if (stripe.apiUrl !== undefined) {
    const url = new URL(stripe.apiUrl);
    config.host = url.hostname;
    config.protocol = url.protocol === 'http:' ? 'http' : 'https';
    config.port = url.port !== '' ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
  }
  return config;
}

export function createStripeClient(stripe: Config['stripe']): Stripe {
  const apiKey = stripe.secretKey ?? (stripe.mode === 'sandbox' ? SANDBOX_API_KEY : undefined);
  if (apiKey === undefined) throw new Error('STRIPE_SECRET_KEY is required outside sandbox mode');
  return new Stripe(apiKey, stripeClientConfig(stripe));
}

function expandOption(options?: { expand?: string[] }): { expand?: string[] } {
  return options?.expand ? { expand: options.expand } : {};
}

export class StripeApiGateway implements StripeGateway {
  constructor(readonly client: Stripe) {}

  createCustomer(operationId: string, params: Stripe.CustomerCreateParams) {
    return this.client.customers.create(params, { idempotencyKey: idempotencyKey('customer.create', operationId) });
  }

  retrieveCustomer(customerId: string) {
    return this.client.customers.retrieve(customerId);
  }

  updateCustomer(operationId: string, customerId: string, params: Stripe.CustomerUpdateParams) {
    return this.client.customers.update(customerId, params, { idempotencyKey: idempotencyKey('customer.update', operationId) });
  }

  deleteCustomer(_operationId: string, customerId: string) {
    // DELETE is idempotent by nature at Stripe (a second one answers resource_missing);
    // Stripe accepts idempotency keys on POST only.
    return this.client.customers.del(customerId);
  }

  async ensureProduct(params: { id: string; name: string; description?: string; metadata?: Record<string, string> }) {
    try {
      return await this.client.products.retrieve(params.id);
    } catch (error) {
      if (!(error instanceof Stripe.errors.StripeInvalidRequestError) || error.code !== 'resource_missing') throw error;
    }
    return this.client.products.create(
      { id: params.id, name: params.name, ...(params.description ? { description: params.description } : {}), metadata: params.metadata ?? {} },
      { idempotencyKey: idempotencyKey('product.create', params.id) },
    );
  }

  async findPriceByLookupKey(lookupKey: string) {
    const prices = await this.client.prices.list({ lookup_keys: [lookupKey], active: true, limit: 1 });
    return prices.data[0] ?? null;
  }

  async ensurePrice(params: EnsurePriceParams) {
    const existing = await this.findPriceByLookupKey(params.lookupKey);
    const interval = params.recurring?.interval;
    const intervalCount = params.recurring?.intervalCount ?? 1;
    if (
      existing &&
      existing.unit_amount === params.unitAmount &&
      existing.currency === params.currency.toLowerCase() &&
      (existing.product === params.productId || (typeof existing.product === 'object' && existing.product.id === params.productId)) &&
      (interval === undefined ? existing.recurring === null : existing.recurring?.interval === interval && existing.recurring.interval_count === intervalCount)
    ) {
      return existing;
    }
    const shape = `${params.unitAmount}.${params.currency.toLowerCase()}.${interval ?? 'once'}.${intervalCount}`;
    return this.client.prices.create(
      {
        product: params.productId,
        unit_amount: params.unitAmount,
        currency: params.currency.toLowerCase(),
        lookup_key: params.lookupKey,
        transfer_lookup_key: true,
        ...(params.recurring ? { recurring: { interval: params.recurring.interval, interval_count: intervalCount } } : {}),
        ...(params.nickname ? { nickname: params.nickname } : {}),
        metadata: params.metadata ?? {},
      },
      { idempotencyKey: idempotencyKey('price.create', `${params.lookupKey}.${shape}`.slice(0, 200)) },
    );
  }

  createCheckoutSession(operationId: string, params: Stripe.Checkout.SessionCreateParams) {
    return this.client.checkout.sessions.create(params, { idempotencyKey: idempotencyKey('checkout.create', operationId) });
  }

  retrieveCheckoutSession(sessionId: string, options?: { expand?: string[] }) {
    return this.client.checkout.sessions.retrieve(sessionId, expandOption(options));
  }

  listCheckoutSessions(params: Stripe.Checkout.SessionListParams) {
    return this.client.checkout.sessions.list(params);
  }

  listCheckoutSessionLineItems(sessionId: string) {
    return this.client.checkout.sessions.listLineItems(sessionId, { limit: 100 });
  }

  expireCheckoutSession(operationId: string, sessionId: string) {
    return this.client.checkout.sessions.expire(sessionId, {}, { idempotencyKey: idempotencyKey('checkout.expire', operationId) });
  }

  retrieveSubscription(subscriptionId: string, options?: { expand?: string[] }) {
    return this.client.subscriptions.retrieve(subscriptionId, expandOption(options));
  }

  listSubscriptions(params: Stripe.SubscriptionListParams) {
    return this.client.subscriptions.list(params);
  }

  updateSubscription(operationId: string, subscriptionId: string, params: Stripe.SubscriptionUpdateParams) {
    return this.client.subscriptions.update(subscriptionId, params, { idempotencyKey: idempotencyKey('subscription.update', operationId) });
  }

  cancelSubscription(_operationId: string, subscriptionId: string, params: Stripe.SubscriptionCancelParams = {}) {
    // A DELETE: repeating it answers the already-canceled subscription's error, changing nothing.
    return this.client.subscriptions.cancel(subscriptionId, params);
  }

  retrieveInvoice(invoiceId: string, options?: { expand?: string[] }) {
    return this.client.invoices.retrieve(invoiceId, expandOption(options));
  }

  listInvoices(params: Stripe.InvoiceListParams) {
    return this.client.invoices.list(params);
  }

  listInvoicePayments(params: Stripe.InvoicePaymentListParams) {
    return this.client.invoicePayments.list(params);
  }

  retrievePaymentIntent(paymentIntentId: string, options?: { expand?: string[] }) {
    return this.client.paymentIntents.retrieve(paymentIntentId, expandOption(options));
  }

  listPaymentIntents(params: Stripe.PaymentIntentListParams) {
    return this.client.paymentIntents.list(params);
  }

  retrieveCharge(chargeId: string, options?: { expand?: string[] }) {
    return this.client.charges.retrieve(chargeId, expandOption(options));
  }

  listCharges(params: Stripe.ChargeListParams) {
    return this.client.charges.list(params);
  }

  createRefund(operationId: string, params: Stripe.RefundCreateParams) {
    return this.client.refunds.create(params, { idempotencyKey: idempotencyKey('refund.create', operationId) });
  }

  listRefunds(params: Stripe.RefundListParams) {
    return this.client.refunds.list(params);
  }

  retrieveEvent(eventId: string) {
    return this.client.events.retrieve(eventId);
  }

  listEvents(params: Stripe.EventListParams) {
    return this.client.events.list(params);
  }

  constructWebhookEvent(payload: string | Buffer, signatureHeader: string, secrets: readonly string[], toleranceSeconds = 300, receivedAtMs?: number): Stripe.Event {
    let lastError: unknown = new Error('no webhook secret configured');
    let stale: unknown;
    for (const secret of secrets) {
      try {
        return this.client.webhooks.constructEvent(payload, signatureHeader, secret, toleranceSeconds, undefined, receivedAtMs);
      } catch (error) {
        // A secret whose signature matched but whose timestamp is too old says more than
        // the other secrets' mismatches: report that one.
        if (error instanceof Stripe.errors.StripeSignatureVerificationError && /tolerance/i.test(error.message)) stale ??= error;
        lastError = error;
      }
    }
    throw stale ?? lastError;
  }
}

export function createStripeGateway(stripe: Config['stripe']): StripeApiGateway {
  return new StripeApiGateway(createStripeClient(stripe));
}
