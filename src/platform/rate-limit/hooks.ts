import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { Principal } from '../../modules/auth/principal.js';
import { ipKeyOf, type KeyOf } from './keys.js';
import type { NamedRateLimitRule, RateLimitDecision, RateLimiter } from './limiter.js';
import { MACHINE_POLICY_NAME, MACHINE_WINDOW_SECONDS, type RateLimitPolicyName } from './policies.js';

/**
 * The Fastify side of the rate limiter. Every hook here is an async (request, reply)
 * function usable as a route's `preHandler` (or `onRequest`, when its key does not need
 * the body): a refused request is answered before its handler runs, so it has no effect
 * (RL-4). Refusals are AppErrors, so the one error handler answers them in the envelope.
 */
export type RateLimitHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `{ general: false }` takes a route out of the general per-IP limit (webhooks have their own policy). */
    rateLimit?: { readonly general?: boolean };
  }
}

/** Paths probes call over and over from one address; never rate limited. */
export const PROBE_PATHS: readonly string[] = ['/health', '/ready', '/metrics'];

/** The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, separate-field form). */
export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  return {
    'RateLimit-Limit': String(decision.limit),
    'RateLimit-Remaining': String(decision.remaining),
    'RateLimit-Reset': String(decision.resetSeconds),
    'RateLimit-Policy': `${decision.limit};w=${decision.windowSeconds}`,
  };
}

/**
 * Puts a decision's RateLimit headers on a response. When several policies guard one
 * route (login per IP and per account), the one with the fewest requests left wins.
 */
export function setRateLimitHeaders(reply: FastifyReply, decision: RateLimitDecision): void {
  const current = reply.getHeader('ratelimit-remaining');
  if (current !== undefined && Number(current) <= decision.remaining) return;
  void reply.headers(rateLimitHeaders(decision));
}

/** The refusal for a decision: 429 with Retry-After and RateLimit headers, or 503 when the store is down and the policy fails closed. */
export function rateLimitError(decision: RateLimitDecision): AppError {
  const retryAfter = { 'Retry-After': String(Math.max(1, decision.retryAfterSeconds)) };
  if (decision.unavailable) {
    return new AppError('SERVICE_UNAVAILABLE', 'Service temporarily unavailable', undefined, retryAfter);
  }
  return new AppError('RATE_LIMITED', 'Too many requests', undefined, { ...retryAfter, ...rateLimitHeaders(decision) });
}

/** Counts the request under a policy (or a run-time rule) and refuses it when over; sets the headers when not. */
export async function enforceRateLimit(
  limiter: RateLimiter,
  request: FastifyRequest,
  reply: FastifyReply,
  policy: RateLimitPolicyName | NamedRateLimitRule,
  key: string,
  cost?: number,
): Promise<RateLimitDecision> {
  const options = { request, ...(cost !== undefined ? { cost } : {}) };
  const decision =
    typeof policy === 'string' ? await limiter.consume(policy, key, options) : await limiter.consumeRule(policy, key, options);
  if (!decision.allowed) throw rateLimitError(decision);
  setRateLimitHeaders(reply, decision);
  return decision;
}

export interface RateLimitHookOptions {
  /** Units this request uses (say, events in a batch); default 1. */
  readonly cost?: (request: FastifyRequest) => number;
}

/**
 * A route's limit: `{ preHandler: rateLimit(limiter, 'login.ip', byIp) }`. `keyOf` gives
 * the key (`ip:...`, `user:...`, `email:...`) or undefined for "not limited by this policy".
 */
export function rateLimit(limiter: RateLimiter, policy: RateLimitPolicyName, keyOf: KeyOf, options: RateLimitHookOptions = {}): RateLimitHook {
  limiter.rule(policy); // an unknown policy fails at route registration, not on the first request
  return async (request, reply) => {
    const key = keyOf(request);
    if (key === undefined) return;
    await enforceRateLimit(limiter, request, reply, policy, key, options.cost?.(request));
  };
}

export interface GeneralRateLimitOptions {
  /** Paths never limited (default: the probes /health, /ready, /metrics). */
  readonly exemptPaths?: readonly string[];
}

/**
 * RL-5's general limit (100 per 15 min per IP) for unauthenticated requests: register it
 * app-wide, after the authentication hook, e.g. `app.addHook('onRequest', generalRateLimit(limiter))`
 * (onRequest refuses before the body is read; it only needs request.principal to be settled).
 * Authenticated callers (users, account keys, services, operators) pass: their own
 * per-user, per-account (plan) or admin policies apply. Unknown paths (404) count too.
 * Failed authentications are counted by limitFailedAuthentication.
 */
export function generalRateLimit(limiter: RateLimiter, options: GeneralRateLimitOptions = {}): GeneralRateLimitHook {
  const exempt = new Set(options.exemptPaths ?? PROBE_PATHS);
  // A callback hook: authenticated requests (nearly all of a busy service's) pass synchronously.
  const passes = (request: FastifyRequest): boolean => {
    if (request.principal || request.routeOptions.config.rateLimit?.general === false) return true;
    const questionMark = request.url.indexOf('?');
    return exempt.has(questionMark === -1 ? request.url : request.url.slice(0, questionMark));
  };
  return (request, reply, done) => {
    if (passes(request)) {
      done();
      return;
    }
    enforceRateLimit(limiter, request, reply, 'general.ip', ipKeyOf(request)).then(() => done(), done);
  };
}

/** generalRateLimit's hook, in Fastify's callback form. */
export type GeneralRateLimitHook = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => void;

/**
 * KEY-5 and RL-5: a failed authentication of any kind (bad password, bad or revoked API
 * key, bad token, wrong service secret) counts against the general per-IP limit. Call it
 * where authentication fails, before throwing the 401/403; once the IP is over the limit
 * it throws the 429 instead, so guessing credentials from one address stops.
 * Call it only for credentials that were presented and refused: an anonymous request on
 * a public route is already counted by generalRateLimit.
 */
export async function limitFailedAuthentication(limiter: RateLimiter, request: FastifyRequest): Promise<void> {
  const decision = await limiter.consume('general.ip', ipKeyOf(request), { request });
  if (!decision.allowed) throw rateLimitError(decision);
}

/** Requests per minute of an account's plan; null = unlimited (ENTERPRISE). */
export type PlanRequestsPerMinute = (accountId: string) => Promise<number | null>;

export interface MachineRateLimitOptions {
  readonly planRequestsPerMinute: PlanRequestsPerMinute;
  /** The same answer when it is cached right now (no promise), else undefined; optional. */
  readonly cachedRequestsPerMinute?: (accountId: string) => number | null | undefined;
  /** The per-user policy for people (user principals) on this route, e.g. 'entitlements.user'. */
  readonly userPolicy?: RateLimitPolicyName;
}

/**
 * RL-5 for the machine routes (entitlements, leases, usage, credits, gate): account keys
 * and services are limited per account by their plan's requests per minute (not by the
 * per-IP general limit); users by `userPolicy`; operators are not limited here.
 * Unauthenticated callers never get this far (the route requires authentication).
 */
export function machineRateLimit(limiter: RateLimiter, options: MachineRateLimitOptions): RateLimitHook {
  if (options.userPolicy) limiter.rule(options.userPolicy);
  return async (request, reply) => {
    const principal: Principal | undefined = request.principal;
    if (!principal || principal.kind === 'admin') return;
    if (principal.kind === 'user') {
      if (options.userPolicy) await enforceRateLimit(limiter, request, reply, options.userPolicy, `user:${principal.userId}`);
      return;
    }
    // null (unlimited) is an answer; only undefined means "not cached".
    const cached = options.cachedRequestsPerMinute?.(principal.accountId);
    const limit = cached !== undefined ? cached : await options.planRequestsPerMinute(principal.accountId);
    if (limit === null) return;
    const rule = machineRule(limit);
    await enforceRateLimit(limiter, request, reply, rule, `account:${principal.accountId}`);
  };
}

/** The per-account rule for a plan's requests per minute. */
export function machineRule(requestsPerMinute: number): NamedRateLimitRule {
  return { name: MACHINE_POLICY_NAME, limit: requestsPerMinute, windowSeconds: MACHINE_WINDOW_SECONDS, onStoreFailure: 'local' };
}
