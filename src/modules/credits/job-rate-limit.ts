import type { FastifyReply, FastifyRequest } from 'fastify';
import { enforceRateLimit, type RateLimitHook } from '../../platform/rate-limit/hooks.js';
import type { RateLimiter } from '../../platform/rate-limit/limiter.js';
import type { RateLimitPolicyName } from '../../platform/rate-limit/policies.js';

/** RL-1: the credit-spending job routes, per user: story 5 a minute, book 3 a minute (by default). */
const JOB_POLICIES: Readonly<Record<string, RateLimitPolicyName>> = { story: 'jobs.story.user', book: 'jobs.book.user' };

/**
 * A preHandler for routes that spend credits on a job (reserve, gate): people (user
 * principals) are limited per job type as RL-1 says; keys and services are limited per
 * account by their plan (RL-5, the machine limit), not here. `jobTypeOf` finds the job type
 * in the validated body.
 */
export function jobTypeRateLimit(limiter: RateLimiter, jobTypeOf: (request: FastifyRequest) => string | undefined): RateLimitHook {
  for (const policy of Object.values(JOB_POLICIES)) limiter.rule(policy);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = request.principal;
    if (principal?.kind !== 'user') return;
    const jobType = jobTypeOf(request);
    const policy = jobType === undefined ? undefined : JOB_POLICIES[jobType];
    if (policy) await enforceRateLimit(limiter, request, reply, policy, `user:${principal.userId}`);
  };
}
