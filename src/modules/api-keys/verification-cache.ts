/** A verified key as remembered by one instance. */
export interface CachedVerification {
  readonly keyId: string;
  readonly accountId: string;
  /** The key's own expiry (rotation overlap), epoch milliseconds; null when it has none. */
  readonly expiresAtMs: number | null;
  /** When this instance last recorded use of the key (or read it from the row), epoch milliseconds. */
  lastUsedAtMs: number | null;
}

interface Slot {
  readonly value: CachedVerification;
  readonly storedAtMs: number;
}

/**
 * A bounded LRU of verified keys, keyed by a digest of the presented key (ApiKeyVerifier's
 * `cacheDigest`), with a time to live.
 *
 * Revocation freshness rests on the epoch: every invalidation (one key, or everything)
 * increments it, and a database look-up may only store its answer if the epoch has not
 * moved since the look-up began. So a look-up that read a row just before a revocation
 * committed, and finished just after the invalidation arrived, cannot put the revoked key
 * back into the cache.
 */
export class VerificationCache {
  private readonly slots = new Map<string, Slot>();
  private readonly digestByKeyId = new Map<string, string>();
  private currentEpoch = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {
    if (!(ttlMs > 0) || !Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('cache needs a positive TTL and size');
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  get size(): number {
    return this.slots.size;
  }

  get(digest: string, nowMs: number): CachedVerification | undefined {
    const slot = this.slots.get(digest);
    if (!slot) return undefined;
    if (nowMs - slot.storedAtMs >= this.ttlMs || nowMs < slot.storedAtMs) {
      this.remove(digest, slot.value.keyId);
      return undefined;
    }
    // Most recently used goes to the end of the Map's insertion order.
    this.slots.delete(digest);
    this.slots.set(digest, slot);
    return slot.value;
  }

  /** Stores a verification read at `epochAtLookup`; refused (false) if anything was invalidated since. */
  set(digest: string, value: CachedVerification, nowMs: number, epochAtLookup: number): boolean {
    if (epochAtLookup !== this.currentEpoch) return false;
    this.slots.delete(digest);
    this.slots.set(digest, { value, storedAtMs: nowMs });
    this.digestByKeyId.set(value.keyId, digest);
    while (this.slots.size > this.maxEntries) {
      const oldest = this.slots.entries().next().value;
      if (!oldest) break;
      this.remove(oldest[0], oldest[1].value.keyId);
    }
    return true;
  }

  delete(digest: string): void {
    const slot = this.slots.get(digest);
    if (slot) this.remove(digest, slot.value.keyId);
  }

  /** A key was revoked or re-dated somewhere. */
  invalidateKey(keyId: string): void {
    this.currentEpoch += 1;
    const digest = this.digestByKeyId.get(keyId);
    if (digest !== undefined) this.remove(digest, keyId);
  }

  /** Invalidations may have been missed (the listener dropped): forget everything. */
  clear(): void {
    this.currentEpoch += 1;
    this.slots.clear();
    this.digestByKeyId.clear();
  }

  private remove(digest: string, keyId: string): void {
    this.slots.delete(digest);
    if (this.digestByKeyId.get(keyId) === digest) this.digestByKeyId.delete(keyId);
  }
}
