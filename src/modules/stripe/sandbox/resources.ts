import type Stripe from 'stripe';
import type { SandboxCore } from './core.js';
import { changedFields } from './core.js';
import { couponObject, customerObject, priceObject, productObject, promotionCodeObject, testClockObject, type Recurrence } from './objects.js';
import { invalidParam, invalidState, missingParam } from './sandbox-errors.js';
import type { PageParams } from './store.js';
import type { Params } from './wire-format.js';

/** Customers, products, prices, coupons, promotion codes and test clocks: Stripe's plain resources. */

export function pageParams(params: Params): PageParams {
  return {
    limit: params.integer('limit'),
    startingAfter: params.string('starting_after'),
    endingBefore: params.string('ending_before'),
  };
}

/** Stripe's `created[gte]=...` (or `created=<exact>`) range filter. */
export function createdFilter(params: Params): (created: number) => boolean {
  if (params.has('created') && typeof params.raw.created === 'string') {
    const exact = params.integer('created');
    return (created) => created === exact;
  }
  const range = params.object('created');
  if (!range) return () => true;
  const gt = range.integer('gt');
  const gte = range.integer('gte');
  const lt = range.integer('lt');
  const lte = range.integer('lte');
  return (created) =>
    (gt === undefined || created > gt) &&
    (gte === undefined || created >= gte) &&
    (lt === undefined || created < lt) &&
    (lte === undefined || created <= lte);
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function email(params: Params): string | null | undefined {
  const value = params.nullableString('email');
  if (value && (value.length > 512 || !EMAIL.test(value))) throw invalidParam('email', 'Invalid email address: ' + value, 'email_invalid');
  return value;
}

// --- customers ---------------------------------------------------------------

export function createCustomer(core: SandboxCore, params: Params): Stripe.Customer {
  const testClock = params.string('test_clock') ?? null;
  if (testClock) core.store.get('test_helpers.test_clock', testClock, 'test_clock');
  const customer = customerObject({
    id: core.store.newId('customer'),
    created: 0,
    email: email(params) ?? null,
    name: params.nullableString('name') ?? null,
    description: params.nullableString('description') ?? null,
    phone: params.nullableString('phone') ?? null,
    metadata: params.metadata() ?? {},
    testClock,
  });
  core.store.insert('customer', customer);
  customer.created = core.now(customer.id);
  const paymentMethod = params.string('payment_method');
  if (paymentMethod) customer.invoice_settings.default_payment_method = paymentMethod;
  core.emit('customer.created', customer, undefined, customer.id);
  return customer;
}

export function updateCustomer(core: SandboxCore, id: string, params: Params): Stripe.Customer {
  const customer = core.store.get<Stripe.Customer>('customer', id);
  const before = structuredClone(customer);
  const newEmail = email(params);
  if (newEmail !== undefined) customer.email = newEmail;
  for (const field of ['name', 'description', 'phone'] as const) {
    const value = params.nullableString(field);
    if (value !== undefined) customer[field] = value;
  }
  const metadata = params.metadata('metadata', customer.metadata);
  if (metadata) customer.metadata = metadata;
  const invoiceSettings = params.object('invoice_settings');
  const defaultPaymentMethod = invoiceSettings?.nullableString('default_payment_method');
  if (defaultPaymentMethod !== undefined) {
    if (defaultPaymentMethod !== null) {
      const method = core.store.get<Stripe.PaymentMethod>('payment_method', defaultPaymentMethod, 'invoice_settings[default_payment_method]');
      if (method.customer !== id) throw invalidState(`The payment method ${defaultPaymentMethod} is not attached to ${id}.`, 'invoice_settings[default_payment_method]');
    }
    customer.invoice_settings.default_payment_method = defaultPaymentMethod;
  }
  const previous = changedFields(before, customer);
  if (Object.keys(previous).length > 0) core.emit('customer.updated', customer, previous, id);
  return customer;
}

export function deleteCustomer(core: SandboxCore, id: string): Stripe.DeletedCustomer {
  const customer = core.store.get<Stripe.Customer>('customer', id);
  // Deleting a customer cancels its subscriptions at once, as at Stripe.
  for (const subscription of core.store.all<Stripe.Subscription>('subscription', (item) => item.customer === id && item.status !== 'canceled' && item.status !== 'incomplete_expired')) {
    const before = structuredClone(subscription);
    const now = core.now(id);
    subscription.status = 'canceled';
    subscription.canceled_at = now;
    subscription.ended_at = now;
    core.emit('customer.subscription.deleted', subscription, changedFields(before, subscription), id);
  }
  core.store.markDeleted('customer', id);
  core.emit('customer.deleted', customer, undefined, id);
  return { id, object: 'customer', deleted: true };
}

export function listCustomers(core: SandboxCore, params: Params) {
  const wanted = params.string('email');
  const created = createdFilter(params);
  const testClock = params.string('test_clock');
  return core.store.page<Stripe.Customer>('customer', '/v1/customers', pageParams(params), (customer) =>
    (wanted === undefined || customer.email === wanted) &&
    created(customer.created) &&
    (testClock === undefined || customer.test_clock === testClock),
  );
}

// --- products ----------------------------------------------------------------

const CUSTOM_ID = /^[A-Za-z0-9_-]{1,200}$/;

export function createProduct(core: SandboxCore, params: Params): Stripe.Product {
  const id = params.string('id');
  if (id !== undefined && !CUSTOM_ID.test(id)) throw invalidParam('id', 'Invalid product id');
  const product = productObject({
    id: id ?? core.store.newId('product'),
    created: core.now(),
    name: params.requiredString('name', { max: 250 }),
    description: params.nullableString('description') ?? null,
    active: params.boolean('active') ?? true,
    metadata: params.metadata() ?? {},
  });
  core.store.insert('product', product);
  core.emit('product.created', product);
  const priceData = params.object('default_price_data');
  if (priceData) {
    const price = insertPrice(core, priceData, product.id, 'default_price_data');
    product.default_price = price.id;
  }
  return product;
}

export function updateProduct(core: SandboxCore, id: string, params: Params): Stripe.Product {
  const product = core.store.get<Stripe.Product>('product', id);
  const before = structuredClone(product);
  const name = params.string('name');
  if (name !== undefined) product.name = name;
  const description = params.nullableString('description');
  if (description !== undefined) product.description = description;
  const active = params.boolean('active');
  if (active !== undefined) product.active = active;
  const metadata = params.metadata('metadata', product.metadata);
  if (metadata) product.metadata = metadata;
  const defaultPrice = params.string('default_price');
  if (defaultPrice !== undefined) product.default_price = core.store.get<Stripe.Price>('price', defaultPrice, 'default_price').id;
  product.updated = core.now();
  core.emit('product.updated', product, changedFields(before, product));
  return product;
}

export function listProducts(core: SandboxCore, params: Params) {
  const active = params.boolean('active');
  const ids = params.stringArray('ids');
  return core.store.page<Stripe.Product>('product', '/v1/products', pageParams(params), (product) =>
    (active === undefined || product.active === active) && (ids.length === 0 || ids.includes(product.id)),
  );
}

// --- prices ------------------------------------------------------------------

const CURRENCY = /^[a-z]{3}$/;
const INTERVALS = ['day', 'week', 'month', 'year'] as const;

function insertPrice(core: SandboxCore, params: Params, product: string, prefix = ''): Stripe.Price {
  const name = (field: string) => (prefix ? `${prefix}[${field}]` : field);
  const currency = params.requiredString('currency').toLowerCase();
  if (!CURRENCY.test(currency)) throw invalidParam(name('currency'), `Invalid currency: ${currency}`);
  const unitAmount = params.integer('unit_amount', { min: 0, max: 99_999_999 });
  if (unitAmount === undefined) throw missingParam(name('unit_amount'));
  const recurringParams = params.object('recurring');
  let recurring: Recurrence | null = null;
  if (recurringParams) {
    const interval = recurringParams.enumValue('interval', INTERVALS);
    if (!interval) throw missingParam(name('recurring[interval]'));
    recurring = {
      interval,
      intervalCount: recurringParams.integer('interval_count', { min: 1, max: 365 }) ?? 1,
      trialPeriodDays: recurringParams.integer('trial_period_days', { min: 1, max: 730 }) ?? null,
    };
  }
  const lookupKey = params.string('lookup_key', { max: 200 }) ?? null;
  if (lookupKey !== null) {
    const holder = core.store.all<Stripe.Price>('price', (price) => price.lookup_key === lookupKey)[0];
    if (holder) {
      if (params.boolean('transfer_lookup_key') !== true) {
        throw invalidParam(name('lookup_key'), `A price (\`${holder.id}\`) already uses that lookup key.`);
      }
      const before = structuredClone(holder);
      holder.lookup_key = null;
      core.emit('price.updated', holder, changedFields(before, holder));
    }
  }
  const price = priceObject({
    id: core.store.newId('price'),
    created: core.now(),
    product,
    currency,
    unitAmount,
    recurring,
    lookupKey,
    nickname: params.nullableString('nickname') ?? null,
    active: params.boolean('active') ?? true,
    metadata: params.metadata() ?? {},
  });
  core.store.insert('price', price);
  core.emit('price.created', price);
  return price;
}

export function createPrice(core: SandboxCore, params: Params): Stripe.Price {
  const productData = params.object('product_data');
  let product = params.string('product');
  if (product === undefined && productData) {
    product = createProduct(core, productData).id;
  }
  if (product === undefined) throw missingParam('product');
  core.store.get<Stripe.Product>('product', product, 'product');
  return insertPrice(core, params, product);
}

export function updatePrice(core: SandboxCore, id: string, params: Params): Stripe.Price {
  const price = core.store.get<Stripe.Price>('price', id);
  const before = structuredClone(price);
  const active = params.boolean('active');
  if (active !== undefined) price.active = active;
  const nickname = params.nullableString('nickname');
  if (nickname !== undefined) price.nickname = nickname;
  const metadata = params.metadata('metadata', price.metadata);
  if (metadata) price.metadata = metadata;
  const lookupKey = params.nullableString('lookup_key');
  if (lookupKey !== undefined) {
    const holder = lookupKey === null ? undefined : core.store.all<Stripe.Price>('price', (item) => item.lookup_key === lookupKey && item.id !== id)[0];
    if (holder) {
      if (params.boolean('transfer_lookup_key') !== true) throw invalidParam('lookup_key', `A price (\`${holder.id}\`) already uses that lookup key.`);
      holder.lookup_key = null;
    }
    price.lookup_key = lookupKey;
  }
  core.emit('price.updated', price, changedFields(before, price));
  return price;
}

export function listPrices(core: SandboxCore, params: Params) {
  const active = params.boolean('active');
  const product = params.string('product');
  const lookupKeys = params.stringArray('lookup_keys');
  const type = params.enumValue('type', ['one_time', 'recurring'] as const);
  const currency = params.string('currency');
  return core.store.page<Stripe.Price>('price', '/v1/prices', pageParams(params), (price) =>
    (active === undefined || price.active === active) &&
    (product === undefined || price.product === product) &&
    (lookupKeys.length === 0 || (price.lookup_key !== null && lookupKeys.includes(price.lookup_key))) &&
    (type === undefined || price.type === type) &&
    (currency === undefined || price.currency === currency),
  );
}

// --- coupons and promotion codes ---------------------------------------------

export function createCoupon(core: SandboxCore, params: Params): Stripe.Coupon {
  const id = params.string('id');
  if (id !== undefined && !CUSTOM_ID.test(id)) throw invalidParam('id', 'Invalid coupon id');
  const percentOffHundredths = params.hundredths('percent_off', { min: 1, max: 10_000 }) ?? null;
  const amountOff = params.integer('amount_off', { min: 1, max: 99_999_999 }) ?? null;
  if ((percentOffHundredths === null) === (amountOff === null)) {
    throw invalidParam('percent_off', 'You must pass exactly one of percent_off or amount_off.');
  }
  const currency = params.string('currency')?.toLowerCase() ?? null;
  if (amountOff !== null && currency === null) throw missingParam('currency');
  const duration = params.enumValue('duration', ['once', 'repeating', 'forever'] as const) ?? 'once';
  const durationInMonths = params.integer('duration_in_months', { min: 1, max: 120 }) ?? null;
  if (duration === 'repeating' && durationInMonths === null) throw missingParam('duration_in_months');
  const coupon = couponObject({
    id: id ?? core.store.newId('coupon').replace('co_', ''),
    created: core.now(),
    name: params.nullableString('name') ?? null,
    amountOff,
    currency,
    percentOffHundredths,
    duration,
    durationInMonths: duration === 'repeating' ? durationInMonths : null,
    maxRedemptions: params.integer('max_redemptions', { min: 1 }) ?? null,
    redeemBy: params.integer('redeem_by', { min: 0 }) ?? null,
    metadata: params.metadata() ?? {},
  });
  core.store.insert('coupon', coupon);
  core.emit('coupon.created', coupon);
  return coupon;
}

export function deleteCoupon(core: SandboxCore, id: string): Stripe.DeletedCoupon {
  const coupon = core.store.get<Stripe.Coupon>('coupon', id);
  core.store.markDeleted('coupon', id);
  core.emit('coupon.deleted', coupon);
  return { id, object: 'coupon', deleted: true };
}

export function listCoupons(core: SandboxCore, params: Params) {
  return core.store.page<Stripe.Coupon>('coupon', '/v1/coupons', pageParams(params));
}

export function createPromotionCode(core: SandboxCore, params: Params): Stripe.PromotionCode {
  const promotion = params.object('promotion');
  const couponId = promotion?.string('coupon') ?? params.string('coupon');
  if (!couponId) throw missingParam('promotion[coupon]');
  core.store.get<Stripe.Coupon>('coupon', couponId, 'promotion[coupon]');
  const code = params.string('code', { max: 500 }) ?? core.store.newId('promotion_code').slice(6, 14).toUpperCase();
  if (!/^[A-Za-z0-9]+$/.test(code)) throw invalidParam('code', 'Promotion codes may contain letters and digits only.');
  const taken = core.store.all<Stripe.PromotionCode>('promotion_code', (item) => item.active && item.code.toLowerCase() === code.toLowerCase());
  if (taken.length > 0) throw invalidParam('code', `An active promotion code with \`code: ${code}\` already exists.`);
  const customer = params.string('customer') ?? null;
  if (customer) core.store.get('customer', customer, 'customer');
  const promotionCode = promotionCodeObject({
    id: core.store.newId('promotion_code'),
    created: core.now(),
    code,
    coupon: couponId,
    active: params.boolean('active') ?? true,
    customer,
    expiresAt: params.integer('expires_at', { min: 0 }) ?? null,
    maxRedemptions: params.integer('max_redemptions', { min: 1 }) ?? null,
    metadata: params.metadata() ?? {},
  });
  core.store.insert('promotion_code', promotionCode);
  core.emit('promotion_code.created', promotionCode);
  return promotionCode;
}

export function updatePromotionCode(core: SandboxCore, id: string, params: Params): Stripe.PromotionCode {
  const promotionCode = core.store.get<Stripe.PromotionCode>('promotion_code', id);
  const before = structuredClone(promotionCode);
  const active = params.boolean('active');
  if (active !== undefined) promotionCode.active = active;
  const metadata = params.metadata('metadata', promotionCode.metadata ?? {});
  if (metadata) promotionCode.metadata = metadata;
  core.emit('promotion_code.updated', promotionCode, changedFields(before, promotionCode));
  return promotionCode;
}

export function listPromotionCodes(core: SandboxCore, params: Params) {
  const code = params.string('code');
  const active = params.boolean('active');
  const coupon = params.string('coupon');
  return core.store.page<Stripe.PromotionCode>('promotion_code', '/v1/promotion_codes', pageParams(params), (item) =>
    (code === undefined || item.code.toLowerCase() === code.toLowerCase()) &&
    (active === undefined || item.active === active) &&
    (coupon === undefined || item.promotion.coupon === coupon),
  );
}

// --- test clocks -------------------------------------------------------------

export function createTestClock(core: SandboxCore, params: Params): Stripe.TestHelpers.TestClock {
  const frozenTime = params.integer('frozen_time', { min: 0 });
  if (frozenTime === undefined) throw missingParam('frozen_time');
  const clock = testClockObject({
    id: core.store.newId('test_helpers.test_clock'),
    created: core.globalNow(),
    frozenTime,
    name: params.string('name', { max: 300 }) ?? null,
  });
  core.store.insert('test_helpers.test_clock', clock);
  core.emit('test_helpers.test_clock.created', clock);
  return clock;
}

export function deleteTestClock(core: SandboxCore, id: string): Stripe.TestHelpers.DeletedTestClock {
  const clock = core.store.get<Stripe.TestHelpers.TestClock>('test_helpers.test_clock', id);
  // Stripe deletes the clock's customers (and so their subscriptions) with it.
  for (const customer of core.store.all<Stripe.Customer>('customer', (item) => item.test_clock === id)) {
    core.store.markDeleted('customer', customer.id);
  }
  core.store.markDeleted('test_helpers.test_clock', id);
  core.emit('test_helpers.test_clock.deleted', clock);
  return { id, object: 'test_helpers.test_clock', deleted: true };
}

export function listTestClocks(core: SandboxCore, params: Params) {
  return core.store.page<Stripe.TestHelpers.TestClock>('test_helpers.test_clock', '/v1/test_helpers/test_clocks', pageParams(params));
}
