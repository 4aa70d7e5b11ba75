import { createHash, createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { RateLimitMetrics } from './metrics.js';
import type { StoreFailureMode } from './policies.js';
import type { RateLimitStore } from './store.js';

/** The shared store failed and the policy fails closed: the caller must refuse the request. */
export class RateLimitStoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('rate-limit store unavailable', { cause });
    this.name = 'RateLimitStoreUnavailableError';
  }
}

export interface RateLimitBackendOptions {
  /** Redis when configured, else the memory store. */
  readonly store: RateLimitStore;
  /**
   * The local store used while `store` fails, by policies that fail "local". Required
   * when `store` is not in memory; ignored when it is.
   */
  readonly fallback?: RateLimitStore;
  readonly logger: Logger;
  readonly metrics?: RateLimitMetrics;
  /**
   * Ids are HMAC-SHA256(subkey, key) when a secret is given (shared by every instance),
   * SHA-256 otherwise: no raw IP or email is ever a Redis key or a map key.
   */
  readonly keySecret?: string;
  /** After a store failure, go straight to the fallback for this long (default 1 s). */
  readonly cooldownMs?: number;
}

export interface BackendResult<T> {
  readonly value: T;
  readonly store: 'memory' | 'redis';
}

/**
 * The primary store plus what to do when it fails, for the limiter and the lockout
 * alike. A failure (connection refused, command timeout) opens a short breaker, so while
 * Redis is unreachable requests do not each wait for a timeout; after the cooldown the
 * next request tries Redis again. Transitions are logged once each, not per request.
 */
export class RateLimitBackend {
  readonly store: RateLimitStore;
  private readonly fallback: RateLimitStore | undefined;
  private readonly logger: Logger;
  private readonly metrics: RateLimitMetrics | undefined;
  private readonly subkey: Buffer | undefined;
  private readonly cooldownMs: number;
  private skipPrimaryUntil = 0;
  private primaryDown = false;

  constructor(options: RateLimitBackendOptions) {
    this.store = options.store;
    this.fallback = options.store.kind === 'memory' ? undefined : options.fallback;
    if (options.store.kind !== 'memory' && !this.fallback) {
      throw new Error('a shared rate-limit store needs a local fallback store');
    }
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.subkey = options.keySecret
      ? createHmac('sha256', options.keySecret).update('bulwark/rate-limit/key-id/v1').digest()
      : undefined;
    this.cooldownMs = options.cooldownMs ?? 1_000;
  }

  /** The store id for a key under a namespace (policy name): hashed, never the key itself. */
  idFor(namespace: string, key: string): string {
    const digest = this.subkey ? createHmac('sha256', this.subkey).update(key).digest() : createHash('sha256').update(key).digest();
    return `${namespace}:${digest.subarray(0, 18).toString('base64url')}`;
  }

  /** Runs `operation` on the primary store or, when it fails, as `mode` says. */
  async run<T>(mode: StoreFailureMode, operation: (store: RateLimitStore) => Promise<T>): Promise<BackendResult<T>> {
    if (!this.fallback) return { value: await operation(this.store), store: this.store.kind };
    if (performance.now() >= this.skipPrimaryUntil) {
      try {
        const value = await operation(this.store);
        this.markUp();
        return { value, store: this.store.kind };
      } catch (error) {
        this.markDown(error);
      }
    }
    this.metrics?.storeFailures.inc({ outcome: mode });
    if (mode === 'closed') throw new RateLimitStoreUnavailableError(undefined);
    return { value: await operation(this.fallback), store: this.fallback.kind };
  }

  /** True while the primary store is considered down. */
  get degraded(): boolean {
    return this.primaryDown;
  }

  private markDown(error: unknown): void {
    this.skipPrimaryUntil = performance.now() + this.cooldownMs;
    if (!this.primaryDown) {
      this.primaryDown = true;
      this.logger.warn(
        { component: 'rate-limit', store: this.store.kind, err: error },
        'rate-limit store unavailable: policies fall back to the local store or fail closed, as configured',
      );
    }
  }

  private markUp(): void {
    if (this.primaryDown) {
      this.primaryDown = false;
      this.logger.info({ component: 'rate-limit', store: this.store.kind }, 'rate-limit store available again');
    }
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.fallback?.close();
  }
}
