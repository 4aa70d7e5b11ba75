import type Stripe from 'stripe';
import type { SandboxCore } from './core.js';
import { invalidParam } from './sandbox-errors.js';

const MAX_EXPAND_DEPTH = 4;

type Json = Record<string, unknown>;

/** Fields that are not sent unless expanded (Stripe's "includable" fields). */
function virtualField(core: SandboxCore, target: Json, field: string): unknown {
  if (target.object === 'checkout.session' && field === 'line_items') {
    const id = target.id as string;
    const data = (core.store.data.internal.sessionLineItems[id] ?? []) as Stripe.LineItem[];
    return { object: 'list', data, has_more: false, url: `/v1/checkout/sessions/${id}/line_items` };
  }
  if (target.object === 'invoice' && field === 'payments') {
    const id = target.id as string;
    const data = core.store.all<Stripe.InvoicePayment>('invoice_payment', (payment) => payment.invoice === id);
    return { object: 'list', data, has_more: false, url: `/v1/invoice_payments?invoice=${id}` };
  }
  if (target.object === 'customer' && field === 'subscriptions') {
    const id = target.id as string;
    const data = core.store.all<Stripe.Subscription>('subscription', (subscription) => subscription.customer === id && subscription.status !== 'canceled');
    return { object: 'list', data, has_more: false, url: `/v1/customers/${id}/subscriptions` };
  }
  return undefined;
}

function resolve(core: SandboxCore, id: string): unknown {
  return core.store.byId(id)?.value;
}

function apply(core: SandboxCore, target: unknown, segments: string[], path: string): void {
  if (segments.length === 0 || target === null || typeof target !== 'object') return;
  if (Array.isArray(target)) {
    for (const item of target) apply(core, item, segments, path);
    return;
  }
  const record = target as Json;
  const [head, ...rest] = segments as [string, ...string[]];
  if (record.object === 'list' && Array.isArray(record.data) && head === 'data') {
    apply(core, record.data, rest, path);
    return;
  }
  let value = record[head];
  if (value === undefined) {
    value = virtualField(core, record, head);
    if (value === undefined) throw invalidParam('expand', `This property cannot be expanded (${head}).`);
    record[head] = value;
  }
  if (typeof value === 'string') {
    const found = resolve(core, value);
    if (found !== undefined) {
      value = structuredClone(found);
      record[head] = value;
    }
  } else if (Array.isArray(value)) {
    value = value.map((item) => {
      if (typeof item !== 'string') return item;
      const found = resolve(core, item);
      return found === undefined ? item : structuredClone(found);
    });
    record[head] = value;
  }
  apply(core, value, rest, path);
}

/** Stripe's `expand`: ids replaced by their objects, up to four levels deep (`data.` for lists). */
export function expandResult(core: SandboxCore, result: unknown, paths: readonly string[]): unknown {
  if (paths.length === 0) return result;
  const copy = structuredClone(result);
  for (const path of paths) {
    const segments = path.split('.');
    const depth = segments.filter((segment) => segment !== 'data').length;
    if (depth > MAX_EXPAND_DEPTH) throw invalidParam('expand', `You cannot expand more than ${MAX_EXPAND_DEPTH} levels of a property.`);
    apply(core, copy, segments, path);
  }
  return copy;
}
