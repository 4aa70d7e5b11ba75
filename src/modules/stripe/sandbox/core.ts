import type Stripe from 'stripe';
import type { Clock } from '../../../platform/clock.js';
import type { SandboxStore } from './store.js';
import type { WebhookDelivery } from './webhook-delivery.js';

export type EventType = Stripe.Event['type'];
export type EventObject<T extends EventType> = Extract<Stripe.Event, { type: T }>['data']['object'];

/** The request that caused an event, as Stripe records it. */
export interface RequestContext {
  readonly requestId: string | null;
  readonly idempotencyKey: string | null;
}

const EVENT_RETENTION_SECONDS = 30 * 86_400;

/**
 * What every part of the sandbox shares: the store, the sandbox's time, and events.
 * The sandbox's time is the real clock plus an offset that POST /sandbox/clock/advance
 * moves; customers on a Stripe test clock live at that clock's frozen time instead.
 */
export class SandboxCore {
  private processingAt: number | undefined;
  private batch: string[] | undefined;
  request: RequestContext = { requestId: null, idempotencyKey: null };

  constructor(
    readonly store: SandboxStore,
    readonly clock: Clock,
    readonly delivery: WebhookDelivery,
    readonly apiVersion: string,
    public hostedBaseUrl: string,
  ) {}

  /** Sandbox time in seconds, for a customer's objects when given (test clocks). */
  now(customerId?: string | null): number {
    if (this.processingAt !== undefined) return this.processingAt;
    if (customerId) {
      const clockId = this.testClockOf(customerId);
      if (clockId) {
        const testClock = this.store.find<Stripe.TestHelpers.TestClock>('test_helpers.test_clock', clockId);
        if (testClock) return testClock.frozen_time;
      }
    }
    return this.globalNow();
  }

  globalNow(): number {
    return Math.floor(this.clock.now().getTime() / 1000) + this.store.data.clockOffsetSeconds;
  }

  testClockOf(customerId: string): string | null {
    const customer = this.store.find<Stripe.Customer>('customer', customerId);
    const clock = customer?.test_clock;
    return typeof clock === 'string' ? clock : (clock?.id ?? null);
  }

  /** Runs work as if it happened at `at` (the billing engine replays time in order). */
  at<T>(at: number, work: () => T): T {
    const previous = this.processingAt;
    this.processingAt = at;
    try {
      return work();
    } finally {
      this.processingAt = previous;
    }
  }

  /**
   * Collects the events of one operation, hands them to delivery together (so the
   * out-of-order mode can reverse them) and persists the state once.
   */
  operation<T>(work: () => T): T {
    if (this.batch) return work();
    this.batch = [];
    try {
      const result = work();
      const events = this.batch;
      this.batch = undefined;
      this.store.persist();
      this.delivery.enqueue(events);
      return result;
    } finally {
      if (this.batch) {
        // The work threw: what it changed so far stays (as at Stripe, an error mid-way
        // leaves what was done), and its events are still sent.
        const events = this.batch;
        this.batch = undefined;
        this.store.persist();
        this.delivery.enqueue(events);
      }
    }
  }

  emit<T extends EventType>(type: T, object: EventObject<T>, previousAttributes?: Partial<EventObject<T>>, customerId?: string | null): Stripe.Event {
    const created = this.now(customerId);
    const event = {
      id: this.store.newId('event'),
      object: 'event',
      api_version: this.apiVersion,
      created,
      data: {
        object: structuredClone(object),
        ...(previousAttributes ? { previous_attributes: structuredClone(previousAttributes) } : {}),
      },
      livemode: false,
      pending_webhooks: this.delivery.getMode().duplicate ? 2 : 1,
      request: { id: this.request.requestId, idempotency_key: this.request.idempotencyKey },
      type,
    } as unknown as Stripe.Event;
    this.store.insert('event', event);
    if (this.batch) this.batch.push(event.id);
    else {
      this.store.persist();
      this.delivery.enqueue([event.id]);
    }
    this.pruneEvents(created);
    return event;
  }

  private pruneEvents(now: number): void {
    for (const event of this.store.all<Stripe.Event>('event', (item) => item.created < now - EVENT_RETENTION_SECONDS)) {
      this.store.remove(event.id);
    }
  }
}

/** The fields of `after` that differ from `before`, with their old values (previous_attributes). */
export function changedFields<T extends object>(before: T, after: T): Partial<T> {
  const previous: Partial<T> = {};
  for (const key of Object.keys(after) as Array<keyof T>) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) previous[key] = structuredClone(before[key]);
  }
  return previous;
}
