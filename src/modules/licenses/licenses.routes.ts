import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, preHandlerHookHandler } from 'fastify';
import { IdString, actorFrom } from '../api-keys/api-keys.routes.js';
import { assertAccountAccess, type RouteAuth } from '../auth/guards.js';
import { LICENSE_TOKEN_TYPE } from './license-token.js';
import type { LicensesService } from './licenses.service.js';

export interface LicenseRouteOptions {
  readonly service: LicensesService;
  /**
   * Run before issuing: the plan-based machine limit for account keys (RL-5) and the
   * operator limit for admins (RL-1 admin.ip); optional so that tests can leave them out.
   */
  readonly rateLimits?: readonly preHandlerHookHandler[];
}

/** LIC-2: that account's API key, or the operator. Users and services are refused. */
const KEY_OR_ADMIN: { auth: RouteAuth } = { auth: { allow: ['apiKey', 'admin'] } };

const Limit = Type.Object({
  kind: Type.Union([Type.Literal('static'), Type.Literal('metered'), Type.Literal('concurrency')]),
  limit: Type.Union([Type.Integer(), Type.Null()], { description: 'null = unlimited' }),
  period: Type.Optional(Type.Union([Type.Literal('day'), Type.Literal('month')])),
});

export const LicenseSchema = Type.Object({
  v: Type.Literal(1),
  id: Type.String(),
  accountId: Type.String(),
  plan: Type.String(),
  features: Type.Record(Type.String(), Type.Boolean()),
  limits: Type.Record(Type.String(), Limit),
  issuedAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time' }),
});

const IssuedLicenseSchema = Type.Object({
  license: LicenseSchema,
  token: Type.String({ description: `The signed licence: a compact JWS (typ ${LICENSE_TOKEN_TYPE}); verify it with the public key` }),
});

const PublicKeySchema = Type.Object({
  algorithm: Type.Union([Type.Literal('EdDSA'), Type.Literal('RS256')]),
  keyId: Type.String({ description: 'RFC 7638 thumbprint; the kid of every licence signed with this key' }),
  pem: Type.String({ description: 'SubjectPublicKeyInfo, PEM' }),
  jwk: Type.Record(Type.String(), Type.String()),
});

const LicenseParams = Type.Object({ accountId: IdString });

/** GET /api/licenses/public-key (no principal) and GET /api/licenses/:accountId (API.md). */
export async function licenseRoutes(fastify: FastifyInstance, options: LicenseRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { service } = options;

  app.get(
    '/api/licenses/public-key',
    {
      schema: { tags: ['licenses'], summary: 'The licence verification key (PEM and JWK)', response: { 200: PublicKeySchema } },
    },
    async (_request, reply) => {
      void reply.header('Cache-Control', 'public, max-age=300');
      return service.publicKey();
    },
  );

  app.get(
    '/api/licenses/:accountId',
    {
      config: KEY_OR_ADMIN,
      preHandler: [...(options.rateLimits ?? [])],
      schema: {
        tags: ['licenses'],
        summary: "A signed licence for the account (its own API key, or the operator); audited",
        params: LicenseParams,
        response: { 200: IssuedLicenseSchema },
      },
    },
    async (request, reply) => {
      // ACC-2: another account's key gets 404, whether or not that account exists.
      assertAccountAccess(request, request.params.accountId);
      const issued = await service.issue(request.params.accountId, actorFrom(request));
      void reply.header('Cache-Control', 'no-store');
      return issued;
    },
  );
}
