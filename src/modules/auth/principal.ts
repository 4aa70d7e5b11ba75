/**
 * Who is calling. Set on the request by the authentication hook (request.principal);
 * undefined for anonymous callers. Account-scoped work always takes the account from
 * here, never from a path or body (ACC-2).
 */
export type Principal =
  | {
      readonly kind: 'user';
      readonly accountId: string;
      readonly userId: string;
      readonly role: 'owner' | 'member';
      /** How the access token arrived: cookies need CSRF protection, a Bearer header does not. */
      readonly via: 'cookie' | 'bearer';
      /** The refresh-token family (login session) the access token belongs to. */
      readonly sessionId: string;
    }
  | { readonly kind: 'apiKey'; readonly accountId: string; readonly keyId: string }
  | { readonly kind: 'service'; readonly accountId: string; readonly userId: string }
  | {
      readonly kind: 'admin';
      /** Set when the operator came through the dashboard's session cookie (UI-1) rather than the Bearer token. */
      readonly sessionId?: string;
    };

export type PrincipalKind = Principal['kind'];

/** The audit trail's view of a principal. */
export function actorOf(principal: Principal | undefined): { actorType: string; actorId: string | null } {
  if (!principal) return { actorType: 'anonymous', actorId: null };
  switch (principal.kind) {
    case 'user':
      return { actorType: 'user', actorId: principal.userId };
    case 'apiKey':
      return { actorType: 'api_key', actorId: principal.keyId };
    case 'service':
      return { actorType: 'service', actorId: principal.userId };
    case 'admin':
      // A dashboard session names itself, so the trail tells which sign-in did what.
      return { actorType: 'admin', actorId: principal.sessionId ?? null };
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}
