import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { inject } from 'vitest';
import type { Clock } from '../../src/platform/clock.js';
import { RateLimitBackend } from '../../src/platform/rate-limit/backend.js';
import { RateLimiter, type OnLimited } from '../../src/platform/rate-limit/limiter.js';
import { MemoryRateLimitStore } from '../../src/platform/rate-limit/memory-store.js';
import type { RateLimitMetrics } from '../../src/platform/rate-limit/metrics.js';
import { resolveRateLimitPolicies, type RateLimitOverrides } from '../../src/platform/rate-limit/policies.js';
import { createRateLimitRedisClient, RedisRateLimitStore, waitForRedis } from '../../src/platform/rate-limit/redis-store.js';
import { createLogger } from '../../src/platform/observability/logger.js';
import { LogCapture } from '../helpers/app.js';

/** Redis of this run (null when absent outside CI: the Redis suites are skipped). */
export const redisUrl = inject('redisUrl');

export function captureLogger(): { logger: Logger; logs: LogCapture } {
  const logs = new LogCapture();
  return { logger: createLogger({ log: { level: 'debug', debug: false }, env: 'test' }, logs), logs };
}

/** A key prefix no other run or test file shares. */
export function uniquePrefix(label: string): string {
  return `bulwark-test:${label}:${randomBytes(6).toString('hex')}:`;
}

export interface MemoryLimiterOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly overrides?: RateLimitOverrides;
  readonly metrics?: RateLimitMetrics;
  readonly onLimited?: OnLimited;
}

export function memoryLimiter(options: MemoryLimiterOptions): { limiter: RateLimiter; backend: RateLimitBackend; store: MemoryRateLimitStore } {
  const store = new MemoryRateLimitStore(options.clock);
  const backend = new RateLimitBackend({ store, logger: options.logger, ...(options.metrics ? { metrics: options.metrics } : {}) });
  const limiter = new RateLimiter(backend, {
    policies: resolveRateLimitPolicies(options.overrides ?? {}),
    logger: options.logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.onLimited ? { onLimited: options.onLimited } : {}),
  });
  return { limiter, backend, store };
}

export interface RedisInstance {
  readonly client: Redis;
  readonly store: RedisRateLimitStore;
  readonly fallback: MemoryRateLimitStore;
  readonly backend: RateLimitBackend;
  readonly limiter: RateLimiter;
  close(): Promise<void>;
}

/**
 * One "service instance" worth of rate limiting on Redis: its own connection, its own
 * local fallback, one shared key prefix.
 */
export async function redisInstance(options: {
  readonly url: string;
  readonly prefix: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly overrides?: RateLimitOverrides;
  readonly metrics?: RateLimitMetrics;
  readonly commandTimeoutMs?: number;
  readonly waitReady?: boolean;
}): Promise<RedisInstance> {
  const client = createRateLimitRedisClient(options.url, {
    ...(options.commandTimeoutMs !== undefined ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
    connectTimeoutMs: 1_000,
  });
  if (options.waitReady ?? true) await waitForRedis(client, 5_000);
  const store = new RedisRateLimitStore(client, { keyPrefix: options.prefix });
  const fallback = new MemoryRateLimitStore(options.clock);
  const backend = new RateLimitBackend({
    store,
    fallback,
    logger: options.logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  const limiter = new RateLimiter(backend, {
    policies: resolveRateLimitPolicies(options.overrides ?? {}),
    logger: options.logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  return {
    client,
    store,
    fallback,
    backend,
    limiter,
    async close() {
      await backend.close();
      client.disconnect();
    },
  };
}

/** Deletes every key under a prefix; returns how many there were. */
export async function deleteKeys(client: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await client.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

/** A local port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP proxy in front of the real Redis that can be frozen: while frozen the connections
 * stay open but nothing moves (bytes wait in the socket buffers), as a stalled Redis or a
 * network partition looks; thawing lets them through again.
 */
export class FreezableProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private frozen = false;

  private constructor(target: URL) {
    this.server = net.createServer((client) => {
      const upstream = net.connect({ host: target.hostname, port: Number(target.port || 6379) });
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        if (this.frozen) socket.pause();
        socket.on('error', () => undefined);
        socket.on('close', () => {
          this.sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      // Not pipe(): a piped stream may resume itself when its destination drains.
      client.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk) => client.write(chunk));
    });
  }

  static async start(targetUrl: string): Promise<FreezableProxy> {
    const proxy = new FreezableProxy(new URL(targetUrl));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  freeze(): void {
    this.frozen = true;
    for (const socket of this.sockets) socket.pause();
  }

  thaw(): void {
    this.frozen = false;
    for (const socket of this.sockets) socket.resume();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Polls `condition` until it holds or the deadline passes (for TTLs running out; no timing assertion). */
export async function eventually(condition: () => Promise<boolean>, deadlineMs = 10_000, everyMs = 50): Promise<boolean> {
  const until = performance.now() + deadlineMs;
  while (performance.now() < until) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return condition();
}
