import type { FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import type { Metrics } from '../../platform/observability/metrics.js';
import { secretMatches } from '../ops/ops.routes.js';
import type { AccessTokens } from './access-tokens.js';
import { ACCESS_COOKIE } from './cookies.js';
import type { CsrfTokens } from './csrf.js';
import type { ExternalIdentities } from './external-identities.js';
import type { Principal } from './principal.js';
import { loadPrincipalState } from './sessions.repository.js';
import type { AccountSnapshots } from '../accounts/account-snapshots.js';
import { ADMIN_SESSION_COOKIE, type AdminSessions } from './admin-sessions.js';

/** Verifies account API keys (X-API-Key); implemented by the api-keys module. */
export interface ApiKeyVerifierPort {
  verify(presented: string): Promise<{ accountId: string; keyId: string } | undefined>;
}

export interface AuthenticationOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly accessTokens: AccessTokens;
  readonly csrf: CsrfTokens;
  readonly adminApiToken: string;
  /** The operator dashboard's session cookies (UI-1); undefined = only the Bearer admin token. */
  readonly adminSessions?: AdminSessions;
  readonly apiKeys: ApiKeyVerifierPort | undefined;
  /** Account status for key and service callers, cached with change notifications. */
  readonly accounts: AccountSnapshots;
  readonly serviceSharedSecret: string | undefined;
  /** Maps external identity providers' user tokens to accounts; undefined when not configured. */
  readonly externalIdentities: ExternalIdentities | undefined;
  readonly metrics: Metrics;
  /** Told about every failed authentication (audit trail, alerts, rate limits: KEY-5). */
  readonly onFailure?: (request: FastifyRequest, failure: AuthenticationFailure) => void | Promise<void>;
}

export interface AuthenticationFailure {
  readonly credential: 'none' | 'cookie' | 'bearer' | 'api_key' | 'service' | 'admin' | 'admin_session' | 'ambiguous';
  readonly code: 'UNAUTHENTICATED' | 'ACCOUNT_SUSPENDED' | 'FORBIDDEN' | 'AMBIGUOUS_CREDENTIALS' | 'CSRF_FAILED';
  /** The account the credential claimed, when it named one. */
  readonly accountId?: string;
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

class AuthenticationError extends AppError {
  constructor(
    readonly failure: AuthenticationFailure,
    message: string,
  ) {
    super(failure.code, message);
  }
}

function fail(credential: AuthenticationFailure['credential'], code: AuthenticationFailure['code'], message: string, accountId?: string): never {
  throw new AuthenticationError({ credential, code, ...(accountId ? { accountId } : {}) }, message);
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function bearerOf(request: FastifyRequest): string | undefined {
  const authorization = header(request, 'authorization');
  if (authorization === undefined) return undefined;
  const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(authorization);
  return match?.[1] ?? '';
}

/**
 * The authentication hook: resolves request.principal for routes that declare
 * `config.auth`, and enforces it:
 * which kinds of principal the route accepts, owner-only routes, CSRF on cookie-
 * authenticated unsafe requests (AUTH-4), and the account's and user's status on every
 * request, so a suspended or deleted account is refused even with a valid token (ACC-4).
 * The caller attaches it (as the first route-level onRequest hook) to the routes that
 * declare `config.auth`; public routes do not run it at all.
 */
export function authenticationHook(options: AuthenticationOptions): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const auth = request.routeOptions.config.auth;
    if (!auth) return;
    let principal: Principal;
    try {
      principal = await resolvePrincipal(request, options);
      if (!auth.allow.includes(principal.kind)) fail(credentialOf(principal), 'FORBIDDEN', 'These credentials cannot use this route');
      if (auth.ownerOnly && principal.kind === 'user' && principal.role !== 'owner') {
        fail('cookie', 'FORBIDDEN', 'Only the account owner can do this');
      }
      if (principal.kind === 'user' && principal.via === 'cookie' && UNSAFE_METHODS.has(request.method)) {
        if (!options.csrf.matches(header(request, 'x-csrf-token'), principal.sessionId)) {
          fail('cookie', 'CSRF_FAILED', 'Missing or invalid CSRF token', principal.accountId);
        }
      }
      // The dashboard's session cookie is sent by the browser on its own: unsafe requests prove their origin too.
      if (principal.kind === 'admin' && principal.sessionId !== undefined && UNSAFE_METHODS.has(request.method)) {
        if (!options.csrf.matches(header(request, 'x-csrf-token'), principal.sessionId)) {
          fail('admin_session', 'CSRF_FAILED', 'Missing or invalid CSRF token');
        }
      }
    } catch (error) {
      if (error instanceof AuthenticationError) {
        options.metrics.authentications.inc({ credential: error.failure.credential, outcome: error.failure.code });
        await options.onFailure?.(request, error.failure);
      }
      throw error;
    }
    options.metrics.authentications.inc({ credential: credentialOf(principal), outcome: 'ok' });
    request.principal = principal;
  };
}

function credentialOf(principal: Principal): AuthenticationFailure['credential'] {
  switch (principal.kind) {
    case 'user':
      return principal.via;
    case 'apiKey':
      return 'api_key';
    case 'service':
      return 'service';
    case 'admin':
      return principal.sessionId === undefined ? 'admin' : 'admin_session';
  }
}

async function resolvePrincipal(request: FastifyRequest, options: AuthenticationOptions): Promise<Principal> {
  const allow = request.routeOptions.config.auth?.allow ?? [];
  // The dashboard's cookie counts only on operator routes. A browser signed in to the
  // portal too sends its access cookie everywhere; on a route that people cannot use it
  // is not a credential the caller chose, so the operator's session decides.
  const adminCookie = options.adminSessions && allow.includes('admin') ? request.cookies?.[ADMIN_SESSION_COOKIE] : undefined;
  const cookieToken = adminCookie !== undefined && !allow.includes('user') ? undefined : request.cookies?.[ACCESS_COOKIE];
  const bearer = bearerOf(request);
  const apiKey = header(request, 'x-api-key');
  const serviceSecret = header(request, 'x-service-secret');
  // A service sends its secret together with its end user's token in Authorization.
  const presented = [
    cookieToken !== undefined,
    adminCookie !== undefined,
    apiKey !== undefined,
    serviceSecret !== undefined,
    serviceSecret === undefined && bearer !== undefined,
  ];
  if (presented.filter(Boolean).length > 1) {
    fail('ambiguous', 'AMBIGUOUS_CREDENTIALS', 'Send one kind of credential per request');
  }
  if (adminCookie !== undefined && options.adminSessions) {
    const session = await options.adminSessions.resolve(adminCookie);
    if (!session) fail('admin_session', 'UNAUTHENTICATED', 'Operator session expired; sign in again');
    return { kind: 'admin', sessionId: session.id };
  }
  if (serviceSecret !== undefined) return resolveService(serviceSecret, bearer, options);
  if (apiKey !== undefined) return resolveApiKey(apiKey, options);
  if (bearer !== undefined) {
    if (bearer !== '' && secretMatches(bearer, options.adminApiToken)) return { kind: 'admin' };
    return resolveUser(bearer, 'bearer', options);
  }
  if (cookieToken !== undefined) return resolveUser(cookieToken, 'cookie', options);
  fail('none', 'UNAUTHENTICATED', 'Authentication required');
}

async function resolveUser(token: string, via: 'cookie' | 'bearer', options: AuthenticationOptions): Promise<Principal> {
  const now = options.clock.now();
  const claims = token === '' ? undefined : await options.accessTokens.verify(token, now);
  if (!claims) fail(via, 'UNAUTHENTICATED', 'Invalid or expired token');
  const state = await forAccount(options.database, claims.accountId, (tx) =>
    loadPrincipalState(tx, claims.userId, claims.accountId, claims.sessionId, now),
  );
  if (!state || state.user_status !== 'active' || state.account_status === 'deleted' || !state.session_active) {
    fail(via, 'UNAUTHENTICATED', 'Invalid or expired token', claims.accountId);
  }
  if (state.account_status === 'suspended') fail(via, 'ACCOUNT_SUSPENDED', 'This account is suspended', claims.accountId);
  return { kind: 'user', accountId: claims.accountId, userId: claims.userId, role: state.role, via, sessionId: claims.sessionId };
}

async function resolveApiKey(presented: string, options: AuthenticationOptions): Promise<Principal> {
  const verified = options.apiKeys ? await options.apiKeys.verify(presented) : undefined;
  if (!verified) fail('api_key', 'UNAUTHENTICATED', 'Invalid API key');
  const status = (options.accounts.peek(verified.accountId) ?? (await options.accounts.get(verified.accountId)))?.status;
  if (status === undefined || status === 'deleted') fail('api_key', 'UNAUTHENTICATED', 'Invalid API key', verified.accountId);
  if (status === 'suspended') fail('api_key', 'ACCOUNT_SUSPENDED', 'This account is suspended', verified.accountId);
  return { kind: 'apiKey', accountId: verified.accountId, keyId: verified.keyId };
}

/**
 * A trusted back-end caller (KEY-4) acting for one user of an external identity provider
 * (AUTH-7): the shared secret proves the caller, the user's token says for whom.
 */
async function resolveService(presentedSecret: string, userToken: string | undefined, options: AuthenticationOptions): Promise<Principal> {
  // KEY-4: a missing or wrong service secret is 403.
  if (options.serviceSharedSecret === undefined || !secretMatches(presentedSecret, options.serviceSharedSecret)) {
    fail('service', 'FORBIDDEN', 'Invalid service credentials');
  }
  if (!userToken || !options.externalIdentities) fail('service', 'UNAUTHENTICATED', "A service must send its user's token");
  const user = await options.externalIdentities.resolve(userToken);
  if (!user || user.userStatus !== 'active' || user.accountStatus === 'deleted') {
    fail('service', 'UNAUTHENTICATED', 'Invalid or expired user token', user?.accountId);
  }
  if (user.accountStatus === 'suspended') fail('service', 'ACCOUNT_SUSPENDED', 'This account is suspended', user.accountId);
  return { kind: 'service', accountId: user.accountId, userId: user.userId };
}
