import { Type, type Static } from '@sinclair/typebox';
import { clampPageLimit } from '../../platform/http/pagination.js';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database, type Transaction } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { actorFrom, IdString } from '../api-keys/api-keys.routes.js';
import { auditRecorder, type ActorContext, type AuditRecorder } from '../api-keys/audit-hook.js';
import {
  accountView,
  findAccount,
  findActiveUserByEmail,
  insertAccount,
  insertUser,
  listAccounts,
  searchAccounts,
  updateAccount,
  userView,
  type AccountRow,
  type AccountStatus,
  type UserRow,
} from './accounts.repository.js';

/** The plan names accounts may carry until the plans module owns the catalogue (TIER-1). */
export const ACCOUNT_PLANS = ['FREE', 'STARTER', 'PRO', 'ENTERPRISE'] as const;
export type AccountPlan = (typeof ACCOUNT_PLANS)[number];

/** Statuses an operator may set; `deleted` is reached only through account deletion (GDPR-2). */
export const OPERATOR_SETTABLE_STATUSES = ['active', 'suspended'] as const;

export interface AdminAccountsOptions {
  readonly database: Database;
  readonly clock: Clock;
  /** The audit trail by default (recordAudit in the changing transaction). */
  readonly audit?: AuditRecorder;
}

export type AccountView = ReturnType<typeof accountView>;
export type UserView = ReturnType<typeof userView>;

/**
 * Operator work on accounts (system context: an operator sees every account). Each
 * change is one transaction together with its audit entries (AUD-1).
 */
export class AdminAccountsService {
  private readonly audit: AuditRecorder;

  constructor(private readonly options: AdminAccountsOptions) {
    this.audit = options.audit ?? auditRecorder(options.clock);
  }

  /** A new account on `plan` (FREE by default); with an email, also its owner (no password yet). */
  async create(
    input: { plan?: AccountPlan; email?: string; name?: string },
    actor: ActorContext,
  ): Promise<{ account: AccountView; user: UserView | null }> {
    try {
      return await asSystem(this.options.database, async (tx) => {
        const at = this.options.clock.now();
        const account = await insertAccount(tx, { id: newId('account'), name: input.name ?? null, plan: input.plan ?? 'FREE', at });
        let user: UserRow | undefined;
        if (input.email !== undefined) {
          if (await findActiveUserByEmail(tx, input.email)) throw emailTaken();
          user = await insertUser(tx, {
            id: newId('user'),
            accountId: account.id,
            email: input.email,
            name: input.name ?? null,
            passwordHash: null,
            role: 'owner',
            at,
          });
        }
        // Audit entries last: appending holds the audit chain's lock until commit.
        await this.record(tx, actor, 'account.created', 'account', account.id, account.id, { plan: account.plan });
        if (user) await this.record(tx, actor, 'user.created', 'user', user.id, account.id, { role: user.role });
        return { account: accountView(account), user: user ? userView(user) : null };
      });
    } catch (error) {
      // Two creations racing for one email: the unique index decides.
      if (sqlStateOf(error) === SqlState.uniqueViolation) throw emailTaken();
      throw error;
    }
  }

  async list(options: { limit?: number; cursor?: string }): Promise<{ items: AccountView[]; nextCursor: string | null }> {
    const limit = clampPageLimit(options.limit);
    const rows = await asSystem(this.options.database, (tx) =>
      listAccounts(tx, { limit: limit + 1, ...(options.cursor !== undefined ? { afterId: options.cursor } : {}) }),
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page.map(accountView), nextCursor: rows.length > limit && last ? last.id : null };
  }

  /** The operator's list: like list, filtered by `query` (id prefix, name or owner email), each with its owner's email. */
  async search(options: { limit?: number; cursor?: string; query?: string }): Promise<{ items: (AccountView & { ownerEmail: string | null })[]; nextCursor: string | null }> {
    const limit = clampPageLimit(options.limit);
    const rows = await asSystem(this.options.database, (tx) =>
      searchAccounts(tx, {
        limit: limit + 1,
        ...(options.cursor !== undefined ? { afterId: options.cursor } : {}),
        ...(options.query !== undefined && options.query.trim() !== '' ? { query: options.query.trim() } : {}),
      }),
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page.map((row) => ({ ...accountView(row), ownerEmail: row.owner_email })), nextCursor: rows.length > limit && last ? last.id : null };
  }

  async get(accountId: string): Promise<AccountView> {
    const account = await asSystem(this.options.database, (tx) => findAccount(tx, accountId));
    if (!account) throw new AppError('NOT_FOUND', 'Account not found');
    return accountView(account);
  }

  /** Changes plan, status (active or suspended) or name; a deleted account cannot be changed (409). */
  async update(
    accountId: string,
    changes: { plan?: AccountPlan; status?: (typeof OPERATOR_SETTABLE_STATUSES)[number]; name?: string | null },
    actor: ActorContext,
  ): Promise<AccountView> {
    return asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<AccountRow>('SELECT * FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
      const before = rows[0];
      if (!before) throw new AppError('NOT_FOUND', 'Account not found');
      if (before.status === 'deleted') throw new AppError('CONFLICT', 'Account is deleted and cannot be changed');
      const diff: Record<string, { from: unknown; to: unknown }> = {};
      if (changes.plan !== undefined && changes.plan !== before.plan) diff.plan = { from: before.plan, to: changes.plan };
      if (changes.status !== undefined && changes.status !== before.status) diff.status = { from: before.status, to: changes.status };
      // Names are personal data: the trail says that it changed, not what it was.
      if (changes.name !== undefined && changes.name !== before.name) diff.name = { from: '[changed]', to: '[changed]' };
      if (Object.keys(diff).length === 0) return accountView(before);
      const after = await updateAccount(
        tx,
        accountId,
        {
          ...(changes.plan !== undefined ? { plan: changes.plan } : {}),
          ...(changes.status !== undefined ? { status: changes.status as AccountStatus } : {}),
          ...(changes.name !== undefined ? { name: changes.name } : {}),
        },
        this.options.clock.now(),
      );
      if (!after) throw new AppError('NOT_FOUND', 'Account not found');
      await this.record(tx, actor, 'account.updated', 'account', accountId, accountId, { changes: diff });
      return accountView(after);
    });
  }

  private async record(
    tx: Transaction,
    actor: ActorContext,
    event: string,
    subjectType: string,
    subjectId: string,
    accountId: string,
    metadata: Record<string, unknown>,
  ): Promise<void> {
    await this.audit(tx, { event, actorType: actor.actorType, actorId: actor.actorId, subjectType, subjectId, accountId, ip: actor.ip, metadata });
  }
}

function emailTaken(): AppError {
  return new AppError('CONFLICT', 'A user with this email already exists');
}

const Plan = Type.Union(
  ACCOUNT_PLANS.map((plan) => Type.Literal(plan)),
  { description: 'Plan id' },
);
const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const Email = Type.String({ format: 'email', maxLength: 254 });

const AccountSchema = Type.Object({
  id: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  plan: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('deleted')]),
  createdAt: Type.String({ format: 'date-time' }),
});
const UserSchema = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  role: Type.Union([Type.Literal('owner'), Type.Literal('member')]),
  accountId: Type.String(),
});

/** The operator create body; the command line validates with it too. */
export const CreateAccountBody = Type.Object({ plan: Type.Optional(Plan), email: Type.Optional(Email), name: Type.Optional(Name) });
const UpdateBody = Type.Object(
  {
    plan: Type.Optional(Plan),
    status: Type.Optional(Type.Union(OPERATOR_SETTABLE_STATUSES.map((status) => Type.Literal(status)))),
    name: Type.Optional(Type.Union([Name, Type.Null()])),
  },
  { minProperties: 1 },
);
const AccountParams = Type.Object({ id: IdString });
const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100; default 50' })),
  cursor: Type.Optional(IdString),
  q: Type.Optional(Type.String({ maxLength: 254, pattern: '^[^\\u0000-\\u001f\\u007f]*$', description: 'Search: an id prefix, or part of the name or owner email' })),
});
const AccountListItemSchema = Type.Intersect([AccountSchema, Type.Object({ ownerEmail: Type.Union([Type.String(), Type.Null()]) })]);

const ADMIN = { auth: { allow: ['admin'] } } as const;

export interface AdminAccountRouteOptions {
  readonly service: AdminAccountsService;
}

/** Operator account routes (API.md, Operator): create, list, read, update plan/status. */
export async function adminAccountRoutes(app: FastifyInstance, options: AdminAccountRouteOptions): Promise<void> {
  const { service } = options;

  app.post<{ Body: Static<typeof CreateAccountBody> }>(
    '/api/admin/accounts',
    {
      config: ADMIN,
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
      schema: {
        tags: ['admin'],
        summary: 'Create an account (and its owner when an email is given)',
        body: CreateAccountBody,
        response: { 201: Type.Object({ account: AccountSchema, user: Type.Union([UserSchema, Type.Null()]) }) },
      },
    },
    async (request, reply) => reply.status(201).send(await service.create(request.body, actorFrom(request))),
  );

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/api/admin/accounts',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'List accounts by id, optionally searched (q)',
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(AccountListItemSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (request) => {
      const { limit, cursor, q } = request.query;
      return service.search({ ...(limit !== undefined ? { limit } : {}), ...(cursor !== undefined ? { cursor } : {}), ...(q !== undefined ? { query: q } : {}) });
    },
  );

  app.get<{ Params: Static<typeof AccountParams> }>(
    '/api/admin/accounts/:id',
    {
      config: ADMIN,
      schema: { tags: ['admin'], summary: 'Read an account', params: AccountParams, response: { 200: Type.Object({ account: AccountSchema }) } },
    },
    async (request) => ({ account: await service.get(request.params.id) }),
  );

  app.patch<{ Params: Static<typeof AccountParams>; Body: Static<typeof UpdateBody> }>(
    '/api/admin/accounts/:id',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Change plan, status (active or suspended) or name',
        params: AccountParams,
        body: UpdateBody,
        response: { 200: Type.Object({ account: AccountSchema }) },
      },
    },
    async (request) => ({ account: await service.update(request.params.id, request.body, actorFrom(request)) }),
  );
}
