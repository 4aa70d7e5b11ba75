import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { loadConfig } from '../../src/config/config.js';
import { createStripeGateway, type StripeApiGateway } from '../../src/modules/stripe/gateway.js';
import { startStripeSandbox, type StripeSandbox, type StripeSandboxOptions } from '../../src/modules/stripe/sandbox/sandbox-server.js';

/** A webhook secret made at run time (the secret scan refuses committed ones). */
export function testWebhookSecret(): string {
  return ['whsec', randomBytes(24).toString('hex')].join('_');
}

/** The gateway exactly as the service builds it from its configuration, pointed at `url`. */
export function gatewayFor(url: string, env: Record<string, string> = {}): StripeApiGateway {
  const config = loadConfig({ NODE_ENV: 'test', STRIPE_MODE: 'sandbox', STRIPE_API_URL: url, ...env });
  return createStripeGateway(config.stripe);
}

export interface ReceivedWebhook {
  readonly body: string;
  readonly signature: string;
  readonly event: Stripe.Event;
}

/**
 * A small webhook endpoint that verifies each delivery with stripe.webhooks.constructEvent
 * and the secret, as the service's endpoint will; it can fail the first N deliveries.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  readonly rejected: string[] = [];
  failNext = 0;
  url = '';
  private readonly server: http.Server;
  private readonly waiters: Array<{ predicate: () => boolean; resolve: () => void }> = [];

  constructor(private readonly secret: string) {
    this.server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const signature = String(request.headers['stripe-signature'] ?? '');
        if (this.failNext > 0) {
          this.failNext -= 1;
          response.writeHead(503).end();
          return;
        }
        try {
          const event = Stripe.webhooks.constructEvent(body, signature, this.secret);
          this.received.push({ body, signature, event });
          response.writeHead(200, { 'Content-Type': 'application/json' }).end('{"received":true}');
        } catch (error) {
          this.rejected.push(error instanceof Error ? error.message : String(error));
          response.writeHead(400).end();
        }
        this.check();
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhooks`;
    return this;
  }

  types(): string[] {
    return this.received.map((item) => item.event.type);
  }

  /** Waits (bounded) until the predicate holds over what was received. */
  async until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`webhooks did not arrive; got: ${this.types().join(', ')}`)), timeoutMs);
      this.waiters.push({
        predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  private check(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.predicate()) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

export interface SandboxHarness {
  readonly sandbox: StripeSandbox;
  readonly gateway: StripeApiGateway;
  readonly stripe: Stripe;
  readonly receiver: WebhookReceiver;
  readonly secret: string;
  /** Calls a sandbox control route (the JSON API under /_sandbox/ that /sandbox/* forwards to). */
  control<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** A sandbox on an ephemeral port, a verifying webhook receiver, and the service's gateway pointed at it. */
export async function startSandboxHarness(options: StripeSandboxOptions = {}, env: Record<string, string> = {}): Promise<SandboxHarness> {
  const secret = options.webhookSecret ?? testWebhookSecret();
  const receiver = await new WebhookReceiver(secret).start();
  const sandbox = await startStripeSandbox({ webhookUrl: receiver.url, webhookSecret: secret, webhookRetryDelaysMs: [50, 100, 200], ...options });
  const gateway = gatewayFor(sandbox.url, env);
  return {
    sandbox,
    gateway,
    stripe: gateway.client,
    receiver,
    secret,
    async control<T>(method: 'GET' | 'POST', path: string, body?: unknown) {
      const response = await fetch(`${sandbox.url}${path}`, {
        method,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}),
      });
      return { status: response.status, body: (await response.json()) as T };
    },
    async close() {
      await sandbox.close();
      await receiver.close();
    },
  };
}
