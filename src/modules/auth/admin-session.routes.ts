import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { RateLimitHook } from '../../platform/rate-limit/hooks.js';
import { ADMIN_SESSION_COOKIE, type AdminSessions } from './admin-sessions.js';

export interface AdminSessionRouteOptions {
  readonly sessions: AdminSessions;
  /** RL-1 admin.ip, before the body is read: presenting the admin token is limited like every operator route. */
  readonly signInRateLimit: RateLimitHook;
  /** Told about every refused token (counted, audited, watched and limited like any failed authentication, KEY-5). */
  readonly onFailure: (request: FastifyRequest) => Promise<void>;
}

const SignInBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }) });
const SessionAnswer = Type.Object({
  session: Type.Union([Type.Object({ expiresAt: Type.String({ format: 'date-time' }) }), Type.Null()]),
  csrfToken: Type.Union([Type.String(), Type.Null()]),
});

const ADMIN = { auth: { allow: ['admin'] } } as const;

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store');
}

/**
 * The operator dashboard's sign-in (UI-1): POST the admin token once for an HttpOnly,
 * SameSite=Strict session cookie scoped to /api/admin, plus the session's CSRF token in
 * the answer (the dashboard keeps it in memory only). GET tells a page whether its
 * cookie still holds; DELETE signs out.
 */
export async function adminSessionRoutes(fastify: FastifyInstance, options: AdminSessionRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { sessions } = options;

  app.post(
    '/api/admin/session',
    {
      onRequest: options.signInRateLimit,
      schema: {
        tags: ['admin'],
        summary: 'Exchange the admin token for a short-lived dashboard session cookie',
        body: SignInBody,
        response: { 201: SessionAnswer },
      },
    },
    async (request, reply) => {
      if (!sessions.tokenMatches(request.body.token)) {
        await options.onFailure(request);
        throw new AppError('UNAUTHENTICATED', 'That is not the admin token');
      }
      const { session, cookieValue } = await sessions.start({ ip: request.ip });
      sessions.setCookie(reply, cookieValue);
      return noStore(reply)
        .status(201)
        .send({ session: { expiresAt: session.expiresAt.toISOString() }, csrfToken: sessions.csrfTokenFor(session.id) });
    },
  );

  app.get(
    '/api/admin/session',
    { config: ADMIN, schema: { tags: ['admin'], summary: 'The current dashboard session and its CSRF token', response: { 200: SessionAnswer } } },
    async (request, reply) => {
      noStore(reply);
      const principal = request.principal;
      const sessionId = principal?.kind === 'admin' ? principal.sessionId : undefined;
      if (sessionId === undefined) return { session: null, csrfToken: null };
      const session = await sessions.resolve(request.cookies?.[ADMIN_SESSION_COOKIE] ?? '');
      if (!session) throw new AppError('UNAUTHENTICATED', 'Operator session expired; sign in again');
      return { session: { expiresAt: session.expiresAt.toISOString() }, csrfToken: sessions.csrfTokenFor(sessionId) };
    },
  );

  app.delete(
    '/api/admin/session',
    { config: ADMIN, schema: { tags: ['admin'], summary: 'Sign out of the dashboard: the session ends at once' } },
    async (request, reply) => {
      const principal = request.principal;
      if (principal?.kind !== 'admin' || principal.sessionId === undefined) {
        throw new AppError('CONFLICT', 'There is no dashboard session to end with a Bearer token');
      }
      await sessions.end(principal.sessionId, { ip: request.ip });
      sessions.clearCookie(reply);
      return reply.status(204).send();
    },
  );
}
