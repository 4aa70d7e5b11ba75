import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Stripe from 'stripe';
import { systemClock, type Clock } from '../../../platform/clock.js';
import { BASE_ROUTES, compileTemplate, matchRoute, type ApiRoute } from './api-routes.js';
import type { AfterFailedRetries } from './billing.js';
import { SandboxCore } from './core.js';
import { expandResult } from './expand.js';
import { StripeApiError } from './sandbox-errors.js';
import { DEFAULT_MODULES } from './modules.js';
import { SandboxStore } from './store.js';
import { WebhookDelivery, type DeliveryMode } from './webhook-delivery.js';
import { Params, parseStripeForm, type WireObject } from './wire-format.js';

export const SANDBOX_STATE_FILE = 'stripe-sandbox.json';
const MAX_BODY_BYTES = 1024 * 1024;
const IDEMPOTENCY_RETENTION_MS = 24 * 3_600_000;

export interface StripeSandboxOptions {
  /** 0 for an ephemeral port (tests); the service uses STRIPE_SANDBOX_PORT. */
  readonly port?: number;
  readonly host?: string;
  /** State is kept in DATA_DIR/stripe-sandbox.json; without a folder, in memory only. */
  readonly dataDir?: string;
  /** Where events are POSTed; settable later (the service knows its own URL once it listens). */
  readonly webhookUrl?: string;
  /** The whsec_ secret events are signed with (the service's first STRIPE_WEBHOOK_SECRET). */
  readonly webhookSecret?: string;
  /** Base URL of the hosted checkout page (the service's own URL; pages are under /sandbox/checkout/). */
  readonly hostedBaseUrl?: string;
  /** Real time; the sandbox's own time is this plus what POST /sandbox/clock/advance added. */
  readonly clock?: Clock;
  /** When set, the only API key the sandbox accepts; otherwise any test-mode key. */
  readonly apiKey?: string;
  /** Waits between webhook delivery attempts (default: 1 s, 5 s, 30 s, 2 min, 10 min, 1 h). */
  readonly webhookRetryDelaysMs?: readonly number[];
  readonly webhookTimeoutMs?: number;
  /** Days between failed renewal attempts (default Stripe's recommended 8 tries within 2 weeks). */
  readonly dunningRetryDays?: readonly number[];
  /**
   * What happens when the last retry of a failed invoice fails (Stripe's "Manage failed
   * payments" setting): 'cancel' the subscription (the default), mark it 'unpaid', or leave
   * it 'past_due'.
   */
  readonly afterFailedRetries?: AfterFailedRetries;
  readonly onError?: (error: unknown) => void;
}

export interface Fault {
  /**
   * `before`: drop the connection without doing anything; `after`: do the work, then drop
   * it unanswered; `hang`: do nothing and never answer (the client's timeout ends it).
   */
  readonly when: 'before' | 'after' | 'hang';
  readonly method?: string;
  readonly pathPrefix?: string;
  remaining: number;
}

export interface ControlContext {
  readonly sandbox: StripeSandbox;
  readonly body: Record<string, unknown>;
  readonly path: Readonly<Record<string, string>>;
}

export interface ControlRoute {
  readonly method: 'GET' | 'POST';
  readonly pattern: RegExp;
  readonly names: readonly string[];
  readonly handler: (context: ControlContext) => unknown;
}

/** A plug-in set of API routes and control routes (checkout, billing) added to the server. */
export interface SandboxModule {
  readonly routes: readonly ApiRoute[];
  readonly controls: readonly ControlRoute[];
  /** Runs the module's time-driven work up to the sandbox's current time (the billing engine). */
  readonly advance?: (core: SandboxCore, scope: { testClock: string | null; until: number }) => void;
}

export function controlRoute(method: ControlRoute['method'], template: string, handler: ControlRoute['handler']): ControlRoute {
  return { method, ...compileTemplate(template), handler };
}

export class ControlError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

function sandboxKeyPattern(key: string): boolean {
  // Test-mode keys only: the sandbox is never live.
  return /^(sk|rk)_test_[A-Za-z0-9_]+$/.test(key);
}

/** Canonical text of a request's parameters, for comparing an idempotent retry with the first request. */
function fingerprint(method: string, pathname: string, params: WireObject): string {
  const canonical = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(canonical);
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
    );
  };
  return createHash('sha256').update(`${method} ${pathname} ${JSON.stringify(canonical(params))}`).digest('hex');
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new StripeApiError(413, { type: 'invalid_request_error', message: 'Request body too large.' }));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/**
 * A running sandbox: the Stripe-compatible API on its own port (127.0.0.1 only), its
 * control routes under /_sandbox/ on the same port (the service forwards /sandbox/* there),
 * its state, its clock and its webhook delivery.
 */
export class StripeSandbox {
  readonly core: SandboxCore;
  readonly delivery: WebhookDelivery;
  private readonly routes: ApiRoute[];
  private readonly controls: ControlRoute[] = [];
  private readonly advancers: NonNullable<SandboxModule['advance']>[] = [];
  private readonly faults: Fault[] = [];
  private readonly server: http.Server;
  private readonly sockets = new Set<import('node:net').Socket>();
  url = '';
  port = 0;

  constructor(
    readonly options: StripeSandboxOptions,
    modules: readonly SandboxModule[],
  ) {
    const clock = options.clock ?? systemClock;
    const store = new SandboxStore(options.dataDir ? path.join(options.dataDir, SANDBOX_STATE_FILE) : undefined);
    this.delivery = new WebhookDelivery({
      store,
      clock,
      secret: options.webhookSecret,
      retryDelaysMs: options.webhookRetryDelaysMs ?? [1_000, 5_000, 30_000, 120_000, 600_000, 3_600_000],
      requestTimeoutMs: options.webhookTimeoutMs ?? 10_000,
      ...(options.onError ? { onError: options.onError } : {}),
    });
    this.core = new SandboxCore(store, clock, this.delivery, Stripe.API_VERSION, options.hostedBaseUrl ?? 'http://127.0.0.1:3000');
    this.routes = [...BASE_ROUTES];
    for (const module of modules) {
      this.routes.push(...module.routes);
      this.controls.push(...module.controls);
      if (module.advance) this.advancers.push(module.advance);
    }
    this.controls.push(...this.baseControls());
    this.server = http.createServer((request, response) => {
      void this.handle(request, response);
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 12111, this.options.host ?? '127.0.0.1', () => resolve());
    });
    const address = this.server.address() as AddressInfo;
    this.port = address.port;
    this.url = `http://127.0.0.1:${address.port}`;
    if (this.options.webhookUrl) this.delivery.setTarget(this.options.webhookUrl);
  }

  setWebhookUrl(url: string | undefined): void {
    this.delivery.setTarget(url);
  }

  setHostedBaseUrl(url: string): void {
    this.core.hostedBaseUrl = url.replace(/\/$/, '');
  }

  /** Moves the whole sandbox's time forward and runs what falls due (renewals, retries, expiries). */
  advance(seconds: number): { now: number; events: string[] } {
    const before = new Set(this.core.store.all<{ id: string }>('event').map((event) => event.id));
    this.core.operation(() => {
      this.core.store.data.clockOffsetSeconds += seconds;
      this.runDue(null, this.core.globalNow());
    });
    const events = this.core.store
      .all<{ id: string }>('event')
      .filter((event) => !before.has(event.id))
      .map((event) => event.id)
      .reverse();
    return { now: this.core.globalNow(), events };
  }

  runDue(testClock: string | null, until: number): void {
    for (const advance of this.advancers) advance(this.core, { testClock, until });
  }

  injectFault(fault: Omit<Fault, 'remaining'> & { count?: number }): void {
    this.faults.push({ ...fault, remaining: fault.count ?? 1 });
  }

  async close(): Promise<void> {
    this.delivery.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
  }

  private baseControls(): ControlRoute[] {
    return [
      controlRoute('GET', '/_sandbox/health', ({ sandbox }) => ({ ok: true, now: sandbox.core.globalNow(), apiVersion: sandbox.core.apiVersion })),
      controlRoute('POST', '/_sandbox/clock/advance', ({ sandbox, body }) => {
        const seconds = body.seconds;
        if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > 10 * 365 * 86_400) {
          throw new ControlError(400, 'seconds: must be an integer from 1 to 315360000');
        }
        return sandbox.advance(seconds);
      }),
      controlRoute('POST', '/_sandbox/webhooks/mode', ({ sandbox, body }) => {
        const mode: Partial<DeliveryMode> = {};
        for (const key of ['duplicate', 'outOfOrder'] as const) {
          const value = body[key];
          if (value === undefined) continue;
          if (typeof value !== 'boolean') throw new ControlError(400, `${key}: must be a boolean`);
          mode[key] = value;
        }
        return sandbox.delivery.setMode(mode);
      }),
      controlRoute('GET', '/_sandbox/webhooks/deliveries', ({ sandbox }) => ({ deliveries: sandbox.core.store.data.deliveries })),
      controlRoute('POST', '/_sandbox/faults', ({ sandbox, body }) => {
        const when = body.when;
        if (when !== 'before' && when !== 'after' && when !== 'hang') throw new ControlError(400, 'when: must be "before", "after" or "hang"');
        const count = body.count ?? 1;
        if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 100) throw new ControlError(400, 'count: must be 1-100');
        const pathPrefix = typeof body.pathPrefix === 'string' ? body.pathPrefix : undefined;
        const method = typeof body.method === 'string' ? body.method.toUpperCase() : undefined;
        sandbox.injectFault({ when, count, ...(pathPrefix ? { pathPrefix } : {}), ...(method ? { method } : {}) });
        return { ok: true };
      }),
    ];
  }

  private takeFault(method: string, pathname: string): Fault | undefined {
    const fault = this.faults.find(
      (candidate) =>
        candidate.remaining > 0 &&
        (candidate.method === undefined || candidate.method === method) &&
        (candidate.pathPrefix === undefined || pathname.startsWith(candidate.pathPrefix)),
    );
    if (fault) fault.remaining -= 1;
    return fault;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://sandbox.invalid');
    try {
      if (url.pathname.startsWith('/_sandbox/')) {
        await this.handleControl(request, response, url);
        return;
      }
      await this.handleApi(request, response, url);
    } catch (error) {
      if (error instanceof StripeApiError) {
        this.send(response, error.statusCode, JSON.stringify(error.toJSON(), null, 2), request);
        return;
      }
      this.options.onError?.(error);
      const internal = new StripeApiError(500, { type: 'api_error', message: 'An unexpected error occurred in the sandbox.' });
      this.send(response, 500, JSON.stringify(internal.toJSON(), null, 2), request);
    }
  }

  private send(response: ServerResponse, status: number, body: string, request: IncomingMessage, extra: Record<string, string> = {}): void {
    if (response.headersSent || response.destroyed) return;
    const version = request.headers['stripe-version'];
    response.writeHead(status, {
      'Content-Type': 'application/json',
      'Request-Id': `req_${randomBytes(10).toString('hex')}`,
      'Stripe-Version': typeof version === 'string' ? version : this.core.apiVersion,
      'Cache-Control': 'no-cache, no-store',
      ...extra,
    });
    response.end(body);
  }

  private async handleControl(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const text = await readBody(request);
    let body: Record<string, unknown> = {};
    if (text.trim() !== '') {
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        body = parsed as Record<string, unknown>;
      } catch {
        response.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { message: 'Body must be a JSON object' } }));
        return;
      }
    }
    for (const control of this.controls) {
      if (control.method !== request.method) continue;
      const match = control.pattern.exec(url.pathname);
      if (!match) continue;
      const path: Record<string, string> = {};
      control.names.forEach((name, index) => (path[name] = decodeURIComponent(match[index + 1] ?? '')));
      try {
        const result = await control.handler({ sandbox: this, body, path });
        response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(result));
      } catch (error) {
        if (error instanceof ControlError) {
          response.writeHead(error.statusCode, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { message: error.message } }));
        } else if (error instanceof StripeApiError) {
          response.writeHead(error.statusCode, { 'Content-Type': 'application/json' }).end(JSON.stringify(error.toJSON()));
        } else {
          throw error;
        }
      }
      return;
    }
    response.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { message: `No sandbox control ${request.method} ${url.pathname}` } }));
  }

  private authenticate(request: IncomingMessage): string {
    const header = request.headers.authorization ?? '';
    const bearer = /^Bearer (\S+)$/.exec(header)?.[1];
    const basic = /^Basic (\S+)$/.exec(header)?.[1];
    const key = bearer ?? (basic ? Buffer.from(basic, 'base64').toString('utf8').split(':')[0] : undefined);
    if (!key) {
      throw new StripeApiError(401, {
        type: 'invalid_request_error',
        message: 'You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth.',
      });
    }
    const accepted = this.options.apiKey !== undefined ? key === this.options.apiKey : sandboxKeyPattern(key);
    if (!accepted) {
      throw new StripeApiError(401, { type: 'invalid_request_error', code: 'api_key_invalid', message: 'Invalid API Key provided: the sandbox accepts test-mode keys only.' });
    }
    return key;
  }

  private async handleApi(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const method = request.method ?? 'GET';
    const apiKey = this.authenticate(request);
    const text = await readBody(request);
    const matched = matchRoute(this.routes, method, url.pathname);
    if (!matched) {
      throw new StripeApiError(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${url.pathname}).` });
    }
    const contentType = request.headers['content-type'] ?? '';
    if (method === 'POST' && text !== '' && !contentType.startsWith('application/x-www-form-urlencoded')) {
      throw new StripeApiError(400, {
        type: 'invalid_request_error',
        message: 'Invalid request: the body must be application/x-www-form-urlencoded, as Stripe expects.',
      });
    }
    const raw = parseStripeForm(method === 'POST' ? text : url.search.slice(1));
    const fault = this.takeFault(method, url.pathname);
    if (fault?.when === 'before') {
      request.socket.destroy();
      return;
    }
    // The socket stays open unanswered until the client gives up or the sandbox closes.
    if (fault?.when === 'hang') return;
    const headerKey = request.headers['idempotency-key'];
    const idempotencyKey = typeof headerKey === 'string' && method === 'POST' ? headerKey : undefined;
    if (idempotencyKey !== undefined && idempotencyKey.length > 255) {
      throw new StripeApiError(400, { type: 'invalid_request_error', message: 'Idempotency keys can be at most 255 characters long.' });
    }
    const store = this.core.store;
    const recordKey = idempotencyKey === undefined ? undefined : `${createHash('sha256').update(apiKey).digest('hex').slice(0, 16)}:${idempotencyKey}`;
    const print = fingerprint(method, url.pathname, raw);
    if (recordKey !== undefined) {
      const now = this.core.clock.now().getTime();
      for (const [key, record] of Object.entries(store.data.idempotency)) {
        if (record.createdAtMs < now - IDEMPOTENCY_RETENTION_MS) delete store.data.idempotency[key];
      }
      const earlier = store.data.idempotency[recordKey];
      if (earlier) {
        if (earlier.fingerprint !== print) {
          throw new StripeApiError(400, {
            type: 'idempotency_error',
            message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
          });
        }
        if (fault?.when === 'after') {
          request.socket.destroy();
          return;
        }
        this.send(response, earlier.status, earlier.body, request, { 'Idempotent-Replayed': 'true', 'Idempotency-Key': idempotencyKey as string });
        return;
      }
    }
    const params = new Params(raw);
    let status = 200;
    let body: string;
    this.core.request = { requestId: null, idempotencyKey: idempotencyKey ?? null };
    try {
      const result = this.core.operation(() => matched.route.handler({ core: this.core, params, path: matched.path }));
      body = JSON.stringify(expandResult(this.core, result, params.expand()), null, 2);
    } catch (error) {
      if (!(error instanceof StripeApiError)) throw error;
      status = error.statusCode;
      body = JSON.stringify(error.toJSON(), null, 2);
    } finally {
      this.core.request = { requestId: null, idempotencyKey: null };
    }
    // Stripe keeps the answer of a request that ran (success, a card error, a missing
    // object), not of one refused for its parameters before it started.
    if (recordKey !== undefined && (status < 400 || status === 402 || status === 404)) {
      store.data.idempotency[recordKey] = { fingerprint: print, status, body, createdAtMs: this.core.clock.now().getTime() };
      store.persist();
    }
    if (fault?.when === 'after') {
      request.socket.destroy();
      return;
    }
    this.send(response, status, body, request, idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {});
  }
}

/**
 * Starts a sandbox (port 0 for an ephemeral one) and answers once it listens. The modules
 * with checkout and billing are added by default; pass `modules` to choose.
 */
export async function startStripeSandbox(options: StripeSandboxOptions = {}, modules?: readonly SandboxModule[]): Promise<StripeSandbox> {
  const sandbox = new StripeSandbox({ port: 0, ...options }, modules ?? DEFAULT_MODULES(options));
  await sandbox.listen();
  return sandbox;
}
