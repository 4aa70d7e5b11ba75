import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { entryHash, GENESIS_HASH, type JsonValue } from '../../src/modules/audit/audit.hash.js';
import { erasePersonalAuditData, listAuditEntries, recordAudit } from '../../src/modules/audit/audit.service.js';
import { verifyAuditChain } from '../../src/modules/audit/audit.verify.js';
import { runAuditVerify } from '../../src/modules/audit/verify-command.js';
import { ManualClock } from '../../src/platform/clock.js';
import type { Database } from '../../src/platform/database/database.js';
import { createTestPglite } from '../helpers/pglite.js';
import {
  account,
  anonymous,
  asApp,
  asOwner,
  chainLinks,
  recordMany,
  rejectionOf,
  resetAuditLog,
  sampleEntry,
  system,
  tamper,
} from './helpers.js';

/** An independent canonical JSON (sorted keys, no whitespace), to pin the documented hash format. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const PSEUDONYM_KEY = 'test-pseudonym-key-0123456789abcdef';

let database: Database;
let clock: ManualClock;

beforeAll(async () => {
  database = await createTestPglite();
});
afterAll(async () => {
  await database?.close();
});
beforeEach(async () => {
  await resetAuditLog(database);
  clock = new ManualClock('2026-05-01T10:00:00.123Z');
});

async function recordFive() {
  const entries = [];
  for (let index = 1; index <= 5; index += 1) {
    clock.advance(1_000);
    entries.push(...(await recordMany(database, clock, [sampleEntry(index)])));
  }
  return entries;
}

describe('recording (AUD-1)', () => {
  it('chains every entry to the one before it, starting from the genesis hash', async () => {
    const entries = await recordFive();
    const links = await chainLinks(database);
    expect(links.map((link) => link.id)).toEqual(entries.map((entry) => entry.id));
    expect(links[0]?.prev_hash).toBe(GENESIS_HASH);
    for (let index = 1; index < links.length; index += 1) expect(links[index]?.prev_hash).toBe(links[index - 1]?.hash);
    expect(new Set(links.map((link) => link.hash)).size).toBe(5);
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 5 });
  });

  it('hashes exactly the documented canonical form (0003_audit.sql)', async () => {
    clock.set('2026-05-01T10:00:00.120Z');
    await recordMany(database, clock, [
      sampleEntry(1, { ip: '198.51.100.7', metadata: { zeta: 1, alpha: { b: 2, a: [true, null] } }, personal: { email: 'ann@example.com' } }),
    ]);
    const { rows } = await asOwner(database, (tx) =>
      tx.query<{ id: string; personal_salt: string; personal_digest: string; prev_hash: string; hash: string }>(
        'SELECT id, personal_salt, personal_digest, prev_hash, hash FROM audit_log',
      ),
    );
    const row = rows[0];
    if (!row) throw new Error('no row');
    const digest = sha256(`${row.personal_salt}\n${sortedJson({ ip: '198.51.100.7', personal: { email: 'ann@example.com' } })}`);
    expect(row.personal_digest).toBe(digest);
    const content = sortedJson({
      v: 1,
      id: row.id,
      at: '2026-05-01T10:00:00.120Z',
      event: 'api_key.issued',
      actorType: 'user',
      actorId: 'usr_1',
      subjectType: 'api_key',
      subjectId: 'key_1',
      accountId: 'acct_a',
      metadata: { zeta: 1, alpha: { b: 2, a: [true, null] } },
      personalDigest: digest,
    });
    expect(row.prev_hash).toBe(GENESIS_HASH);
    expect(row.hash).toBe(sha256(`${GENESIS_HASH}\n${content}`));
  });

  it('reads entries back in the API shape, newest first, personal details merged into metadata', async () => {
    clock.set('2026-05-01T10:00:00.500Z');
    const recorded = await recordMany(database, clock, [
      { event: 'auth.login_failed', actorType: 'anonymous', accountId: 'acct_a', ip: '192.0.2.1', metadata: { reason: 'bad_password', email: 'ann@example.com' } },
      { event: 'api_key.issued', actorType: 'user', actorId: 'usr_1', subjectType: 'api_key', subjectId: 'key_1', accountId: 'acct_a' },
    ]);
    const page = await asApp(database, system, (tx) => listAuditEntries(tx, { limit: 10 }));
    expect(page.nextCursor).toBeNull();
    expect(page.items.map((item) => item.id)).toEqual([recorded[1]?.id, recorded[0]?.id]);
    expect(page.items[1]).toMatchObject({
      id: recorded[0]?.id,
      at: '2026-05-01T10:00:00.500Z',
      event: 'auth.login_failed',
      actorType: 'anonymous',
      actorId: null,
      subjectType: null,
      subjectId: null,
      accountId: 'acct_a',
      ip: '192.0.2.1',
      metadata: { reason: 'bad_password', email: 'ann@example.com' },
    });
    expect(recorded[0]?.id).toMatch(/^aud_[A-Za-z0-9_-]{22}$/);
  });

  it('keeps personal metadata keys (email) out of the hashed metadata, in the erasable part', async () => {
    await recordMany(database, clock, [
      { event: 'auth.login_failed', actorType: 'anonymous', metadata: { email: 'ann@example.com', reason: 'unknown_email' }, personal: { name: 'Ann' } },
    ]);
    const { rows } = await asOwner(database, (tx) => tx.query<{ metadata: unknown; personal: unknown }>('SELECT metadata, personal FROM audit_log'));
    expect(rows[0]).toEqual({ metadata: { reason: 'unknown_email' }, personal: { email: 'ann@example.com', name: 'Ann' } });
  });

  it('commits and rolls back with the action it records', async () => {
    await recordMany(database, clock, [sampleEntry(1)]);
    const failure = await rejectionOf(
      asApp(database, system, async (tx) => {
        await recordAudit(tx, sampleEntry(2), clock);
        throw new Error('the action failed');
      }),
    );
    expect(failure.message).toBe('the action failed');
    await recordMany(database, clock, [sampleEntry(3)]);
    const links = await chainLinks(database);
    expect(links).toHaveLength(2);
    expect(links[1]?.prev_hash).toBe(links[0]?.hash);
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 2 });
  });

  it('chains several entries recorded in one transaction', async () => {
    await asApp(database, account('acct_a'), async (tx) => {
      for (let index = 1; index <= 3; index += 1) await recordAudit(tx, sampleEntry(index), clock);
    });
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 3 });
  });

  it('refuses event names that are not dotted lower-case, and records nothing', async () => {
    for (const event of ['LoginFailed', 'auth', 'auth..failed', 'auth.Failed', '']) {
      await expect(asApp(database, system, (tx) => recordAudit(tx, sampleEntry(1, { event }), clock))).rejects.toThrow(TypeError);
    }
    expect(await chainLinks(database)).toEqual([]);
  });

  it('stores awkward metadata exactly as it hashed it, so it verifies', async () => {
    const awkward = {
      when: new Date('2026-01-02T03:04:05.678Z'),
      missing: undefined,
      notANumber: Number.NaN,
      negativeZero: -0,
      big: 1e21,
      tiny: 5e-324,
      fraction: 0.1 + 0.2,
      nested: { b: 1, a: [1, 'x', null, undefined] },
      text: 'lone \ud800 surrogate, nul \u0000, emoji \u{1F600}, quote " and backslash \\',
      ...JSON.parse('{"__proto__": {"polluted": true}}'),
    };
    await recordMany(database, clock, [sampleEntry(1, { metadata: awkward, actorId: 'usr_\u0000' })]);
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const { rows } = await asOwner(database, (tx) => tx.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM audit_log'));
    const stored = rows[0]?.metadata ?? {};
    expect(Object.keys(stored).sort()).toEqual(['__proto__', 'big', 'fraction', 'negativeZero', 'nested', 'notANumber', 'text', 'tiny', 'when']);
    expect(stored).toMatchObject({ when: '2026-01-02T03:04:05.678Z', notANumber: null, negativeZero: 0, nested: { b: 1, a: [1, 'x', null, null] } });
  });

  it('refuses, in the database, an entry that does not continue the chain', async () => {
    await recordMany(database, clock, [sampleEntry(1)]);
    const error = await rejectionOf(
      asApp(database, system, (tx) =>
        tx.query(
          `INSERT INTO audit_log (id, at, event, actor_type, personal_salt, personal_digest, prev_hash, hash)
           VALUES ('aud_forged', now(), 'auth.login', 'user', 'salt', 'digest', $1, 'forged')`,
          [GENESIS_HASH],
        ),
      ),
    );
    expect(error.message).toMatch(/does not continue the chain/);
  });
});

describe('append-only in the database (AUD-2)', () => {
  it('refuses UPDATE, DELETE and TRUNCATE even for the table owner', async () => {
    const entries = await recordFive();
    const update = await rejectionOf(asOwner(database, (tx) => tx.query(`UPDATE audit_log SET metadata = '{"index": 99}'`)));
    expect(update.message).toMatch(/append-only: UPDATE refused/);
    const erase = await rejectionOf(asOwner(database, (tx) => tx.query('DELETE FROM audit_log WHERE id = $1', [entries[1]?.id])));
    expect(erase.message).toMatch(/append-only: DELETE refused/);
    const truncate = await rejectionOf(asOwner(database, (tx) => tx.query('TRUNCATE audit_log')));
    expect(truncate.message).toMatch(/TRUNCATE refused/);
    // The chain head cannot be rewound or removed either.
    const rewind = await rejectionOf(asOwner(database, (tx) => tx.query('UPDATE audit_chain_head SET last_seq = 0')));
    expect(rewind.message).toMatch(/only moves forward/);
    const dropHead = await rejectionOf(asOwner(database, (tx) => tx.query('DELETE FROM audit_chain_head')));
    expect(dropHead.message).toMatch(/only moves forward/);
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 5 });
  });

  it('refuses UPDATE, DELETE and TRUNCATE to the application role by privilege', async () => {
    await recordFive();
    for (const sql of [
      `UPDATE audit_log SET metadata = '{}'`,
      'DELETE FROM audit_log',
      'TRUNCATE audit_log',
      'UPDATE audit_chain_head SET last_seq = last_seq + 1',
    ]) {
      const error = await rejectionOf(asApp(database, system, (tx) => tx.query(sql)));
      expect(error.code, sql).toBe('42501');
      expect(error.message).toMatch(/permission denied/);
    }
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 5 });
  });

  it('refuses an owner UPDATE shaped like an erasure unless audit_erase_personal makes it', async () => {
    const entries = await recordFive();
    const error = await rejectionOf(
      asOwner(database, (tx) =>
        tx.query(`UPDATE audit_log SET ip = 'pse_' || repeat('a', 32), personal_salt = NULL, erased_at = now() WHERE id = $1`, [entries[0]?.id]),
      ),
    );
    expect(error.message).toMatch(/append-only: UPDATE refused/);
  });
});

describe('verification names the first broken entry (AUD-2)', () => {
  it('reports an entry whose metadata was changed behind the trigger', async () => {
    const entries = await recordFive();
    await tamper(database, `UPDATE audit_log SET metadata = '{"index": 3, "label": "not what happened"}' WHERE id = $1`, [entries[2]?.id]);
    expect(await verifyAuditChain(database)).toEqual({ valid: false, brokenAt: entries[2]?.id, reason: 'hash_mismatch', checked: 2 });
  });

  it('reports the entry after a gap when one in the middle was deleted', async () => {
    const entries = await recordFive();
    await tamper(database, 'DELETE FROM audit_log WHERE id = $1', [entries[2]?.id]);
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[3]?.id, reason: 'prev_hash_mismatch' });
  });

  it('reports the missing entry when the newest was deleted', async () => {
    const entries = await recordFive();
    await tamper(database, 'DELETE FROM audit_log WHERE id = $1', [entries[4]?.id]);
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[4]?.id, reason: 'missing_tail' });
  });

  it('reports an entry whose IP was changed', async () => {
    const entries = await recordFive();
    await tamper(database, `UPDATE audit_log SET ip = '10.0.0.1' WHERE id = $1`, [entries[1]?.id]);
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[1]?.id, reason: 'personal_data_mismatch' });
  });

  /** What a careful tamperer does: rewrite an entry's metadata and store a freshly computed hash for it. */
  async function forge(id: string | undefined, metadata: Record<string, JsonValue>): Promise<void> {
    const { rows } = await asOwner(database, (tx) =>
      tx.query<{ at: Date; event: string; actor_type: string; actor_id: string | null; subject_type: string | null; subject_id: string | null; account_id: string | null; personal_digest: string; prev_hash: string }>(
        'SELECT * FROM audit_log WHERE id = $1',
        [id],
      ),
    );
    const row = rows[0];
    if (!row) throw new Error('no such entry');
    const hash = entryHash(row.prev_hash, {
      id: id ?? '',
      at: new Date(row.at).toISOString(),
      event: row.event,
      actorType: row.actor_type,
      actorId: row.actor_id,
      subjectType: row.subject_type,
      subjectId: row.subject_id,
      accountId: row.account_id,
      metadata,
      personalDigest: row.personal_digest,
    });
    await tamper(database, 'UPDATE audit_log SET metadata = $2::jsonb, hash = $3 WHERE id = $1', [id, JSON.stringify(metadata), hash]);
  }

  it('reports the entry after one rewritten with a freshly computed hash', async () => {
    const entries = await recordFive();
    await forge(entries[2]?.id, { index: 3, label: 'rewritten' });
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[3]?.id, reason: 'prev_hash_mismatch' });
  });

  it('reports the newest entry when it was rewritten with a freshly computed hash (the chain head disagrees)', async () => {
    const entries = await recordFive();
    await forge(entries[4]?.id, { index: 5, label: 'rewritten' });
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[4]?.id, reason: 'head_mismatch' });
  });

  it('pages through the log and still finds a break on the last page', async () => {
    const entries = await recordFive();
    expect(await verifyAuditChain(database, { pageSize: 2 })).toEqual({ valid: true, checked: 5 });
    await tamper(database, `UPDATE audit_log SET event = 'api_key.revoked' WHERE id = $1`, [entries[4]?.id]);
    expect(await verifyAuditChain(database, { pageSize: 2 })).toMatchObject({ valid: false, brokenAt: entries[4]?.id, checked: 4 });
  });

  it('calls an empty log valid', async () => {
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 0 });
  });

  it('the audit:verify command prints the result and exits 1 naming the broken entry', async () => {
    const entries = await recordFive();
    let output = '';
    const stdout = { write: (text: string) => (output += text) };
    expect(await runAuditVerify(database, { stdout })).toBe(0);
    expect(output).toBe('Audit chain valid: 5 entries checked\n');

    await tamper(database, `UPDATE audit_log SET metadata = '{}' WHERE id = $1`, [entries[3]?.id]);
    output = '';
    expect(await runAuditVerify(database, { stdout })).toBe(1);
    expect(output).toContain(`Audit chain BROKEN at entry ${entries[3]?.id}:`);
    output = '';
    expect(await runAuditVerify(database, { stdout, json: true })).toBe(1);
    expect(JSON.parse(output)).toEqual({ valid: false, brokenAt: entries[3]?.id, reason: 'hash_mismatch' });
  });
});

describe('GDPR erasure keeps the chain valid (GDPR-2)', () => {
  async function recordPeople() {
    return recordMany(database, clock, [
      sampleEntry(1, { accountId: 'acct_a', ip: '198.51.100.7', personal: { email: 'ann@example.com' } }),
      sampleEntry(2, { accountId: 'acct_b', ip: '198.51.100.8', personal: { email: 'bob@example.com' } }),
      sampleEntry(3, { accountId: 'acct_a', ip: '198.51.100.7', personal: { email: 'ann@example.com', name: null } }),
      sampleEntry(4, { accountId: 'acct_a', ip: null }),
    ]);
  }

  it('replaces IPs and personal details with keyed pseudonyms, and the chain still verifies', async () => {
    const entries = await recordPeople();
    const erased = await asApp(database, system, (tx) => erasePersonalAuditData(tx, 'acct_a', PSEUDONYM_KEY, clock));
    expect(erased).toBe(3);
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 4 });

    const { rows } = await asOwner(database, (tx) =>
      tx.query<{ id: string; ip: string | null; personal: Record<string, unknown>; personal_salt: string | null; erased_at: Date | null; whole: string }>(
        'SELECT id, ip, personal, personal_salt, erased_at, audit_log::text AS whole FROM audit_log ORDER BY seq',
      ),
    );
    const [first, second, third, fourth] = rows;
    expect(first?.ip).toMatch(/^pse_[0-9a-f]{32}$/);
    expect(third?.ip).toBe(first?.ip); // the same source stays linkable
    expect(first?.personal.email).toMatch(/^pse_[0-9a-f]{32}$/);
    expect(third?.personal).toEqual({ email: first?.personal.email, name: null });
    expect(fourth?.ip).toBeNull();
    for (const row of [first, third, fourth]) {
      expect(row?.personal_salt).toBeNull();
      expect(row?.erased_at).not.toBeNull();
      expect(row?.whole).not.toContain('198.51.100.7');
      expect(row?.whole).not.toContain('ann@example.com');
    }
    // Another account's entries keep their data.
    expect(second).toMatchObject({ ip: '198.51.100.8', personal: { email: 'bob@example.com' }, erased_at: null });
    const page = await asApp(database, account('acct_a'), (tx) => listAuditEntries(tx));
    expect(page.items.find((item) => item.id === entries[0]?.id)?.metadata.email).toBe(first?.personal.email);

    // Erasing again changes nothing.
    expect(await asApp(database, system, (tx) => erasePersonalAuditData(tx, 'acct_a', PSEUDONYM_KEY, clock))).toBe(0);
  });

  it('still detects tampering with an erased entry', async () => {
    const entries = await recordPeople();
    await asApp(database, system, (tx) => erasePersonalAuditData(tx, 'acct_a', PSEUDONYM_KEY, clock));
    await tamper(database, `UPDATE audit_log SET actor_id = 'usr_someone_else' WHERE id = $1`, [entries[2]?.id]);
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[2]?.id, reason: 'hash_mismatch' });
  });

  it('detects a personal digest swapped on an erased entry', async () => {
    const entries = await recordPeople();
    await asApp(database, system, (tx) => erasePersonalAuditData(tx, 'acct_a', PSEUDONYM_KEY, clock));
    await tamper(database, `UPDATE audit_log SET personal_digest = repeat('0', 64) WHERE id = $1`, [entries[0]?.id]);
    expect(await verifyAuditChain(database)).toMatchObject({ valid: false, brokenAt: entries[0]?.id, reason: 'hash_mismatch' });
  });

  it("erases only the calling account's own entries from an account context", async () => {
    const entries = await recordPeople();
    expect(await asApp(database, account('acct_a'), (tx) => erasePersonalAuditData(tx, 'acct_b', PSEUDONYM_KEY, clock))).toBe(0);
    const direct = await asApp(database, account('acct_a'), (tx) =>
      tx.query<{ erased: number }>('SELECT audit_erase_personal($1::jsonb, now()) AS erased', [
        JSON.stringify([{ id: entries[1]?.id, ip: `pse_${'b'.repeat(32)}`, personal: { email: `pse_${'c'.repeat(32)}` } }]),
      ]),
    );
    expect(direct.rows[0]?.erased).toBe(0);
    expect(await asApp(database, account('acct_a'), (tx) => erasePersonalAuditData(tx, 'acct_a', PSEUDONYM_KEY, clock))).toBe(3);
    const { rows } = await asOwner(database, (tx) => tx.query<{ ip: string }>('SELECT ip FROM audit_log WHERE id = $1', [entries[1]?.id]));
    expect(rows[0]?.ip).toBe('198.51.100.8');
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 4 });
  });

  it('refuses an "erasure" that writes anything but pseudonyms or drops personal keys', async () => {
    const entries = await recordPeople();
    const attempts = [
      { id: entries[0]?.id, ip: '203.0.113.99', personal: { email: `pse_${'a'.repeat(32)}` } },
      { id: entries[0]?.id, ip: `pse_${'a'.repeat(32)}`, personal: { email: 'someone@example.com' } },
      { id: entries[0]?.id, ip: `pse_${'a'.repeat(32)}`, personal: {} },
      { id: entries[0]?.id, ip: `pse_${'a'.repeat(32)}`, personal: { email: `pse_${'a'.repeat(32)}`, extra: null } },
    ];
    for (const attempt of attempts) {
      const error = await rejectionOf(
        asApp(database, system, (tx) => tx.query('SELECT audit_erase_personal($1::jsonb, now())', [JSON.stringify([attempt])])),
      );
      expect(error.message).toMatch(/append-only: UPDATE refused/);
    }
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 4 });
  });
});

describe('row-level security', () => {
  it('shows an account only its own entries; the system sees all; an anonymous context nothing', async () => {
    await recordMany(database, clock, [
      sampleEntry(1, { accountId: 'acct_a' }),
      sampleEntry(2, { accountId: 'acct_b' }),
      sampleEntry(3, { accountId: null }),
      sampleEntry(4, { accountId: 'acct_a' }),
    ]);
    const ids = async (context: Parameters<typeof asApp>[1]) =>
      (await asApp(database, context, (tx) => listAuditEntries(tx))).items.map((item) => item.metadata.index);
    expect(await ids(account('acct_a'))).toEqual([4, 1]);
    expect(await ids(account('acct_b'))).toEqual([2]);
    expect(await ids(system)).toEqual([4, 3, 2, 1]);
    expect(await ids(anonymous)).toEqual([]);
    // Even without a filter, raw SQL from an account context sees nothing foreign.
    const raw = await asApp(database, account('acct_b'), (tx) => tx.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log'));
    expect(raw.rows[0]?.n).toBe(1);
  });

  it('lets every context record, and an account context only about itself or no account', async () => {
    await recordMany(database, clock, [sampleEntry(1, { accountId: 'acct_b', event: 'auth.login_failed', actorType: 'anonymous' })], anonymous);
    await recordMany(database, clock, [sampleEntry(2, { accountId: null, event: 'auth.login_failed', actorType: 'anonymous' })], anonymous);
    await recordMany(database, clock, [sampleEntry(3, { accountId: 'acct_a' })], account('acct_a'));
    await recordMany(database, clock, [sampleEntry(4, { accountId: null })], account('acct_a'));
    await recordMany(database, clock, [sampleEntry(5, { accountId: 'acct_c', event: 'webhook.signature_failed' })], system);
    const foreign = await rejectionOf(recordMany(database, clock, [sampleEntry(6, { accountId: 'acct_b' })], account('acct_a')));
    expect(foreign.message).toMatch(/row-level security/);
    expect(await verifyAuditChain(database)).toEqual({ valid: true, checked: 5 });
  });
});
