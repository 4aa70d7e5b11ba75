import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { invalidParam, resourceMissing } from './sandbox-errors.js';

/** The kinds of object the sandbox keeps, by Stripe's `object` value. */
export type ObjectKind =
  | 'customer'
  | 'product'
  | 'price'
  | 'checkout.session'
  | 'subscription'
  | 'invoice'
  | 'invoice_payment'
  | 'payment_intent'
  | 'charge'
  | 'refund'
  | 'event'
  | 'coupon'
  | 'promotion_code'
  | 'payment_method'
  | 'discount'
  | 'test_helpers.test_clock';

/** Stripe's id prefixes; coupons and products may also carry ids the caller chose. */
export const ID_PREFIXES: Record<ObjectKind, string> = {
  customer: 'cus',
  product: 'prod',
  price: 'price',
  'checkout.session': 'cs_test',
  subscription: 'sub',
  invoice: 'in',
  invoice_payment: 'inpay',
  payment_intent: 'pi',
  charge: 'ch',
  refund: 're',
  event: 'evt',
  coupon: 'co',
  promotion_code: 'promo',
  payment_method: 'pm',
  discount: 'di',
  'test_helpers.test_clock': 'clock',
};

const NOUNS: Record<ObjectKind, string> = {
  customer: 'customer',
  product: 'product',
  price: 'price',
  'checkout.session': 'checkout.session',
  subscription: 'subscription',
  invoice: 'invoice',
  invoice_payment: 'invoice_payment',
  payment_intent: 'payment_intent',
  charge: 'charge',
  refund: 'refund',
  event: 'event',
  coupon: 'coupon',
  promotion_code: 'promotion_code',
  payment_method: 'PaymentMethod',
  discount: 'discount',
  'test_helpers.test_clock': 'test_clock',
};

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A Stripe-looking id: prefix, underscore, 24 base62 characters (about 143 random bits). */
export function stripeId(prefix: string): string {
  const bytes = randomBytes(24);
  let body = '';
  for (const byte of bytes) body += ALPHABET[byte % 62];
  return `${prefix}_${body}`;
}

interface Row {
  kind: ObjectKind;
  seq: number;
  deleted?: boolean;
  value: unknown;
}

export interface IdempotencyRecord {
  fingerprint: string;
  status: number;
  body: string;
  createdAtMs: number;
}

/** Sandbox-only facts that are not part of any Stripe object. */
export interface InternalState {
  /** The test-card behaviour behind each payment method (never the card number). */
  cards: Record<string, { behaviour: string; last4: string; brand: string }>;
  /** Checkout line items, by session id. */
  sessionLineItems: Record<string, unknown[]>;
  /** Checkout settings that are not fields of the session: subscription_data, the payment intent of subscription mode. */
  sessionSettings: Record<string, { subscriptionData: Record<string, unknown>; paymentIntent: string | null }>;
  /** Billing engine state, by subscription id. */
  subscriptions: Record<string, SubscriptionInternal>;
}

export interface PendingLine {
  description: string;
  amount: number;
  priceId: string;
  subscriptionItemId: string;
  periodStart: number;
  periodEnd: number;
  proration: boolean;
}

export interface SubscriptionInternal {
  /** The anchor periods are counted from, and how many have started since. */
  anchor: number;
  periodIndex: number;
  trialWillEndSent: boolean;
  pendingLines: PendingLine[];
}

export interface DeliveryRecord {
  id: string;
  eventId: string;
  attempts: number;
  /** Real time (ms) at which the next attempt may start. */
  dueAtMs: number;
  state: 'pending' | 'delivered' | 'failed';
  lastStatus: number | null;
  lastError: string | null;
}

export interface SandboxState {
  version: 1;
  /** Sandbox time = real time + this offset (POST /sandbox/clock/advance moves it). */
  clockOffsetSeconds: number;
  seq: number;
  rows: Record<string, Row>;
  idempotency: Record<string, IdempotencyRecord>;
  internal: InternalState;
  deliveries: DeliveryRecord[];
}

function emptyState(): SandboxState {
  return {
    version: 1,
    clockOffsetSeconds: 0,
    seq: 0,
    rows: {},
    idempotency: {},
    internal: { cards: {}, sessionLineItems: {}, sessionSettings: {}, subscriptions: {} },
    deliveries: [],
  };
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  url: string;
}

export interface PageParams {
  limit?: number | undefined;
  startingAfter?: string | undefined;
  endingBefore?: string | undefined;
}

/**
 * Every object the sandbox holds, in one JSON document. With a file, each change is
 * written atomically (write to a temporary file, then rename over the old one), so a
 * crash leaves either the old or the new state, never half of one.
 */
export class SandboxStore {
  private state: SandboxState;

  constructor(private readonly file: string | undefined) {
    this.state = file && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SandboxState) : emptyState();
    if (this.state.version !== 1) throw new Error(`unsupported sandbox state version in ${file}`);
  }

  get data(): SandboxState {
    return this.state;
  }

  persist(): void {
    if (!this.file) return;
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(temporary, this.file);
  }

  newId(kind: ObjectKind): string {
    return stripeId(ID_PREFIXES[kind]);
  }

  insert<T extends { id: string }>(kind: ObjectKind, value: T): T {
    if (this.state.rows[value.id]) throw invalidParam('id', `A ${NOUNS[kind]} with id ${value.id} already exists.`, 'resource_already_exists');
    this.state.seq += 1;
    this.state.rows[value.id] = { kind, seq: this.state.seq, value };
    return value;
  }

  find<T>(kind: ObjectKind, id: string): T | undefined {
    const row = this.state.rows[id];
    if (!row || row.kind !== kind || row.deleted) return undefined;
    return row.value as T;
  }

  get<T>(kind: ObjectKind, id: string, param = 'id'): T {
    const found = this.find<T>(kind, id);
    if (!found) throw resourceMissing(NOUNS[kind], id, param);
    return found;
  }

  /** The object behind an id of any kind (for expand). */
  byId(id: string): { kind: ObjectKind; value: unknown } | undefined {
    const row = this.state.rows[id];
    if (!row || row.deleted) return undefined;
    return { kind: row.kind, value: row.value };
  }

  markDeleted(kind: ObjectKind, id: string): void {
    const row = this.state.rows[id];
    if (row && row.kind === kind) row.deleted = true;
  }

  remove(id: string): void {
    delete this.state.rows[id];
  }

  all<T>(kind: ObjectKind, filter: (value: T) => boolean = () => true): T[] {
    const rows = Object.values(this.state.rows)
      .filter((row) => row.kind === kind && !row.deleted)
      .sort((a, b) => b.seq - a.seq);
    return rows.map((row) => row.value as T).filter(filter);
  }

  /** Stripe's cursor pagination, newest first: limit 1-100 (default 10), starting_after / ending_before. */
  page<T extends { id: string }>(kind: ObjectKind, url: string, params: PageParams, filter?: (value: T) => boolean): ListPage<T> {
    return paginate(this.all<T>(kind, filter), url, params);
  }
}

export function paginate<T extends { id: string }>(items: T[], url: string, params: PageParams): ListPage<T> {
  const limit = params.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw invalidParam('limit', 'This value must be greater than or equal to 1 and less than or equal to 100.');
  }
  if (params.startingAfter !== undefined && params.endingBefore !== undefined) {
    throw invalidParam('starting_after', 'You may only specify one of these parameters: ending_before, starting_after.');
  }
  let window = items;
  if (params.startingAfter !== undefined) {
    const index = items.findIndex((item) => item.id === params.startingAfter);
    if (index === -1) throw invalidParam('starting_after', `No such object: '${params.startingAfter}'`, 'resource_missing');
    window = items.slice(index + 1);
    return { object: 'list', data: window.slice(0, limit), has_more: window.length > limit, url };
  }
  if (params.endingBefore !== undefined) {
    const index = items.findIndex((item) => item.id === params.endingBefore);
    if (index === -1) throw invalidParam('ending_before', `No such object: '${params.endingBefore}'`, 'resource_missing');
    window = items.slice(0, index);
    const start = Math.max(0, window.length - limit);
    return { object: 'list', data: window.slice(start), has_more: start > 0, url };
  }
  return { object: 'list', data: window.slice(0, limit), has_more: window.length > limit, url };
}
