import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';

export const REQUEST_ID_HEADER = 'x-request-id';
const ACCEPTABLE = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * Keeps a caller's or load balancer's X-Request-Id when it is a plain token (so logs line
 * up across hops); anything else is replaced, so it can never inject into logs. New ids
 * are random UUIDs (122 random bits), which Node draws from a cached entropy pool:
 * several times cheaper per request than randomBytes.
 */
export function generateRequestId(request: IncomingMessage): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  if (typeof incoming === 'string' && ACCEPTABLE.test(incoming)) return incoming;
  return `req_${randomUUID()}`;
}
