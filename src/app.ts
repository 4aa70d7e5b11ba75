import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type onRequestHookHandler,
  type preValidationHookHandler,
} from 'fastify';
import { ABSOLUTE_BODY_LIMIT_BYTES } from './config/config.js';
import type { Dependencies } from './dependencies.js';
import { registerErrorHandling } from './errors/error-handler.js';
import { opsRoutes } from './modules/ops/ops.routes.js';
import { accountRoutes } from './modules/accounts/account.routes.js';
import { adminAccountRoutes, AdminAccountsService } from './modules/accounts/admin-accounts.routes.js';
import { apiKeyRoutes } from './modules/api-keys/api-keys.routes.js';
import { adminPrincipalGuard } from './modules/audit/admin-guard.js';
import { auditRoutes } from './modules/audit/audit.routes.js';
import { authRoutes } from './modules/auth/auth.routes.js';
import { authenticationHook, type AuthenticationFailure } from './modules/auth/authenticate.js';
import { AdminSessions } from './modules/auth/admin-sessions.js';
import { adminSessionRoutes } from './modules/auth/admin-session.routes.js';
import { operatorRoutes } from './modules/operator/operator.routes.js';
import { adminPaymentRoutes } from './modules/billing/admin-payments.routes.js';
import { webRoutes } from './modules/web/web.routes.js';
import { generalRateLimit, limitFailedAuthentication, machineRateLimit, PROBE_PATHS, rateLimit } from './platform/rate-limit/hooks.js';
import { planRoutes } from './modules/plans/plans.routes.js';
import { effectivePlanId } from './modules/plans/exemptions.js';
import { entitlementRoutes } from './modules/entitlements/entitlements.routes.js';
import { usageRoutes } from './modules/usage/usage.routes.js';
import { creditRoutes } from './modules/credits/credits.routes.js';
import { jobTypeRateLimit } from './modules/credits/job-rate-limit.js';
import { gateRoutes } from './modules/gate/gate.routes.js';
import { GateService } from './modules/gate/gate.service.js';
import { sandboxRoutes } from './modules/stripe/sandbox/sandbox.routes.js';
import { stripeWebhookRoutes, webhookAdminRoutes } from './modules/stripe/webhooks/webhook.routes.js';
import { privacyRoutes } from './modules/privacy/privacy.routes.js';
import { billingAdminRoutes } from './modules/billing/billing-admin.routes.js';
import { notificationRoutes } from './modules/notifications/notifications.routes.js';
import { billingRoutes } from './modules/billing/billing.routes.js';
import { UsageService } from './modules/usage/usage.service.js';
import { byIp, byPerson } from './platform/rate-limit/keys.js';
import { licenseRoutes } from './modules/licenses/licenses.routes.js';
import { LicensesService } from './modules/licenses/licenses.service.js';
import { registerEdge, trustProxyOption } from './platform/http/edge.js';
import { IdempotencyLayer } from './platform/http/idempotency.js';
import { registerJsonBodyParser } from './platform/http/json-body.js';
import { generateRequestId } from './platform/http/request-id.js';
import { createValidatorCompiler } from './platform/http/validation.js';
import { registerResponseObservers } from './platform/observability/http-metrics.js';

/**
 * Builds the HTTP application from its dependencies: platform plugins first, then the
 * explicit list of modules. No I/O happens here; the caller decides when to listen.
 * Closing the app stops the scheduler and closes the database.
 */
export async function buildApp(deps: Dependencies): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    // One log line per request, written by our onResponse hook below.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // Fastify accepts a hop count at run time though its types omit it.
    trustProxy: trustProxyOption(config.http.trustProxy) as boolean | string[],
    bodyLimit: config.http.bodyLimitBytes,
    genReqId: generateRequestId,
    requestIdHeader: false,
    requestTimeout: 30_000,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 256 },
  }) as unknown as FastifyInstance;

  // The Idempotency-Key header on authenticated POST routes (API.md), after each route's own hooks.
  const idempotency = new IdempotencyLayer({ database: deps.database, clock: deps.clock, logger: deps.logger.child({ component: 'idempotency' }) });
  // A route may ask for a larger body than the default, but never beyond the hard cap.
  app.addHook('onRoute', (route) => {
    if (route.bodyLimit !== undefined && route.bodyLimit > ABSOLUTE_BODY_LIMIT_BYTES) {
      route.bodyLimit = ABSOLUTE_BODY_LIMIT_BYTES;
    }
  });
  await registerEdge(app, config);
  registerJsonBodyParser(app);
  app.setValidatorCompiler(createValidatorCompiler());
  // RL-5: anonymous callers share the general per-IP limit (unmatched paths included);
  // authenticated ones are limited per user or account.
  const generalLimit = generalRateLimit(deps.rateLimiting.limiter);
  registerErrorHandling(app, deps.errorReporter, [generalLimit as preValidationHookHandler]);
  registerResponseObservers(app, deps.metrics);

  await app.register(cookie);
  const adminApiToken = config.secrets.adminApiToken;
  if (!adminApiToken) throw new Error('ADMIN_API_TOKEN must be resolved before building the app');
  // KEY-5: failed authentications of any kind are counted (metrics), watched for bursts
  // (AUD-3 alerts), audited and count against the general per-IP limit.
  const onAuthenticationFailure = async (request: FastifyRequest, failure: AuthenticationFailure): Promise<void> => {
    deps.authFailures.recordAuthFailure({ ip: request.ip, accountId: failure.accountId ?? null });
    await deps.securityEvents.authenticationFailed(request, failure);
    await limitFailedAuthentication(deps.rateLimiting.limiter, request);
  };
  // The operator dashboard's sessions (UI-1): the admin token exchanged for an HttpOnly cookie.
  const adminSessions = new AdminSessions({
    database: deps.database,
    clock: deps.clock,
    csrf: deps.csrf,
    adminApiToken,
    ttlSeconds: config.adminSession.ttlSeconds,
    secureCookies: config.isProduction,
  });
  const authenticate = authenticationHook({
    database: deps.database,
    clock: deps.clock,
    accessTokens: deps.accessTokens,
    csrf: deps.csrf,
    adminApiToken,
    adminSessions,
    apiKeys: deps.apiKeys,
    accounts: deps.accounts,
    serviceSharedSecret: config.service.sharedSecret,
    externalIdentities: deps.externalIdentities,
    metrics: deps.metrics,
    onFailure: onAuthenticationFailure,
  });
  // Operator routes: 10 an hour per IP by default (RL-1); the dashboard's session requests
  // have their own allowance (admin_session.ip), its sign-in counts under admin.ip.
  const adminTokenLimit = rateLimit(deps.rateLimiting.limiter, 'admin.ip', byIp);
  const adminSessionLimit = rateLimit(deps.rateLimiting.limiter, 'admin_session.ip', byIp);
  const adminLimit = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const principal = request.principal;
    await (principal?.kind === 'admin' && principal.sessionId !== undefined ? adminSessionLimit : adminTokenLimit)(request, reply);
  };
  // Route-level hooks rather than global ones, so that probes and public routes pay for
  // none of this: authentication first (routes that declare config.auth), then the
  // general limit (every route but the probes), then the route's own hooks.
  app.addHook('onRoute', (route) => {
    const own = route.onRequest ? [route.onRequest].flat() : [];
    const edge = [
      ...(route.config?.auth ? [authenticate as onRequestHookHandler] : []),
      // The sandbox's test controls (sandbox mode only) are driven by test suites in bulk.
      ...(PROBE_PATHS.includes(route.url) || route.url.startsWith('/sandbox/') ? [] : [generalLimit as onRequestHookHandler]),
    ];
    route.onRequest = [...edge, ...own];
    const allow = route.config?.auth?.allow;
    if (allow && allow.length === 1 && allow[0] === 'admin') {
      route.preHandler = [adminLimit, ...(route.preHandler ? [route.preHandler].flat() : [])];
    }
    idempotency.attach(route);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Bulwark', version: '0.1.0', description: 'Billing, entitlements and credits for SaaS products on Stripe' },
    },
  });
  app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(opsRoutes, {
    metrics: deps.metrics,
    metricsToken: config.metricsToken,
    readinessChecks: deps.readinessChecks,
    readinessTimeoutMs: config.readiness.checkTimeoutMs,
  });

  // The customer portal and the operator dashboard (UI-1), pages served from memory.
  await app.register(webRoutes);

  // server.close() drops only the keep-alive connections idle at that moment; one whose
  // request was in flight becomes idle later and would hold the shutdown open until its
  // keep-alive timeout. Sweep idle connections until the server has closed (no per-request cost).
  let idleSweep: NodeJS.Timeout | undefined;
  await app.register(authRoutes, {
    auth: deps.auth,
    csrf: deps.csrf,
    cookies: { secure: config.isProduction },
    clock: deps.clock,
    database: deps.database,
    logger: deps.logger,
    limiter: deps.rateLimiting.limiter,
  });
  await app.register(accountRoutes, {
    accounts: deps.accounts,
    exemptions: deps.exemptions,
    // Cached with the account's snapshot; a subscription change is announced like an account change.
    subscriptionOf: (accountId) => deps.accounts.cached(accountId, 'subscription', () => deps.billing.currentSubscription(accountId)),
  });
  await app.register(privacyRoutes, { service: deps.privacy, limiter: deps.rateLimiting.limiter, cookies: { secure: config.isProduction } });
  await app.register(planRoutes, { catalogue: deps.plans, database: deps.database, clock: deps.clock });
  // RL-5: keys and services on machine routes are limited per account by the plan; people per user.
  const machineLimit = machineRateLimit(deps.rateLimiting.limiter, {
    cachedRequestsPerMinute: (accountId) => deps.cachedPlanOf(accountId)?.requestsPerMinute,
    planRequestsPerMinute: async (accountId) => {
      const account = await deps.accounts.get(accountId);
      const plan = await deps.plans.planFor(account ? effectivePlanId(account, deps.exemptions) : 'FREE');
      return plan.requestsPerMinute;
    },
    userPolicy: 'entitlements.user',
  });
  await app.register(entitlementRoutes, { entitlements: deps.entitlements, rateLimit: machineLimit });
  // RL-1: people spending credits on story and book jobs are also limited per user and job type.
  const reserveJobLimit = jobTypeRateLimit(deps.rateLimiting.limiter, (request) => (request.body as { jobType?: string } | undefined)?.jobType);
  const gateJobLimit = jobTypeRateLimit(deps.rateLimiting.limiter, (request) => (request.body as { credits?: { jobType?: string } } | undefined)?.credits?.jobType);
  await app.register(creditRoutes, {
    service: deps.credits,
    rateLimit: machineLimit,
    readRateLimit: rateLimit(deps.rateLimiting.limiter, 'balance_read.user', byPerson),
    jobRateLimit: reserveJobLimit,
  });
  await app.register(gateRoutes, {
    service: new GateService({ database: deps.database, clock: deps.clock, entitlements: deps.entitlements, credits: deps.credits }),
    rateLimit: async (request, reply) => {
      await machineLimit(request, reply);
      await gateJobLimit(request, reply);
    },
  });
  const usage = new UsageService({ database: deps.database, clock: deps.clock, metadataKeys: config.usage.metadataKeys });
  await app.register(usageRoutes, {
    service: usage,
    limiter: deps.rateLimiting.limiter,
    machineRateLimit: machineLimit,
  });
  await app.register(licenseRoutes, {
    service: new LicensesService({
      database: deps.database,
      clock: deps.clock,
      key: deps.licenseKey,
      plans: deps.plans,
      exemptions: deps.exemptions,
      validityDays: config.license.validityDays,
    }),
    // Keys by their plan (RL-5); the operator as on every operator route (RL-1 admin.ip).
    rateLimits: [machineLimit, async (request, reply) => (request.principal?.kind === 'admin' ? adminLimit(request, reply) : undefined)],
  });
  await app.register(apiKeyRoutes, { service: deps.apiKeyModule.service });
  await app.register(adminSessionRoutes, {
    sessions: adminSessions,
    signInRateLimit: adminTokenLimit,
    onFailure: async (request) => {
      deps.metrics.authentications.inc({ credential: 'admin', outcome: 'UNAUTHENTICATED' });
      await onAuthenticationFailure(request, { credential: 'admin', code: 'UNAUTHENTICATED' });
    },
  });
  const adminAccounts = new AdminAccountsService({ database: deps.database, clock: deps.clock });
  await app.register(adminAccountRoutes, { service: adminAccounts });
  await app.register(operatorRoutes, {
    database: deps.database,
    accounts: adminAccounts,
    credits: deps.credits,
    apiKeys: deps.apiKeyModule.service,
    usage,
    metrics: deps.metrics,
    uptimeSeconds: () => process.uptime(),
  });
  await app.register(auditRoutes, { database: deps.database, requireAdmin: adminPrincipalGuard, alerter: deps.alerter });
  await app.register(adminPaymentRoutes, { database: deps.database });
  // RL-1: webhooks have their own per-IP policy instead of the general limit.
  await app.register(stripeWebhookRoutes, {
    service: deps.webhooks,
    rateLimit: rateLimit(deps.rateLimiting.limiter, 'webhooks.ip', byIp) as onRequestHookHandler,
  });
  await app.register(webhookAdminRoutes, { service: deps.webhooks });
  await app.register(billingAdminRoutes, { refunds: deps.refunds, reconciliation: deps.reconciliation });
  await app.register(notificationRoutes, { service: deps.notifications });
  await app.register(billingRoutes, { service: deps.billing, limiter: deps.rateLimiting.limiter });
  if (config.stripe.mode === 'sandbox' && deps.stripeSandboxUrl !== undefined) {
    await app.register(sandboxRoutes, { sandboxUrl: deps.stripeSandboxUrl, timeoutMs: config.stripe.timeoutMs });
  }

  app.addHook('preClose', async () => {
    idleSweep = setInterval(() => app.server.closeIdleConnections(), 50);
    idleSweep.unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(idleSweep);
    await deps.scheduler.stop();
    await deps.privacy.close();
    await deps.creditsLow.close();
    await deps.stripeSandbox?.close();
    await deps.apiKeyModule.close();
    await deps.accounts.close();
    await deps.plans.close();
    await deps.rateLimiting.close();
    await deps.database.close();
    await deps.alerter.flush();
    await deps.errorReporter.flush(2_000);
  });
  return app;
}
