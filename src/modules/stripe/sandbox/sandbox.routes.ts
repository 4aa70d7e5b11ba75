import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../../../errors/app-error.js';
import { CHECKOUT_CSS, renderCheckoutPage, type CheckoutView } from './checkout-page.js';

export interface SandboxRouteOptions {
  /** The sandbox's base URL (its control routes live under /_sandbox/ there). */
  readonly sandboxUrl: string;
  readonly timeoutMs: number;
}

const Id = Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9_]+$' });
const CardNumber = Type.String({ minLength: 12, maxLength: 23, pattern: '^[0-9][0-9 -]+$', description: 'A Stripe test card number, e.g. 4242 4242 4242 4242' });
/** The hosted form sends an empty card when none is needed (a trial without a payment method). */
const OptionalCardNumber = Type.String({ maxLength: 23, pattern: '^([0-9][0-9 -]{11,22})?$', description: 'A Stripe test card number; empty or absent when no card is needed' });
const Optional = (maxLength: number) => Type.Optional(Type.String({ maxLength }));

const PayBody = Type.Object({
  card: Type.Optional(OptionalCardNumber),
  email: Optional(254),
  name: Optional(200),
  promotionCode: Optional(100),
});
const CardBody = Type.Object({ card: CardNumber });
const AdvanceBody = Type.Object({ seconds: Type.Integer({ minimum: 1, maximum: 315_360_000, description: 'How far to move the sandbox clock' }) });
const ModeBody = Type.Object({ duplicate: Type.Optional(Type.Boolean()), outOfOrder: Type.Optional(Type.Boolean()) });
const Json = Type.Record(Type.String(), Type.Unknown());

interface Forwarded {
  status: number;
  body: Record<string, unknown>;
}

/**
 * The sandbox's pages and test controls on the service's own port (API.md, Sandbox): the
 * hosted checkout page, paying with a test card, switching a customer's card, moving the
 * clock, and the test delivery modes. Registered only in sandbox mode; without principal
 * or CSRF, as the contract says. Each call is forwarded to the sandbox's control API, so
 * the same routes work with a sandbox in this process or one shared by several instances.
 * Card numbers posted here are never logged (request logs carry no bodies).
 */
export async function sandboxRoutes(fastify: FastifyInstance, options: SandboxRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  // The hosted page posts an HTML form; this plugin's scope alone accepts form bodies.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => {
    const fields: Record<string, string> = {};
    for (const [key, value] of new URLSearchParams(typeof body === 'string' ? body : body.toString('utf8'))) fields[key] = value;
    done(null, fields);
  });

  async function forward(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Forwarded> {
    let response: Response;
    try {
      response = await fetch(`${options.sandboxUrl}/_sandbox${path}`, {
        method,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch {
      throw new AppError('SERVICE_UNAVAILABLE', 'The Stripe sandbox is not reachable');
    }
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  function refusal(forwarded: Forwarded): AppError {
    const error = (forwarded.body.error ?? {}) as { message?: string; param?: string };
    const message = error.message ?? 'The sandbox refused the request';
    if (forwarded.status === 404) return new AppError('NOT_FOUND', message);
    if (forwarded.status >= 500) return new AppError('SERVICE_UNAVAILABLE', 'The Stripe sandbox failed');
    return new AppError('VALIDATION_FAILED', message, [{ field: error.param ?? '(body)', message }]);
  }

  function sendJson(reply: FastifyReply, forwarded: Forwarded) {
    if (forwarded.status !== 200) throw refusal(forwarded);
    return reply.header('Cache-Control', 'no-store').send(forwarded.body);
  }

  async function page(sessionId: string, reply: FastifyReply, message?: { kind: 'error' | 'info'; text: string }, status = 200) {
    const view = await forward('GET', `/checkout/${encodeURIComponent(sessionId)}`);
    if (view.status !== 200) throw refusal(view);
    return reply
      .status(status)
      .header('Content-Type', 'text/html; charset=utf-8')
      .header('Cache-Control', 'no-store')
      .send(renderCheckoutPage(view.body as unknown as CheckoutView, message));
  }

  app.get('/sandbox/assets/checkout.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('Content-Type', 'text/css; charset=utf-8').header('Cache-Control', 'public, max-age=300').send(CHECKOUT_CSS),
  );

  app.get(
    '/sandbox/checkout/:sessionId',
    { schema: { tags: ['sandbox'], summary: 'The hosted checkout page', params: Type.Object({ sessionId: Id }) } },
    async (request, reply) => page(request.params.sessionId, reply),
  );

  app.post(
    '/sandbox/checkout/:sessionId/pay',
    {
      schema: {
        tags: ['sandbox'],
        summary: 'Pay a checkout session with a Stripe test card (JSON, or the hosted page form)',
        params: Type.Object({ sessionId: Id }),
        body: PayBody,
        response: { 200: Json },
      },
    },
    async (request, reply) => {
      const { sessionId } = request.params;
      const { card, email, name, promotionCode } = request.body;
      const fromForm = (request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
      const forwarded = await forward('POST', `/checkout/${encodeURIComponent(sessionId)}/pay`, {
        ...(card ? { card } : {}),
        ...(email ? { email } : {}),
        ...(name ? { name } : {}),
        ...(promotionCode ? { promotionCode } : {}),
      });
      if (!fromForm) return sendJson(reply, forwarded);
      if (forwarded.status !== 200) {
        if (forwarded.status === 404) throw refusal(forwarded);
        const error = (forwarded.body.error ?? {}) as { message?: string };
        return page(sessionId, reply, { kind: 'error', text: error.message ?? 'The payment could not be made' }, 400);
      }
      const outcome = forwarded.body.outcome;
      if (outcome === 'succeeded') {
        const target = forwarded.body.successUrl;
        if (typeof target === 'string') return reply.redirect(target, 303);
        return page(sessionId, reply, { kind: 'info', text: 'Payment complete.' });
      }
      const error = (forwarded.body.error ?? {}) as { message?: string };
      return page(sessionId, reply, { kind: 'error', text: error.message ?? 'The payment did not go through' }, 402);
    },
  );

  app.post(
    '/sandbox/customers/:customerId/payment-method',
    { schema: { tags: ['sandbox'], summary: "Switch a customer's card (used for renewals and retries from now on)", params: Type.Object({ customerId: Id }), body: CardBody, response: { 200: Json } } },
    async (request, reply) => sendJson(reply, await forward('POST', `/customers/${encodeURIComponent(request.params.customerId)}/payment-method`, { card: request.body.card })),
  );

  app.post(
    '/sandbox/clock/advance',
    { schema: { tags: ['sandbox'], summary: "Move the sandbox's clock: renewals, trial ends, retries and cancellations happen, with their events", body: AdvanceBody, response: { 200: Json } } },
    async (request, reply) => sendJson(reply, await forward('POST', '/clock/advance', { seconds: request.body.seconds })),
  );

  app.post(
    '/sandbox/webhooks/mode',
    { schema: { tags: ['sandbox'], summary: 'Test delivery modes: every event twice, or each operation\'s events in reverse order', body: ModeBody, response: { 200: Json } } },
    async (request, reply) => sendJson(reply, await forward('POST', '/webhooks/mode', request.body)),
  );
}
