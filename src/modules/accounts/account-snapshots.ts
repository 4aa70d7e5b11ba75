import { performance } from 'node:perf_hooks';
import { forAccount } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import type { RevocationFeed } from '../api-keys/revocation-feed.js';
import type { AccountStatus } from './accounts.repository.js';

export const ACCOUNT_CHANNEL = 'bulwark_accounts';

export interface AccountSnapshot {
  readonly id: string;
  readonly plan: string;
  readonly status: AccountStatus;
}

export interface AccountSnapshotOptions {
  readonly ttlMs?: number;
  readonly maxEntries?: number;
}

/**
 * What authentication and the account routes need to know of an account on every
 * request (its status and plan), cached per instance. A database trigger announces every
 * account change (migration 0005) and this cache drops the account when the announcement
 * arrives; it is used only while the listening connection is live (the same feed and
 * bounds as API key revocation: a missed change is impossible for more than a second),
 * and bypassed otherwise. Without a feed (the embedded database) nothing is cached.
 */
export class AccountSnapshots {
  private readonly entries = new Map<string, { snapshot: AccountSnapshot; storedAtMs: number }>();
  /** Other per-account reads kept with the snapshot and dropped with it (the current subscription). */
  private readonly extras = new Map<string, Map<string, { value: unknown; storedAtMs: number }>>();
  private epoch = 0;
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(
    private readonly database: Database,
    private readonly feed: RevocationFeed | undefined,
    options: AccountSnapshotOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    feed?.start({ onKeyChanged: (accountId) => this.invalidate(accountId), onReset: () => this.clear() });
  }

  /**
   * The cached snapshot if `get` would answer from the cache right now, else undefined
   * (nothing cached, too old, or the feed not live). Lets hot paths skip a promise.
   */
  peek(accountId: string): AccountSnapshot | undefined {
    if (!(this.feed?.isLive() ?? false)) return undefined;
    const entry = this.entries.get(accountId);
    return entry && performance.now() - entry.storedAtMs < this.ttlMs ? entry.snapshot : undefined;
  }

  async get(accountId: string): Promise<AccountSnapshot | undefined> {
    const cached = this.peek(accountId);
    if (cached) return cached;
    const live = this.feed?.isLive() ?? false;
    const now = performance.now();
    const epochAtLookup = this.epoch;
    const { rows } = await forAccount(this.database, accountId, (tx) =>
      tx.query<AccountSnapshot>('SELECT id, plan, status FROM accounts WHERE id = $1', [accountId]),
    );
    const snapshot = rows[0];
    // A change announced while we read may concern what we read: then do not keep it.
    if (snapshot && live && this.feed?.isLive() && epochAtLookup === this.epoch) {
      this.entries.delete(accountId);
      this.entries.set(accountId, { snapshot, storedAtMs: now });
      if (this.entries.size > this.maxEntries) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
    }
    return snapshot;
  }

  /**
   * Another read about one account (`name` says which), cached like the snapshot: only
   * while the feed is live, dropped whenever the account is announced (a subscription
   * change is announced on the same channel: migration 0023), within the same TTL.
   */
  async cached<T>(accountId: string, name: string, load: () => Promise<T>): Promise<T> {
    const live = this.feed?.isLive() ?? false;
    const now = performance.now();
    if (live) {
      const entry = this.extras.get(accountId)?.get(name);
      if (entry && now - entry.storedAtMs < this.ttlMs) return entry.value as T;
    }
    const epochAtLookup = this.epoch;
    const value = await load();
    if (live && this.feed?.isLive() && epochAtLookup === this.epoch) {
      const own = this.extras.get(accountId) ?? new Map<string, { value: unknown; storedAtMs: number }>();
      own.set(name, { value, storedAtMs: now });
      this.extras.delete(accountId);
      this.extras.set(accountId, own);
      if (this.extras.size > this.maxEntries) {
        const oldest = this.extras.keys().next().value;
        if (oldest !== undefined) this.extras.delete(oldest);
      }
    }
    return value;
  }

  invalidate(accountId: string): void {
    this.epoch += 1;
    this.entries.delete(accountId);
    this.extras.delete(accountId);
  }

  clear(): void {
    this.epoch += 1;
    this.entries.clear();
    this.extras.clear();
  }

  async close(): Promise<void> {
    await this.feed?.close();
  }
}
