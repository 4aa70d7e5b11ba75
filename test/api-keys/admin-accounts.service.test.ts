import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AdminAccountsService } from '../../src/modules/accounts/admin-accounts.routes.js';
import { AppError } from '../../src/errors/app-error.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { newId } from '../../src/platform/ids.js';
import { createAccount, createAppRolePglite, memoryAudit } from './fixtures.js';

const ADMIN = { actorType: 'admin', actorId: null, ip: '198.51.100.1' };

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (error: unknown) => (error instanceof AppError ? error.code : `not an AppError: ${String(error)}`),
  );
}

describe('operator account service on PGlite', () => {
  let database: Database;
  let clock: ManualClock;
  let audit: ReturnType<typeof memoryAudit>;
  let service: AdminAccountsService;

  beforeEach(async () => {
    database = await createAppRolePglite();
    clock = new ManualClock('2026-03-01T12:00:00Z');
    audit = memoryAudit();
    service = new AdminAccountsService({ database, clock, audit: audit.recorder });
  });

  afterEach(async () => {
    await database.close();
  });

  const count = async (table: 'accounts' | 'users') =>
    (await asSystem(database, (tx) => tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))).rows[0]?.n;

  it('creates an account on FREE by default, and an owner without a password when an email is given', async () => {
    const bare = await service.create({}, ADMIN);
    expect(bare).toEqual({ account: { id: expect.stringMatching(/^acct_/), name: null, plan: 'FREE', status: 'active', createdAt: clock.now().toISOString() }, user: null });

    const withOwner = await service.create({ plan: 'PRO', email: ' Owner@Example.com ', name: 'Acme' }, ADMIN);
    expect(withOwner.account).toMatchObject({ plan: 'PRO', name: 'Acme' });
    expect(withOwner.user).toMatchObject({ email: 'owner@example.com', role: 'owner', accountId: withOwner.account.id });
    const { rows } = await asSystem(database, (tx) => tx.query<{ password_hash: string | null }>('SELECT password_hash FROM users WHERE id = $1', [withOwner.user?.id]));
    expect(rows).toEqual([{ password_hash: null }]);
    expect(audit.entries.map((entry) => entry.event)).toEqual(['account.created', 'account.created', 'user.created']);
    expect(JSON.stringify(audit.entries)).not.toContain('example.com');
  });

  it('refuses an email already in use, and creates nothing', async () => {
    await service.create({ email: 'taken@example.com' }, ADMIN);
    const [accounts, users] = [await count('accounts'), await count('users')];
    expect(await codeOf(service.create({ email: 'TAKEN@example.com' }, ADMIN))).toBe('CONFLICT');
    expect([await count('accounts'), await count('users')]).toEqual([accounts, users]);
  });

  it('lists accounts page by page and reads one; unknown is 404', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) ids.push((await service.create({}, ADMIN)).account.id);
    ids.sort();
    const first = await service.list({ limit: 2 });
    expect(first.items.map((account) => account.id)).toEqual(ids.slice(0, 2));
    const second = await service.list({ limit: 2, cursor: first.nextCursor as string });
    const third = await service.list({ limit: 2, cursor: second.nextCursor as string });
    expect([...second.items, ...third.items].map((account) => account.id)).toEqual(ids.slice(2));
    expect(third.nextCursor).toBeNull();
    expect((await service.list({ limit: 0 })).items).toHaveLength(1);
    expect((await service.list({ limit: 10_000 })).items).toHaveLength(5);

    expect((await service.get(ids[0] as string)).id).toBe(ids[0]);
    expect(await codeOf(service.get(newId('account')))).toBe('NOT_FOUND');
  });

  it('changes plan, status and name, audits what changed, and leaves deleted accounts alone', async () => {
    const { account } = await service.create({ name: 'Old name' }, ADMIN);
    clock.advance(60_000);
    const updated = await service.update(account.id, { plan: 'STARTER', status: 'suspended', name: 'New name' }, ADMIN);
    expect(updated).toMatchObject({ plan: 'STARTER', status: 'suspended', name: 'New name' });
    const entry = audit.entries.at(-1);
    expect(entry).toMatchObject({
      event: 'account.updated',
      subjectId: account.id,
      metadata: { changes: { plan: { from: 'FREE', to: 'STARTER' }, status: { from: 'active', to: 'suspended' } } },
    });
    expect(JSON.stringify(entry)).not.toContain('Old name');

    // Nothing to change: nothing audited.
    const entries = audit.entries.length;
    await service.update(account.id, { plan: 'STARTER' }, ADMIN);
    expect(audit.entries).toHaveLength(entries);

    expect(await codeOf(service.update(newId('account'), { plan: 'PRO' }, ADMIN))).toBe('NOT_FOUND');
    const deleted = await createAccount(database, clock.now(), 'deleted');
    expect(await codeOf(service.update(deleted, { status: 'active' }, ADMIN))).toBe('CONFLICT');
    expect((await service.get(deleted)).status).toBe('deleted');
  });
});
