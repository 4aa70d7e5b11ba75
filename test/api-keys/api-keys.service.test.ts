import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiKeyVerifier } from '../../src/modules/api-keys/api-key-verifier.js';
import { hashApiKeyHex, generateApiKey } from '../../src/modules/api-keys/api-key-format.js';
import { ApiKeyService } from '../../src/modules/api-keys/api-keys.service.js';
import { AppError } from '../../src/errors/app-error.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem, forAccount } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { newId } from '../../src/platform/ids.js';
import {
  PEPPER,
  SwitchableFeed,
  USER_ACTOR,
  allKeyRowsAsText,
  countingDatabase,
  createAccount,
  createAppRolePglite,
  memoryAudit,
} from './fixtures.js';

async function expectAppError(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe(code);
}

describe('API key service and verifier on PGlite (KEY-1, KEY-2, ACC-2, ACC-3)', () => {
  let database: Database;
  let clock: ManualClock;
  let feed: SwitchableFeed;
  let verifier: ApiKeyVerifier;
  let service: ApiKeyService;
  let audit: ReturnType<typeof memoryAudit>;
  let accountA: string;
  let accountB: string;

  beforeEach(async () => {
    database = await createAppRolePglite();
    clock = new ManualClock('2026-03-01T12:00:00Z');
    feed = new SwitchableFeed();
    verifier = new ApiKeyVerifier({ database, pepper: PEPPER, clock, feed });
    audit = memoryAudit();
    service = new ApiKeyService({ database, clock, pepper: PEPPER, onKeyChanged: (id) => verifier.invalidateKey(id), audit: audit.recorder });
    accountA = await createAccount(database);
    accountB = await createAccount(database);
  });

  afterEach(async () => {
    await verifier.close();
    await database.close();
  });

  it('issues a key that verifies for its account, and stores only the HMAC', async () => {
    const issued = await service.issue(accountA, { label: 'CI' }, USER_ACTOR);
    expect(issued.secret.startsWith(`cust_${accountA}_`)).toBe(true);
    expect(issued.key).toMatchObject({ label: 'CI', prefix: issued.secret.slice(0, `cust_${accountA}_`.length + 4), revokedAt: null, expiresAt: null });
    expect(await verifier.verify(issued.secret)).toEqual({ accountId: accountA, keyId: issued.key.id });

    const stored = await allKeyRowsAsText(database);
    const secretPart = issued.secret.slice(-43);
    expect(stored).not.toContain(secretPart);
    expect(stored).not.toContain(secretPart.slice(4, 20));
    expect(stored).toContain(hashApiKeyHex(PEPPER, issued.secret));
    expect(audit.entries).toEqual([
      expect.objectContaining({ event: 'api_key.issued', subjectType: 'api_key', subjectId: issued.key.id, actorType: 'user', ip: '203.0.113.7' }),
    ]);
    expect(JSON.stringify(audit.entries)).not.toContain(secretPart);
  });

  it('lists keys without secrets or hashes, newest first, page by page', async () => {
    const first = await service.issue(accountA, {}, USER_ACTOR);
    clock.advance(1_000);
    const second = await service.issue(accountA, { label: 'two' }, USER_ACTOR);
    clock.advance(1_000);
    const third = await service.issue(accountA, { label: 'three' }, USER_ACTOR);
    await service.issue(accountB, {}, USER_ACTOR);

    const page1 = await service.list(accountA, { limit: 2 });
    expect(page1.items.map((key) => key.id)).toEqual([third.key.id, second.key.id]);
    expect(page1.nextCursor).not.toBeNull();
    const page2 = await service.list(accountA, { limit: 2, cursor: page1.nextCursor as string });
    expect(page2.items.map((key) => key.id)).toEqual([first.key.id]);
    expect(page2.nextCursor).toBeNull();

    const text = JSON.stringify([page1, page2]);
    for (const issued of [first, second, third]) {
      expect(text).not.toContain(issued.secret.slice(-43));
      expect(text).not.toContain(hashApiKeyHex(PEPPER, issued.secret));
    }
    expect(Object.keys(page1.items[0] ?? {}).sort()).toEqual(['createdAt', 'expiresAt', 'id', 'label', 'lastUsedAt', 'prefix', 'revokedAt']);
    await expectAppError(service.list(accountA, { cursor: 'not-a-cursor' }), 'VALIDATION_FAILED');
  });

  it('refuses a revoked key at once, even though it was cached', async () => {
    const issued = await service.issue(accountA, {}, USER_ACTOR);
    expect(await verifier.verify(issued.secret)).toBeDefined();
    expect(verifier.cacheSize).toBe(1);
    await service.revoke(accountA, issued.key.id, USER_ACTOR);
    expect(await verifier.verify(issued.secret)).toBeUndefined();
    const [key] = (await service.list(accountA)).items;
    expect(key?.revokedAt).toBe(clock.now().toISOString());
    expect(audit.entries.map((entry) => entry.event)).toEqual(['api_key.issued', 'api_key.revoked']);
    // Revoking again is a no-op, not an error, and is not audited twice.
    await service.revoke(accountA, issued.key.id, USER_ACTOR);
    expect(audit.entries).toHaveLength(2);
  });

  it("answers 404 for another account's key or an unknown key, and changes nothing", async () => {
    const foreign = await service.issue(accountB, {}, USER_ACTOR);
    const before = await allKeyRowsAsText(database);
    await expectAppError(service.revoke(accountA, foreign.key.id, USER_ACTOR), 'NOT_FOUND');
    await expectAppError(service.revoke(accountA, newId('apiKey'), USER_ACTOR), 'NOT_FOUND');
    await expectAppError(service.rotate(accountA, foreign.key.id, {}, USER_ACTOR), 'NOT_FOUND');
    expect(await allKeyRowsAsText(database)).toBe(before);
    expect(await verifier.verify(foreign.secret)).toEqual({ accountId: accountB, keyId: foreign.key.id });
    expect(audit.entries.map((entry) => entry.event)).toEqual(['api_key.issued']);
  });

  it('row-level security: account A sees none of B\'s keys, even without a filter', async () => {
    const mine = await service.issue(accountA, {}, USER_ACTOR);
    await service.issue(accountB, {}, USER_ACTOR);
    const visible = await forAccount(database, accountA, (tx) => tx.query<{ id: string; account_id: string }>('SELECT id, account_id FROM api_keys'));
    expect(visible.rows).toEqual([{ id: mine.key.id, account_id: accountA }]);
    const none = await database.query('SELECT id FROM api_keys');
    expect(none.rows).toEqual([]);
    expect((await service.list(accountB)).items).toHaveLength(1);
  });

  it('refuses a key whose hash matches a row of another account', async () => {
    // A row of B carrying the hash of a key that names A: the look-up runs as A and must not find it.
    const { key, prefix } = generateApiKey(accountA);
    await asSystem(database, (tx) =>
      tx.query(`INSERT INTO api_keys (id, account_id, prefix, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)`, [
        newId('apiKey'),
        accountB,
        prefix,
        hashApiKeyHex(PEPPER, key),
        clock.now(),
      ]),
    );
    expect(await verifier.verify(key)).toBeUndefined();
  });

  it('refuses unknown, tampered and malformed keys; malformed ones never reach the database', async () => {
    const issued = await service.issue(accountA, {}, USER_ACTOR);
    const last = issued.secret.slice(-1);
    const tampered = issued.secret.slice(0, -2) + (issued.secret.at(-2) === 'A' ? 'B' : 'A') + last;
    expect(await verifier.verify(tampered)).toBeUndefined();
    expect(await verifier.verify(issued.secret.replace(accountA, accountB))).toBeUndefined();
    expect(await verifier.verify(generateApiKey(accountA).key)).toBeUndefined();

    const counting = countingDatabase(database);
    const counted = new ApiKeyVerifier({ database: counting.database, pepper: PEPPER, clock, feed: new SwitchableFeed() });
    for (const junk of ['', 'Bearer x', `${issued.secret}x`, issued.secret.slice(1), 'cust_'.padEnd(10_000, 'a')]) {
      expect(await counted.verify(junk)).toBeUndefined();
    }
    expect(counting.statements()).toBe(0);
    expect(await counted.verify(issued.secret)).toBeDefined();
    const afterFirst = counting.statements();
    expect(afterFirst).toBeGreaterThan(0);
    // Cached now: the same key is answered without the database, a key one character away is not the cached one.
    expect(await counted.verify(issued.secret)).toEqual({ accountId: accountA, keyId: issued.key.id });
    expect(counting.statements()).toBe(afterFirst);
    expect(await counted.verify(tampered)).toBeUndefined();
    expect(await counted.verify(issued.secret.replace(accountA, accountB))).toBeUndefined();
    await counted.close();
  });

  it('a verifier with another pepper refuses every key', async () => {
    const issued = await service.issue(accountA, {}, USER_ACTOR);
    const other = new ApiKeyVerifier({ database, pepper: 'x'.repeat(64), clock });
    expect(await other.verify(issued.secret)).toBeUndefined();
    await other.close();
  });

  it('rotates with an overlap: both keys work until the overlap ends, then only the new one', async () => {
    const old = await service.issue(accountA, { label: 'deploy' }, USER_ACTOR);
    expect(await verifier.verify(old.secret)).toBeDefined(); // cached without an expiry
    const replacement = await service.rotate(accountA, old.key.id, { overlapSeconds: 3600 }, USER_ACTOR);
    expect(replacement.key.id).not.toBe(old.key.id);
    expect(replacement.key.label).toBe('deploy');
    expect(replacement.secret).not.toBe(old.secret);

    expect(await verifier.verify(old.secret)).toEqual({ accountId: accountA, keyId: old.key.id });
    expect(await verifier.verify(replacement.secret)).toEqual({ accountId: accountA, keyId: replacement.key.id });
    const listed = (await service.list(accountA)).items.find((key) => key.id === old.key.id);
    expect(listed?.expiresAt).toBe(new Date(clock.now().getTime() + 3_600_000).toISOString());

    clock.advance(3_599_000);
    expect(await verifier.verify(old.secret)).toBeDefined();
    clock.advance(1_000);
    expect(await verifier.verify(old.secret)).toBeUndefined();
    expect(await verifier.verify(replacement.secret)).toBeDefined();

    const rotated = audit.entries.find((entry) => entry.event === 'api_key.rotated');
    expect(rotated).toMatchObject({ subjectId: old.key.id, metadata: { newKeyId: replacement.key.id } });
    // An expired or revoked key cannot be rotated.
    await expectAppError(service.rotate(accountA, old.key.id, {}, USER_ACTOR), 'CONFLICT');
  });

  it('rotation by default keeps the old key for 24 hours; 0 ends it now; an earlier expiry is kept', async () => {
    const old = await service.issue(accountA, {}, USER_ACTOR);
    const next = await service.rotate(accountA, old.key.id, {}, USER_ACTOR);
    const expiry = (id: string) => service.list(accountA).then((page) => page.items.find((key) => key.id === id)?.expiresAt);
    expect(await expiry(old.key.id)).toBe(new Date(clock.now().getTime() + 86_400_000).toISOString());
    // Rotating the old key again with a longer overlap does not extend it.
    await service.rotate(accountA, old.key.id, { overlapSeconds: 10 * 86_400 }, USER_ACTOR);
    expect(await expiry(old.key.id)).toBe(new Date(clock.now().getTime() + 86_400_000).toISOString());
    await service.rotate(accountA, next.key.id, { overlapSeconds: 0 }, USER_ACTOR);
    expect(await verifier.verify(next.secret)).toBeUndefined();
    await expectAppError(service.rotate(accountA, old.key.id, { overlapSeconds: -1 }, USER_ACTOR), 'VALIDATION_FAILED');
  });

  it('records last use at most once a minute per key', async () => {
    const issued = await service.issue(accountA, {}, USER_ACTOR);
    const lastUsed = async () => (await service.list(accountA)).items[0]?.lastUsedAt;
    const start = clock.now().toISOString();
    await verifier.verify(issued.secret);
    await verifier.settled();
    expect(await lastUsed()).toBe(start);
    clock.advance(59_000);
    await verifier.verify(issued.secret);
    await verifier.settled();
    expect(await lastUsed()).toBe(start);
    clock.advance(1_000);
    await verifier.verify(issued.secret);
    await verifier.settled();
    expect(await lastUsed()).toBe(clock.now().toISOString());
  });

  it('uses the cache only while the revocation feed is live (fail closed)', async () => {
    const issued = await service.issue(accountA, {}, USER_ACTOR);
    expect(await verifier.verify(issued.secret)).toBeDefined();
    // A revocation this instance was never told about (as if a notification were lost):
    await asSystem(database, (tx) => tx.query('UPDATE api_keys SET revoked_at = $2 WHERE id = $1', [issued.key.id, clock.now()]));
    // While the feed vouches for the cache, the cached answer stands (this is what the cache is for)...
    expect(await verifier.verify(issued.secret)).toBeDefined();
    // ...but once it cannot, every verification reads the database.
    feed.live = false;
    expect(await verifier.verify(issued.secret)).toBeUndefined();
    expect(verifier.cacheEnabled).toBe(false);
  });

  it('forgets everything when the feed reports that changes may have been missed', async () => {
    const issued = await service.issue(accountA, {}, USER_ACTOR);
    await verifier.verify(issued.secret);
    expect(verifier.cacheSize).toBe(1);
    feed.handlers?.onReset();
    expect(verifier.cacheSize).toBe(0);
    feed.handlers?.onKeyChanged('key_unrelated');
    await verifier.verify(issued.secret);
    expect(verifier.cacheSize).toBe(1);
    feed.handlers?.onKeyChanged(issued.key.id);
    expect(verifier.cacheSize).toBe(0);
  });

  it('rolls the key back when its audit entry cannot be written (one transaction)', async () => {
    const failing = new ApiKeyService({
      database,
      clock,
      pepper: PEPPER,
      audit: async () => {
        throw new Error('audit unavailable');
      },
    });
    await expect(failing.issue(accountA, {}, USER_ACTOR)).rejects.toThrow('audit unavailable');
    expect(await allKeyRowsAsText(database)).toBe('[]');
  });

  it('limits the usable keys of an account, and refuses keys for unknown or deleted accounts', async () => {
    const small = new ApiKeyService({ database, clock, pepper: PEPPER, maxUsableKeysPerAccount: 2 });
    const first = await small.issue(accountA, {}, USER_ACTOR);
    await small.issue(accountA, {}, USER_ACTOR);
    await expectAppError(small.issue(accountA, {}, USER_ACTOR), 'CONFLICT');
    await small.revoke(accountA, first.key.id, USER_ACTOR);
    await small.issue(accountA, {}, USER_ACTOR);

    await expectAppError(service.issueForAccount(newId('account'), {}, USER_ACTOR), 'NOT_FOUND');
    const deleted = await createAccount(database, clock.now(), 'deleted');
    await expectAppError(service.issueForAccount(deleted, {}, USER_ACTOR), 'NOT_FOUND');
    await expectAppError(service.issue(newId('account'), {}, USER_ACTOR), 'NOT_FOUND');
  });

  it('operators issue for any account and revoke any key by id', async () => {
    const admin = { actorType: 'admin', actorId: null, ip: '198.51.100.1' };
    const issued = await service.issueForAccount(accountB, { label: 'ops' }, admin);
    expect(await verifier.verify(issued.secret)).toEqual({ accountId: accountB, keyId: issued.key.id });
    await service.revokeById(issued.key.id, admin);
    expect(await verifier.verify(issued.secret)).toBeUndefined();
    await expectAppError(service.revokeById(newId('apiKey'), admin), 'NOT_FOUND');
    expect(audit.entries.map((entry) => [entry.event, entry.actorType])).toEqual([
      ['api_key.issued', 'admin'],
      ['api_key.revoked', 'admin'],
    ]);
  });
});
