import type Stripe from 'stripe';

/**
 * How the service's own Stripe objects are recognised in webhooks. The checkout code
 * that creates sessions and products (issue 8) must use the same names.
 */

/** Metadata key on a credit-pack checkout session (payment mode): the pack id from the catalogue. */
export const CREDIT_PACK_METADATA_KEY = 'bulwark_credit_pack';
/**
 * Metadata key naming the account the session was created for. Informational only: credits
 * and plans go to the account that owns the session's Stripe customer (accounts.stripe_customer_id),
 * never to an account named in metadata (OWN-1 / WH-6).
 */
export const ACCOUNT_METADATA_KEY = 'bulwark_account';
/** Products of plans have our own id: `bulwark_plan_<PLAN ID>` (the gateway's ensureProduct). */
export const PLAN_PRODUCT_PREFIX = 'bulwark_plan_';
/** Alternatively, a price may carry the plan id in its metadata. */
export const PLAN_METADATA_KEY = 'bulwark_plan';

const PLAN_ID = /^[A-Z][A-Z0-9_]{1,31}$/;

/** The id of an expandable Stripe field: the string itself, or the expanded object's id. */
export function stripeIdOf(value: string | { readonly id: string } | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : value.id;
}

/** Our plan id for a subscription item's price, or null when the price is not one of ours. */
export function planIdOfPrice(price: Stripe.Price): string | null {
  const fromMetadata = price.metadata?.[PLAN_METADATA_KEY];
  if (fromMetadata !== undefined && PLAN_ID.test(fromMetadata)) return fromMetadata;
  const productId = stripeIdOf(price.product as string | { id: string } | null);
  if (productId?.startsWith(PLAN_PRODUCT_PREFIX)) {
    const planId = productId.slice(PLAN_PRODUCT_PREFIX.length);
    if (PLAN_ID.test(planId)) return planId;
  }
  return null;
}
