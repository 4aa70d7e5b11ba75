import { createHmac } from 'node:crypto';
import type { Clock } from '../../../platform/clock.js';
import type { DeliveryRecord, SandboxStore } from './store.js';
import { stripeId } from './store.js';

/** Stripe's signature header: `t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">`. */
export function signatureHeader(payload: string, secret: string, timestampSeconds: number): string {
  const signature = createHmac('sha256', secret).update(`${timestampSeconds}.${payload}`, 'utf8').digest('hex');
  return `t=${timestampSeconds},v1=${signature}`;
}

export interface DeliveryMode {
  /** Deliver every event twice. */
  duplicate: boolean;
  /** Deliver the events of one operation in reverse order. */
  outOfOrder: boolean;
}

export interface WebhookDeliveryOptions {
  readonly store: SandboxStore;
  /** Real time: signatures carry it, because receivers compare it with their own clock. */
  readonly clock: Clock;
  readonly secret: string | undefined;
  /** Waits between attempts; one attempt more than there are delays, then the delivery fails. */
  readonly retryDelaysMs: readonly number[];
  readonly requestTimeoutMs: number;
  readonly onError?: (error: unknown) => void;
}

/**
 * Sends events to the webhook endpoint one at a time, in the order they happened, each
 * signed like Stripe signs; a failed attempt (no 2xx, or no answer) is retried after the
 * next delay while later events go on. Pending deliveries are part of the persisted state.
 */
export class WebhookDelivery {
  private target: string | undefined;
  private mode: DeliveryMode = { duplicate: false, outOfOrder: false };
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private waiters: Array<() => void> = [];

  constructor(private readonly options: WebhookDeliveryOptions) {}

  get url(): string | undefined {
    return this.target;
  }

  setTarget(url: string | undefined): void {
    this.target = url;
    this.kick();
  }

  setMode(mode: Partial<DeliveryMode>): DeliveryMode {
    this.mode = { ...this.mode, ...mode };
    return this.mode;
  }

  getMode(): DeliveryMode {
    return this.mode;
  }

  /** Queues the events of one operation (in the order they happened). */
  enqueue(eventIds: readonly string[]): void {
    if (eventIds.length === 0) return;
    const ordered = this.mode.outOfOrder ? [...eventIds].reverse() : [...eventIds];
    const now = this.options.clock.now().getTime();
    const copies = this.mode.duplicate ? 2 : 1;
    for (const eventId of ordered) {
      for (let copy = 0; copy < copies; copy += 1) {
        this.options.store.data.deliveries.push({
          id: stripeId('whdel'),
          eventId,
          attempts: 0,
          dueAtMs: now,
          state: 'pending',
          lastStatus: null,
          lastError: null,
        });
      }
    }
    this.kick();
  }

  pending(): DeliveryRecord[] {
    return this.options.store.data.deliveries.filter((delivery) => delivery.state === 'pending');
  }

  /** Resolves once nothing is pending (delivered or given up), or after timeoutMs. */
  async settle(timeoutMs: number): Promise<boolean> {
    if (this.pending().length === 0 && !this.running) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter !== done);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private kick(): void {
    if (this.running || this.closed) return;
    void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      for (;;) {
        if (this.closed || this.target === undefined) break;
        const now = this.options.clock.now().getTime();
        const next = this.pending().find((delivery) => delivery.dueAtMs <= now);
        if (!next) break;
        await this.attempt(next, this.target);
      }
    } catch (error) {
      this.options.onError?.(error);
    } finally {
      this.running = false;
    }
    const pending = this.pending();
    if (pending.length === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const waiter of waiters) waiter();
      return;
    }
    if (this.closed || this.target === undefined) return;
    const earliest = Math.min(...pending.map((delivery) => delivery.dueAtMs));
    const wait = Math.max(0, earliest - this.options.clock.now().getTime());
    this.timer = setTimeout(() => this.kick(), wait);
    this.timer.unref();
  }

  private async attempt(delivery: DeliveryRecord, url: string): Promise<void> {
    const { store } = this.options;
    const event = store.byId(delivery.eventId)?.value as { pending_webhooks: number } | undefined;
    if (!event) {
      delivery.state = 'failed';
      delivery.lastError = 'event no longer exists';
      store.persist();
      return;
    }
    const payload = JSON.stringify(event, null, 2);
    const timestamp = Math.floor(this.options.clock.now().getTime() / 1000);
    delivery.attempts += 1;
    let ok = false;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json; charset=utf-8',
          'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          ...(this.options.secret ? { 'Stripe-Signature': signatureHeader(payload, this.options.secret, timestamp) } : {}),
        },
        body: payload,
        signal: AbortSignal.timeout(this.options.requestTimeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      delivery.lastStatus = response.status;
      delivery.lastError = null;
      ok = response.status >= 200 && response.status < 300;
    } catch (error) {
      delivery.lastStatus = null;
      delivery.lastError = error instanceof Error ? error.message : String(error);
    }
    if (ok) {
      delivery.state = 'delivered';
      event.pending_webhooks = Math.max(0, event.pending_webhooks - 1);
    } else {
      const delay = this.options.retryDelaysMs[delivery.attempts - 1];
      if (delay === undefined) {
        delivery.state = 'failed';
      } else {
        delivery.dueAtMs = this.options.clock.now().getTime() + delay;
      }
    }
    // Keep the record small: drop finished deliveries beyond the last thousand.
    const finished = store.data.deliveries.filter((item) => item.state !== 'pending');
    if (finished.length > 1000) {
      const drop = new Set(finished.slice(0, finished.length - 1000).map((item) => item.id));
      store.data.deliveries = store.data.deliveries.filter((item) => !drop.has(item.id));
    }
    store.persist();
  }
}
