import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { DatabaseConfig } from '../../config/config.js';
import { sslOptions } from '../../platform/database/postgres-database.js';
import { API_KEY_CHANNEL } from './api-keys.repository.js';

/**
 * How one instance learns that a key was revoked (or its expiry moved) on any instance,
 * and whether it can currently be sure it would learn it. The verifier uses its cache
 * only while `isLive()` is true; otherwise every verification reads the database.
 */
export interface RevocationFeed {
  /** True only while every change committed so far is known to have been delivered. */
  isLive(): boolean;
  /**
   * Starts delivering. `onKeyChanged(keyId)` for each change; `onReset()` whenever
   * changes may have been missed (the connection dropped, or was just re-established).
   */
  start(handlers: RevocationHandlers): void;
  close(): Promise<void>;
}

export interface RevocationHandlers {
  onKeyChanged(keyId: string): void;
  onReset(): void;
}

export interface FeedLogger {
  warn(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
}

/**
 * One process (PGlite is single-process): the key service invalidates the verifier
 * directly after each commit, so there is nothing to listen to and nothing to miss.
 */
export class LocalRevocationFeed implements RevocationFeed {
  isLive(): boolean {
    return true;
  }

  start(): void {}

  async close(): Promise<void> {}
}

type PostgresConfig = Extract<DatabaseConfig, { kind: 'postgres' }>;

export interface PostgresRevocationFeedOptions {
  readonly database: PostgresConfig;
  /** The NOTIFY channel to listen on (default: API key changes). */
  readonly channel?: string;
  /** What the feed invalidates, for its connection's application_name and its log lines. */
  readonly subject?: string;
  /** The role the listening connection works as (it only runs LISTEN and SELECT 1). */
  readonly role?: string;
  readonly logger?: FeedLogger;
  /** A round trip on the listening connection this often proves it is alive. */
  readonly heartbeatIntervalMs?: number;
  /**
   * The cache is trusted only if a heartbeat sent at most this long ago has come back.
   * Below 1 s, so even a silently dead connection cannot keep a revoked key cached past
   * KEY-2's bound.
   */
  readonly staleAfterMs?: number;
  /** A heartbeat unanswered this long means the connection is dead: drop it and reconnect. */
  readonly deadAfterMs?: number;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * LISTEN on a dedicated connection (a pooled one cannot hold a LISTEN). Revocations
 * NOTIFY inside their own transaction, so the message exists exactly when the change
 * committed, and PostgreSQL queues it for every listening session.
 *
 * What can go wrong is the listening connection itself. A connection that errors or
 * ends clears the cache at once (queued notifications die with the session) and the
 * cache stays unused until LISTEN is re-established on a new one. A connection that dies
 * silently (a network partition) is caught by the heartbeat: a `SELECT 1` every
 * `heartbeatIntervalMs`, and the cache is trusted only while the last answered heartbeat
 * was sent less than `staleAfterMs` (750 ms) ago, so even then a revocation cannot be
 * missed for longer than KEY-2's 1 s. (PostgreSQL also sends notifications that arrived
 * during a query before that query's ReadyForQuery, so an answered heartbeat has, in
 * practice, flushed what was committed before it.)
 */
export class PostgresRevocationFeed implements RevocationFeed {
  private readonly heartbeatIntervalMs: number;
  private readonly staleAfterMs: number;
  private readonly deadAfterMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private handlers: RevocationHandlers | undefined;
  private client: pg.Client | undefined;
  private listening = false;
  private lastConfirmedAt = Number.NEGATIVE_INFINITY;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs: number;
  private closed = false;
  private everConnected = false;
  private downReported = false;
  /** How many times LISTEN has been established (1 after start, +1 per reconnection). */
  sessions = 0;

  private readonly channel: string;
  private readonly subject: string;

  constructor(private readonly options: PostgresRevocationFeedOptions) {
    this.channel = options.channel ?? API_KEY_CHANNEL;
    this.subject = options.subject ?? 'api key';
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 250;
    this.staleAfterMs = options.staleAfterMs ?? 750;
    this.deadAfterMs = options.deadAfterMs ?? 3_000;
    this.reconnectMinMs = options.reconnectMinMs ?? 100;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 5_000;
    this.reconnectDelayMs = this.reconnectMinMs;
    if (this.staleAfterMs <= this.heartbeatIntervalMs) throw new RangeError('staleAfterMs must exceed heartbeatIntervalMs');
  }

  /** The server process id of the listening session, while there is one (for operations and tests). */
  get backendPid(): number | undefined {
    if (!this.listening) return undefined;
    return (this.client as unknown as { processID?: number } | undefined)?.processID;
  }

  isLive(): boolean {
    return this.listening && performance.now() - this.lastConfirmedAt < this.staleAfterMs;
  }

  start(handlers: RevocationHandlers): void {
    if (this.handlers) throw new Error('revocation feed already started');
    this.handlers = handlers;
    void this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    this.listening = false;
    if (client) await client.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const { database, role } = this.options;
    const client = new pg.Client({
      connectionString: database.url,
      ssl: sslOptions(database),
      application_name: `bulwark-${this.subject.replace(/ /g, '-')}-listener`,
      connectionTimeoutMillis: database.connectTimeoutMs,
      // A heartbeat that hangs this long rejects, and the connection is then replaced.
      query_timeout: this.deadAfterMs,
      keepAlive: true,
      ...(role !== undefined ? { options: `-c role=${role}` } : {}),
    });
    this.client = client;
    client.on('error', (error) => this.drop(client, error));
    client.on('end', () => this.drop(client, new Error('connection ended')));
    client.on('notification', (message) => {
      if (this.client === client && message.channel === this.channel && message.payload) {
        this.handlers?.onKeyChanged(message.payload);
      }
    });
    try {
      await client.connect();
      const sentAt = performance.now();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
      if (this.client !== client || this.closed) return;
      // Anything cached before this session may have missed a change: start clean.
      this.handlers?.onReset();
      this.listening = true;
      this.lastConfirmedAt = sentAt;
      this.sessions += 1;
      this.reconnectDelayMs = this.reconnectMinMs;
      if (this.everConnected) this.options.logger?.info({ sessions: this.sessions }, `${this.subject} change listener re-established`);
      this.everConnected = true;
      this.downReported = false;
      this.scheduleHeartbeat(client);
    } catch (error) {
      this.drop(client, error);
    }
  }

  private scheduleHeartbeat(client: pg.Client): void {
    this.heartbeatTimer = setTimeout(() => void this.heartbeat(client), this.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
  }

  private async heartbeat(client: pg.Client): Promise<void> {
    if (this.client !== client || this.closed) return;
    const sentAt = performance.now();
    try {
      await client.query('SELECT 1');
    } catch (error) {
      this.drop(client, error);
      return;
    }
    if (this.client !== client || this.closed) return;
    this.lastConfirmedAt = sentAt;
    this.scheduleHeartbeat(client);
  }

  private drop(client: pg.Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    clearTimeout(this.heartbeatTimer);
    // Notifications may be lost from here until LISTEN is back: forget what is cached.
    this.handlers?.onReset();
    client.end().catch(() => undefined);
    if (this.closed) return;
    if (!this.downReported) {
      this.downReported = true;
      this.options.logger?.warn(
        { reason: messageOf(error) },
        `${this.subject} change listener unavailable; the ${this.subject} cache is bypassed until it reconnects`,
      );
    }
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, this.reconnectMaxMs);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
    this.reconnectTimer.unref();
  }
}
