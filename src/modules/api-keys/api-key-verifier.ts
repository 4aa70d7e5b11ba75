import { hash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { hashApiKey, MAX_API_KEY_LENGTH, parseApiKey } from './api-key-format.js';
import { findApiKeyByHash, touchApiKey } from './api-keys.repository.js';
import { LocalRevocationFeed, type FeedLogger, type RevocationFeed } from './revocation-feed.js';
import { VerificationCache, type CachedVerification } from './verification-cache.js';

export interface VerifiedApiKey {
  readonly accountId: string;
  readonly keyId: string;
}

export interface ApiKeyVerifierOptions {
  readonly database: Database;
  readonly pepper: string;
  readonly clock: Clock;
  /** How this instance hears about revocations elsewhere; LocalRevocationFeed (one process) by default. */
  readonly feed?: RevocationFeed;
  readonly logger?: FeedLogger;
  /** 30 s by default. Revocations do not wait for it: they invalidate at once. */
  readonly cacheTtlMs?: number;
  readonly cacheMaxEntries?: number;
  /** last_used_at is written at most this often per key (default one minute). */
  readonly lastUsedIntervalMs?: number;
}

/** A 32-byte zero buffer, compared against when there is nothing to compare, so every path does the same work. */
const ZERO_HASH = Buffer.alloc(32);

/** The verification cache's index for a presented key (base64 of its SHA-256). */
function cacheDigest(presented: string): string {
  return hash('sha256', presented, 'base64');
}

function sameHash(stored: Buffer, computed: Buffer): boolean {
  if (stored.length !== computed.length) {
    timingSafeEqual(ZERO_HASH, ZERO_HASH);
    return false;
  }
  return timingSafeEqual(stored, computed);
}

/**
 * Verifies `X-API-Key` values (KEY-1, KEY-2). The presented key is parsed strictly
 * (malformed input never reaches the database), its HMAC is looked up in the embedded
 * account's row-level-security context, the stored and computed hashes are compared in
 * constant time, and revoked or expired keys are refused.
 *
 * Verified keys are cached in process for a short time, but only while the revocation
 * feed is live: a revocation on any instance removes the entry (within the feed's bound,
 * well under 1 s), and when the feed cannot vouch for that, every verification goes to
 * the database. last_used_at is written at most once a minute per key, in the background.
 */
export class ApiKeyVerifier {
  private readonly database: Database;
  private readonly pepper: string;
  private readonly clock: Clock;
  private readonly feed: RevocationFeed;
  private readonly cache: VerificationCache;
  private readonly lastUsedIntervalMs: number;
  private readonly logger: ApiKeyVerifierOptions['logger'];
  private readonly touching = new Set<string>();
  private readonly pendingWrites = new Set<Promise<void>>();
  private closed = false;

  constructor(options: ApiKeyVerifierOptions) {
    if (!options.pepper) throw new Error('API key verification needs the API key pepper (API_KEY_PEPPER)');
    this.database = options.database;
    this.pepper = options.pepper;
    this.clock = options.clock;
    this.feed = options.feed ?? new LocalRevocationFeed();
    this.logger = options.logger;
    this.cache = new VerificationCache(options.cacheTtlMs ?? 30_000, options.cacheMaxEntries ?? 10_000);
    this.lastUsedIntervalMs = options.lastUsedIntervalMs ?? 60_000;
    this.feed.start({
      onKeyChanged: (keyId) => this.cache.invalidateKey(keyId),
      onReset: () => this.cache.clear(),
    });
  }

  /** Whether verifications may currently be answered from the cache. */
  get cacheEnabled(): boolean {
    return this.feed.isLive();
  }

  /** Entries cached right now (observability and tests). */
  get cacheSize(): number {
    return this.cache.size;
  }

  /** The key's account and id, or undefined for anything that must be refused (never throws on bad input). */
  async verify(presented: string): Promise<VerifiedApiKey | undefined> {
    if (typeof presented !== 'string' || presented.length > MAX_API_KEY_LENGTH) return undefined;
    const now = this.clock.now();
    const nowMs = now.getTime();

    // The cache is indexed by SHA-256 of the whole presented key: an entry exists only for
    // a string that parsed and verified against the database, so a hit needs neither the
    // parse nor the HMAC (node's createHmac costs about ten times a one-shot hash, measured
    // here, and this runs on every request). Equal digests mean equal keys; the lookup
    // compares digests, never the secret itself, so it tells a caller nothing about how
    // close a guess was.
    const useCache = this.feed.isLive();
    const digest = useCache ? cacheDigest(presented) : '';
    if (useCache) {
      const cached = this.cache.get(digest, nowMs);
      if (cached) {
        if (cached.expiresAtMs !== null && cached.expiresAtMs <= nowMs) {
          this.cache.delete(digest);
          return undefined;
        }
        this.recordUse(cached, now);
        return { accountId: cached.accountId, keyId: cached.keyId };
      }
    }

    const parsed = parseApiKey(presented);
    if (!parsed) return undefined;
    const computed = hashApiKey(this.pepper, presented);
    const hashHex = computed.toString('hex');
    const epochAtLookup = this.cache.epoch;
    // The key names its account; only that account's rows are visible (ACC-3), and the
    // row's account is checked again below.
    const row = await forAccount(this.database, parsed.accountId, (tx) => findApiKeyByHash(tx, hashHex));
    const stored = row ? Buffer.from(row.secret_hash, 'hex') : ZERO_HASH;
    if (!sameHash(stored, computed) || !row) return undefined;
    if (row.account_id !== parsed.accountId) return undefined;
    if (row.revoked_at !== null) return undefined;
    const expiresAtMs = row.expires_at === null ? null : row.expires_at.getTime();
    if (expiresAtMs !== null && expiresAtMs <= nowMs) return undefined;

    const verification: CachedVerification = {
      keyId: row.id,
      accountId: row.account_id,
      expiresAtMs,
      lastUsedAtMs: row.last_used_at === null ? null : row.last_used_at.getTime(),
    };
    // Stored only if the feed is live now and was when we started, and nothing was
    // invalidated in between (the cache checks the epoch).
    if (useCache && this.feed.isLive()) this.cache.set(digest, verification, nowMs, epochAtLookup);
    this.recordUse(verification, now);
    return { accountId: row.account_id, keyId: row.id };
  }

  /** A key changed on this instance (the key service calls this after its commit). */
  invalidateKey(keyId: string): void {
    this.cache.invalidateKey(keyId);
  }

  /** Resolves once the last_used_at writes started so far have finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pendingWrites]);
  }

  /** Stops listening and waits for last_used_at writes in flight. Call before closing the database. */
  async close(): Promise<void> {
    this.closed = true;
    await this.feed.close();
    this.cache.clear();
    await Promise.allSettled([...this.pendingWrites]);
  }

  private recordUse(verification: CachedVerification, now: Date): void {
    if (this.closed) return;
    const nowMs = now.getTime();
    if (verification.lastUsedAtMs !== null && nowMs - verification.lastUsedAtMs < this.lastUsedIntervalMs) return;
    if (this.touching.has(verification.keyId)) return;
    verification.lastUsedAtMs = nowMs;
    this.touching.add(verification.keyId);
    const write = forAccount(this.database, verification.accountId, (tx) =>
      touchApiKey(tx, verification.keyId, now, this.lastUsedIntervalMs),
    )
      .catch((error: unknown) => {
        // Losing a last-used timestamp is harmless; the next use tries again.
        verification.lastUsedAtMs = null;
        this.logger?.warn({ keyId: verification.keyId, reason: error instanceof Error ? error.message : String(error) }, 'could not record API key use');
      })
      .finally(() => {
        this.touching.delete(verification.keyId);
        this.pendingWrites.delete(write);
      });
    this.pendingWrites.add(write);
  }
}
