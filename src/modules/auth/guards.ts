import type { FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { Principal, PrincipalKind } from './principal.js';

/**
 * What a route accepts, declared in its options: `config: { auth: { allow: ['user', 'apiKey'] } }`.
 * Routes without `auth` are public. The authentication hook (authenticate.ts) enforces it.
 */
export interface RouteAuth {
  readonly allow: readonly PrincipalKind[];
  /** Users must have the owner role (API keys and services act for the account). */
  readonly ownerOnly?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
}

export type AccountPrincipal = Exclude<Principal, { kind: 'admin' }>;

/** The principal of a route that only account principals reach; the account always comes from here (ACC-2). */
export function accountPrincipal(request: FastifyRequest): AccountPrincipal {
  const principal = request.principal;
  if (!principal || principal.kind === 'admin') throw new AppError('UNAUTHENTICATED', 'Authentication required');
  return principal;
}

/**
 * ACC-2: a path or body account id is honoured only when it is the principal's own
 * account or the principal is an operator; anything else is 404, so existence never leaks.
 */
export function assertAccountAccess(request: FastifyRequest, accountId: string): void {
  const principal = request.principal;
  if (principal?.kind === 'admin') return;
  if (!principal || principal.accountId !== accountId) throw new AppError('NOT_FOUND', 'Not found');
}
