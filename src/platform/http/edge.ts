import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import type { Config, TrustProxySetting } from '../../config/config.js';
import { AppError } from '../../errors/app-error.js';

/** Fastify's trustProxy option from our setting: never `true` unless asked for outside production. */
export function trustProxyOption(setting: TrustProxySetting): boolean | number | string[] {
  switch (setting.kind) {
    case 'none':
      return false;
    case 'addresses':
      return [...setting.addresses];
    case 'hops':
      return setting.hops;
    case 'all':
      return true;
  }
}

export const CORS_ALLOWED_HEADERS = [
  'Content-Type',
  'Authorization',
  'X-API-Key',
  'X-CSRF-Token',
  'X-Service-Secret',
  'Idempotency-Key',
  'X-Request-Id',
];

export const CORS_EXPOSED_HEADERS = ['X-Request-Id', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'];

/** Paths load balancers and orchestrators probe over plain HTTP inside the cluster. */
const PROBE_PATHS = new Set(['/health', '/ready', '/metrics']);

/**
 * The service's edge: security headers on every response, the Host allowlist, HTTPS
 * enforcement behind a trusted proxy, and CORS for configured origins only.
 */
export async function registerEdge(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        ...(config.isProduction ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    hsts: { maxAge: 31_536_000, includeSubDomains: true, preload: config.isProduction },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
  });

  const allowedHosts = new Set(config.http.allowedHosts.map((host) => host.toLowerCase()));
  app.addHook('onRequest', async (request) => {
    const hostname = request.hostname.toLowerCase();
    if (!allowedHosts.has(hostname)) {
      throw new AppError('HOST_NOT_ALLOWED', 'Host header is not one this service answers to');
    }
  });

  if (config.http.httpsRedirect) {
    app.addHook('onRequest', async (request, reply) => {
      // request.protocol honours X-Forwarded-Proto only from a trusted proxy.
      if (request.protocol === 'https' || PROBE_PATHS.has(request.url.split('?', 1)[0] ?? '')) return;
      if (request.method === 'GET' || request.method === 'HEAD') {
        return reply.redirect(`https://${request.host}${request.url}`, 301);
      }
      // Redirecting a POST would invite the client to resend its body in the clear again.
      throw new AppError('HTTPS_REQUIRED', 'Use HTTPS');
    });
  }

  const origins = new Set(config.http.corsOrigins);
  await app.register(cors, {
    origin: origins.size === 0 ? false : (origin, callback) => callback(null, origin !== undefined && origins.has(origin)),
    credentials: origins.size > 0,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: 600,
    strictPreflight: true,
  });
}
