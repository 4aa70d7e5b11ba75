import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';

/** A preHandler that lets an operator admin through or throws (KEY-3). */
export type AdminGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time comparison of a presented secret with the expected one, whatever their lengths. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer +(\S+)$/i.exec(header);
  return match?.[1];
}

export interface AdminTokenGuardOptions {
  /** Called on each refused request (to count, audit and alert failed authentications, KEY-5). */
  readonly onFailure?: (request: FastifyRequest) => void | Promise<void>;
}

/**
 * The operator admin guard until the auth module provides its own: `Authorization:
 * Bearer <ADMIN_API_TOKEN>`, compared in constant time. Without a configured token every
 * request is refused. Sets request.principal to the admin principal on success.
 */
export function adminTokenGuard(token: string | undefined, options: AdminTokenGuardOptions = {}): AdminGuard {
  return async (request) => {
    const presented = bearerToken(request.headers.authorization);
    if (token !== undefined && token.length > 0 && tokenMatches(presented, token)) {
      request.principal = { kind: 'admin' };
      return;
    }
    await options.onFailure?.(request);
    throw new AppError('UNAUTHENTICATED', 'Operator admin token required', undefined, {
      'WWW-Authenticate': 'Bearer realm="admin"',
    });
  };
}

/**
 * The guard for routes behind the authentication hook (auth/authenticate.ts), which has
 * already resolved the admin token into request.principal: anything else is refused.
 */
export const adminPrincipalGuard: AdminGuard = async (request) => {
  if (request.principal?.kind !== 'admin') {
    throw new AppError('UNAUTHENTICATED', 'Operator admin token required', undefined, { 'WWW-Authenticate': 'Bearer realm="admin"' });
  }
};
