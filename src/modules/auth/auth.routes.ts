import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { accountView, findAccount, findUser, userView } from '../accounts/accounts.repository.js';
import type { AuthService, IssuedSession } from './auth.service.js';
import { clearSessionCookies, REFRESH_COOKIE, setSessionCookies, type CookiePolicy } from './cookies.js';
import type { CsrfTokens } from './csrf.js';
import { accountPrincipal } from './guards.js';
import { MAX_PASSWORD_LENGTH } from './passwords.js';
import { rateLimit } from '../../platform/rate-limit/hooks.js';
import { byEmail, byIp } from '../../platform/rate-limit/keys.js';
import type { RateLimiter } from '../../platform/rate-limit/limiter.js';

export interface AuthRouteDependencies {
  readonly auth: AuthService;
  readonly csrf: CsrfTokens;
  readonly cookies: CookiePolicy;
  readonly clock: Clock;
  readonly database: Database;
  readonly logger: { error(object: object, message: string): void };
  readonly limiter: RateLimiter;
}

const Email = Type.String({ format: 'email', maxLength: 254 });
const Password = Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH });
const SignUpBody = Type.Object({ email: Email, password: Password, name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) });
const LogInBody = Type.Object({ email: Email, password: Password });
const ResetRequestBody = Type.Object({ email: Email });
const ResetConfirmBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }), password: Password });

function sessionAnswer(deps: AuthRouteDependencies, reply: FastifyReply, session: IssuedSession): { csrfToken: string; accessToken: string } {
  const csrfToken = deps.csrf.tokenFor(session.sessionId);
  setSessionCookies(reply, deps.cookies, { ...session, csrfToken }, deps.clock.now());
  // The access token is also in the body for non-browser clients (Bearer); the refresh
  // token never is: it stays in its HttpOnly, path-scoped cookie.
  return { csrfToken, accessToken: session.accessToken };
}

function csrfHeader(request: FastifyRequest): string | undefined {
  const value = request.headers['x-csrf-token'];
  return typeof value === 'string' ? value : undefined;
}

/** People: sign-up, login, refresh, logout, me, password reset (API.md "People"). */
export async function authRoutes(app: FastifyInstance, deps: AuthRouteDependencies): Promise<void> {
  // RL-1: per IP before the body is even parsed; per account (by email) once it is.
  const loginByIp = rateLimit(deps.limiter, 'login.ip', byIp);
  const loginByAccount = rateLimit(deps.limiter, 'login.account', byEmail((request) => (request.body as { email?: unknown }).email));
  const resetByIp = rateLimit(deps.limiter, 'password_reset.ip', byIp);
  const refreshByIp = rateLimit(deps.limiter, 'token_refresh.ip', byIp);

  app.post('/auth/signup', { schema: { tags: ['auth'], body: SignUpBody } }, async (request, reply) => {
    const body = request.body as Static<typeof SignUpBody>;
    const signedIn = await deps.auth.signUp(body, { ip: request.ip });
    const tokens = sessionAnswer(deps, reply, signedIn);
    return reply.status(201).send({ user: userView(signedIn.user), account: accountView(signedIn.account), ...tokens });
  });

  app.post('/auth/login', { schema: { tags: ['auth'], body: LogInBody }, onRequest: loginByIp, preHandler: loginByAccount }, async (request, reply) => {
    const body = request.body as Static<typeof LogInBody>;
    const signedIn = await deps.auth.logIn(body, { ip: request.ip });
    const tokens = sessionAnswer(deps, reply, signedIn);
    return { user: userView(signedIn.user), account: accountView(signedIn.account), ...tokens };
  });

  app.post('/auth/refresh', { schema: { tags: ['auth'] }, onRequest: refreshByIp }, async (request, reply) => {
    const presented = request.cookies?.[REFRESH_COOKIE];
    if (!presented) throw new AppError('UNAUTHENTICATED', 'Session expired; log in again');
    const refreshed = await deps.auth.refresh(presented, (sessionId) => {
      if (!deps.csrf.matches(csrfHeader(request), sessionId)) throw new AppError('CSRF_FAILED', 'Missing or invalid CSRF token');
    }, { ip: request.ip });
    const tokens = sessionAnswer(deps, reply, refreshed);
    return { user: userView(refreshed.user), ...tokens };
  });

  app.post('/auth/logout', { schema: { tags: ['auth'] } }, async (request, reply) => {
    const presented = request.cookies?.[REFRESH_COOKIE];
    if (!presented) throw new AppError('UNAUTHENTICATED', 'Not logged in');
    const sessionId = await deps.auth.sessionOfRefreshToken(presented);
    if (!sessionId) throw new AppError('UNAUTHENTICATED', 'Not logged in');
    if (!deps.csrf.matches(csrfHeader(request), sessionId)) throw new AppError('CSRF_FAILED', 'Missing or invalid CSRF token');
    await deps.auth.logOut(sessionId, { ip: request.ip });
    clearSessionCookies(reply, deps.cookies);
    return reply.status(204).send();
  });

  app.get('/auth/me', { schema: { tags: ['auth'] }, config: { auth: { allow: ['user'] } } }, async (request) => {
    const principal = accountPrincipal(request);
    if (principal.kind !== 'user') throw new AppError('UNAUTHENTICATED', 'Authentication required');
    const found = await asSystem(deps.database, async (tx) => ({
      user: await findUser(tx, principal.userId),
      account: await findAccount(tx, principal.accountId),
    }));
    if (!found.user || !found.account) throw new AppError('UNAUTHENTICATED', 'Authentication required');
    return { user: userView(found.user), account: accountView(found.account) };
  });

  app.post('/auth/password-reset', { schema: { tags: ['auth'], body: ResetRequestBody }, onRequest: resetByIp }, async (request, reply) => {
    const { email } = request.body as Static<typeof ResetRequestBody>;
    // Answer at once, known email or not; the work (and its timing) happens afterwards.
    setImmediate(() => {
      deps.auth.requestPasswordReset(email, { ip: request.ip }).catch((error: unknown) => deps.logger.error({ err: error }, 'password reset request failed'));
    });
    return reply.status(202).send({ status: 'accepted' });
  });

  app.post('/auth/password-reset/confirm', { schema: { tags: ['auth'], body: ResetConfirmBody } }, async (request, reply) => {
    await deps.auth.confirmPasswordReset(request.body as Static<typeof ResetConfirmBody>, { ip: request.ip });
    return reply.status(204).send();
  });
}
