import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import { AppError, validationError } from '../../errors/app-error.js';
import type { Principal } from '../../modules/auth/principal.js';
import type { Clock } from '../clock.js';
import { asSystem } from '../database/access.js';
import type { Database } from '../database/database.js';
import type { ScheduledJob } from '../jobs/scheduler.js';

/**
 * The Idempotency-Key header (API.md): every authenticated POST a client may retry accepts
 * one. Scoped to the principal (the account, or the operator): the first request claims the
 * key, its answer is kept for 24 hours; the same key with the same body replays that answer
 * (with `Idempotent-Replayed: true`), with another body or on another route answers 422
 * IDEMPOTENCY_KEY_REUSED, and while the first is still running 409. A 5xx or 429 answer is
 * not kept: the key is released so a retry runs again. A claim whose request died with its
 * process (no answer stored) can be taken over after the lease.
 *
 * This is a layer in front of the routes: exactly-once money movement does not rest on it
 * but on the keys inside the transactions (reservations, usage events, checkout and refund
 * operation ids). It gives every other mutation the same retry contract.
 *
 * Not covered, because their answers carry a secret that must never be stored (or set
 * cookies): the /auth/* routes, the admin session, API key issue and rotation, webhook
 * endpoint creation and secret rotation. A route may also opt out with
 * `config: { idempotency: false }`.
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false` takes a POST route out of the Idempotency-Key layer. */
    idempotency?: boolean;
  }
  interface FastifyRequest {
    idempotencyClaim?: { readonly scope: string; readonly key: string };
  }
}

export const IDEMPOTENCY_HEADER = 'idempotency-key';
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** Routes whose answers carry secrets or cookies: never stored, so never covered. */
const UNCOVERED: readonly RegExp[] = [/^\/auth\//, /^\/api\/admin\/session/, /\/keys$/, /\/keys\/[^/]+\/rotate$/, /webhook-endpoints/, /\/rotate-secret$/];

export function coversRoute(route: Pick<RouteOptions, 'method' | 'url' | 'config'>): boolean {
  const methods = [route.method].flat();
  if (!methods.includes('POST')) return false;
  const config = route.config as { auth?: unknown; idempotency?: boolean } | undefined;
  if (!config?.auth || config.idempotency === false) return false;
  return !UNCOVERED.some((pattern) => pattern.test(route.url));
}

function scopeOf(principal: Principal): string {
  return principal.kind === 'admin' ? 'admin' : `account:${principal.accountId}`;
}

/** JSON with object keys sorted, so the same body in another key order is the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function requestHash(method: string, route: string, params: unknown, query: unknown, body: unknown): string {
  return createHash('sha256').update(canonical([method, route, params ?? {}, query ?? {}, body ?? null])).digest('hex');
}

interface StoredRequest {
  method: string;
  route: string;
  request_hash: string;
  status: 'running' | 'done';
  response_status: number | null;
  response_type: string | null;
  response_body: string | null;
}

export interface IdempotencyOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long an answer is kept. */
  readonly ttlSeconds?: number;
  /** After how long a claim without an answer (its process died) may be taken over. */
  readonly leaseSeconds?: number;
}

export class IdempotencyLayer {
  private readonly ttlMs: number;
  private readonly leaseMs: number;

  constructor(private readonly options: IdempotencyOptions) {
    this.ttlMs = (options.ttlSeconds ?? 24 * 60 * 60) * 1000;
    this.leaseMs = (options.leaseSeconds ?? 5 * 60) * 1000;
  }

  /**
   * The route-level preHandler, run after authentication and body validation. A callback
   * hook, so that a request without the header (most of them) passes synchronously.
   */
  readonly preHandler = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void => {
    if (request.headers[IDEMPOTENCY_HEADER] === undefined) {
      done();
      return;
    }
    // A replayed answer has been sent: then the request goes no further.
    this.claim(request, reply).then((sent) => (sent ? undefined : done()), done);
  };

  /** The route-level onSend: keeps the answer of a claimed key, or releases the key after a 5xx or 429. */
  readonly onSend = (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: Error | null, payload?: unknown) => void): void => {
    const claim = request.idempotencyClaim;
    if (!claim) {
      done(null, payload);
      return;
    }
    request.idempotencyClaim = undefined;
    void this.keep(claim, request, reply, payload).then(() => done(null, payload));
  };

  /** Claims the key, or replays its answer (true: sent), or throws the conflict. */
  private async claim(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const header = request.headers[IDEMPOTENCY_HEADER];
    if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
      throw validationError([{ field: 'Idempotency-Key', message: 'must be one header of 1-255 visible ASCII characters' }]);
    }
    const principal = request.principal;
    if (!principal) return false;
    const scope = scopeOf(principal);
    const route = request.routeOptions.url ?? request.url;
    const hash = requestHash(request.method, route, request.params, request.query, request.body);
    const now = this.options.clock.now();
    const claimed = await asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<{ claimed: boolean }>(
        `INSERT INTO idempotency_requests AS r (scope, key, method, route, request_hash, status, claimed_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)
         ON CONFLICT (scope, key) DO UPDATE SET method = EXCLUDED.method, route = EXCLUDED.route, request_hash = EXCLUDED.request_hash,
           status = 'running', response_status = NULL, response_type = NULL, response_body = NULL,
           claimed_at = EXCLUDED.claimed_at, expires_at = EXCLUDED.expires_at
         WHERE r.expires_at <= EXCLUDED.claimed_at
            OR (r.status = 'running' AND r.claimed_at <= $8 AND r.request_hash = EXCLUDED.request_hash)
         RETURNING true AS claimed`,
        [scope, header, request.method, route, hash, now, new Date(now.getTime() + this.ttlMs), new Date(now.getTime() - this.leaseMs)],
      );
      if (rows.length === 1) return undefined;
      const existing = await tx.query<StoredRequest>(
        'SELECT method, route, request_hash, status, response_status, response_type, response_body FROM idempotency_requests WHERE scope = $1 AND key = $2',
        [scope, header],
      );
      return existing.rows[0] ?? null;
    });
    if (claimed === undefined) {
      request.idempotencyClaim = { scope, key: header };
      return false;
    }
    if (claimed === null) throw new AppError('CONFLICT', 'A request with this Idempotency-Key is still being processed; retry later');
    if (claimed.request_hash !== hash || claimed.method !== request.method || claimed.route !== route) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request');
    }
    if (claimed.status === 'running' || claimed.response_status === null) {
      throw new AppError('CONFLICT', 'A request with this Idempotency-Key is still being processed; retry later');
    }
    reply.code(claimed.response_status).header('idempotent-replayed', 'true');
    if (claimed.response_type) reply.type(claimed.response_type);
    void reply.send(claimed.response_body ?? '');
    return true;
  }

  /** Stores the answer for the claim (or releases it); never throws: the answer goes out regardless. */
  private async keep(claim: { readonly scope: string; readonly key: string }, request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<void> {
    const status = reply.statusCode;
    const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
    try {
      await asSystem(this.options.database, async (tx) => {
        if (status >= 500 || status === 429 || body === undefined) {
          await tx.query(`DELETE FROM idempotency_requests WHERE scope = $1 AND key = $2 AND status = 'running'`, [claim.scope, claim.key]);
          return;
        }
        const type = reply.getHeader('content-type');
        await tx.query(
          `UPDATE idempotency_requests SET status = 'done', response_status = $3, response_type = $4, response_body = $5
           WHERE scope = $1 AND key = $2 AND status = 'running'`,
          [claim.scope, claim.key, status, typeof type === 'string' ? type : null, body],
        );
      });
    } catch (error) {
      // The answer itself still goes out; the key stays claimed until its lease ends.
      this.options.logger.error({ err: error, route: request.routeOptions.url }, 'could not store the idempotent answer');
    }
  }

  /** Adds the layer's hooks to a route it covers (from the app's onRoute hook). */
  attach(route: RouteOptions): void {
    if (!coversRoute(route)) return;
    route.preHandler = [...(route.preHandler ? [route.preHandler].flat() : []), this.preHandler];
    route.onSend = [...(route.onSend ? [route.onSend].flat() : []), this.onSend];
  }
}

/** Removes answers older than their 24 hours, hourly. */
export function idempotencyPruneJob(): ScheduledJob {
  return {
    name: 'idempotency-requests.prune',
    intervalSeconds: 60 * 60,
    async run({ database, clock, logger }) {
      const result = await asSystem(database, (tx) => tx.query('DELETE FROM idempotency_requests WHERE expires_at <= $1', [clock.now()]));
      logger.info({ deleted: result.rowCount }, 'pruned idempotency keys');
    },
  };
}
