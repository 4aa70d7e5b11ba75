import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import type { Config, TrustProxySetting } from '../../config/config.js';
import { AppError } from '../../errors/app-error.js';
import { REQUEST_ID_HEADER } from './request-id.js';
import { securityHeaders } from './security-headers.js';

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

function pathOf(url: string): string {
  const questionMark = url.indexOf('?');
  return questionMark === -1 ? url : url.slice(0, questionMark);
}

/**
 * The service's edge, as the first hook of every request (so even refusals carry its
 * headers): request id and security headers, the Host allowlist, HTTPS enforcement
 * behind a trusted proxy; then CORS for configured origins only. One synchronous hook
 * rather than several async ones: this runs on every request.
 */
export async function registerEdge(app: FastifyInstance, config: Config): Promise<void> {
  const headers = securityHeaders({ production: config.isProduction });
  const allowedHosts = new Set(config.http.allowedHosts.map((host) => host.toLowerCase()));
  const httpsRedirect = config.http.httpsRedirect;

  app.addHook('onRequest', (request, reply, done) => {
    void reply.headers(headers);
    void reply.header(REQUEST_ID_HEADER, request.id);
    // request.hostname honours X-Forwarded-Host only from a trusted proxy.
    if (!allowedHosts.has(request.hostname.toLowerCase())) {
      done(new AppError('HOST_NOT_ALLOWED', 'Host header is not one this service answers to'));
      return;
    }
    // request.protocol honours X-Forwarded-Proto only from a trusted proxy.
    if (httpsRedirect && request.protocol !== 'https' && !PROBE_PATHS.has(pathOf(request.url))) {
      if (request.method === 'GET' || request.method === 'HEAD') {
        // Answering from a callback hook: send, and do not call done().
        void reply.redirect(`https://${request.host}${request.url}`, 301);
        return;
      }
      // Redirecting a POST would invite the client to resend its body in the clear again.
      done(new AppError('HTTPS_REQUIRED', 'Use HTTPS'));
      return;
    }
    done();
  });

  // Without configured origins there is nothing to allow: no CORS headers, no preflight route.
  const origins = new Set(config.http.corsOrigins);
  if (origins.size === 0) return;
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && origins.has(origin)),
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: 600,
    strictPreflight: true,
  });
}
