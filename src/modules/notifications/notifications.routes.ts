import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { actorFrom, IdString } from '../api-keys/api-keys.routes.js';
import { WEBHOOK_EVENT_TYPES } from './notifier.js';
import type { NotificationService } from './notifications.service.js';

const ADMIN = { auth: { allow: ['admin'] } } as const;
const NullableString = Type.Union([Type.String(), Type.Null()]);

const Url = Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://[^\\s]+$', description: 'http(s) URL; https and a public address in production' });
const EventTypes = Type.Array(Type.Union(WEBHOOK_EVENT_TYPES.map((type) => Type.Literal(type))), {
  maxItems: 50,
  description: 'Event types to receive; empty or missing means every type',
});
const Description = Type.String({ minLength: 1, maxLength: 500, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

const Endpoint = Type.Object({
  id: Type.String(),
  url: Type.String(),
  description: NullableString,
  eventTypes: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const Delivery = Type.Object({
  id: Type.String(),
  notificationId: Type.String(),
  type: Type.String(),
  channel: Type.Union([Type.Literal('email'), Type.Literal('webhook')]),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('dead')]),
  attempts: Type.Integer(),
  lastResponseStatus: Type.Union([Type.Integer(), Type.Null()]),
  lastError: NullableString,
  nextAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  deliveredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

const CreateBody = Type.Object({ url: Url, eventTypes: Type.Optional(EventTypes), description: Type.Optional(Description) });
const UpdateBody = Type.Object(
  {
    url: Type.Optional(Url),
    eventTypes: Type.Optional(EventTypes),
    description: Type.Optional(Type.Union([Description, Type.Null()])),
    enabled: Type.Optional(Type.Boolean()),
  },
  { minProperties: 1 },
);
const Params = Type.Object({ id: IdString });
const PageQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100; default 50' })),
  cursor: Type.Optional(IdString),
});

/**
 * The operator's outgoing webhook endpoints and their delivery log (OUT-1), admin only;
 * documented in docs/notifications.md. Secrets are shown once, at creation.
 */
export async function notificationRoutes(fastify: FastifyInstance, options: { readonly service: NotificationService }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { service } = options;

  app.post(
    '/api/admin/webhook-endpoints',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Add an outgoing webhook endpoint; the signing secret (whsec_...) is in this answer only',
        body: CreateBody,
        response: { 201: Type.Object({ endpoint: Endpoint, secret: Type.String() }) },
      },
    },
    async (request, reply) => {
      void reply.header('Cache-Control', 'no-store');
      return reply.status(201).send(await service.createEndpoint(request.body, actorFrom(request)));
    },
  );

  app.get(
    '/api/admin/webhook-endpoints',
    { config: ADMIN, schema: { tags: ['admin'], summary: 'Outgoing webhook endpoints (no secrets)', response: { 200: Type.Object({ items: Type.Array(Endpoint) }) } } },
    async () => service.listEndpoints(),
  );

  app.patch(
    '/api/admin/webhook-endpoints/:id',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Change an endpoint: url, eventTypes, description, enabled',
        params: Params,
        body: UpdateBody,
        response: { 200: Type.Object({ endpoint: Endpoint }) },
      },
    },
    async (request) => service.updateEndpoint(request.params.id, request.body, actorFrom(request)),
  );

  app.delete(
    '/api/admin/webhook-endpoints/:id',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Disable an endpoint (kept with its delivery log; pending deliveries to it are given up)',
        params: Params,
        response: { 200: Type.Object({ endpoint: Endpoint }) },
      },
    },
    async (request) => service.updateEndpoint(request.params.id, { enabled: false }, actorFrom(request)),
  );

  app.get(
    '/api/admin/webhook-endpoints/:id/deliveries',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Delivery log of an endpoint, newest first',
        params: Params,
        querystring: PageQuery,
        response: { 200: Type.Object({ items: Type.Array(Delivery), nextCursor: NullableString }) },
      },
    },
    async (request) =>
      service.endpointDeliveries(request.params.id, {
        ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
        ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
      }),
  );

  app.post(
    '/api/admin/notification-deliveries/:id/redeliver',
    {
      config: ADMIN,
      schema: {
        tags: ['admin'],
        summary: 'Queue a new attempt of a delivered or dead webhook delivery now (409 while one is pending)',
        params: Params,
        response: { 202: Type.Object({ delivery: Delivery }) },
      },
    },
    async (request, reply) => reply.status(202).send(await service.redeliver(request.params.id, actorFrom(request))),
  );
}
