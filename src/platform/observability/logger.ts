import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from '../../config/config.js';

const SENSITIVE_KEYS = [
  'password',
  'newPassword',
  'currentPassword',
  'email',
  'token',
  'accessToken',
  'refreshToken',
  'secret',
  'apiKey',
  'authorization',
  'cookie',
  'ip',
];

/** Objects that code logs by hand and that may carry the keys above. */
const SENSITIVE_PARENTS = ['user', 'account', 'body', 'customer', 'payload', 'data', 'input', 'params', 'query', 'headers'];

/**
 * Paths pino blanks out wherever code logs them: credentials, cookies, personal data.
 * Request and response headers are not logged at all by our serializers; these paths
 * are the second line of defence for objects logged by hand. They are explicit paths,
 * not leading wildcards (`*.email`): a leading wildcard makes pino run the redactor on
 * every value it serialises, including each request's child-logger bindings, which
 * cost measurable CPU on every request (bench/RESULTS.md).
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["x-service-secret"]',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  'headers["x-api-key"]',
  'headers["x-service-secret"]',
  ...SENSITIVE_KEYS,
  ...SENSITIVE_PARENTS.flatMap((parent) => SENSITIVE_KEYS.map((key) => `${parent}.${key}`)),
];

const SENSITIVE_QUERY = /^(token|email|key|secret|password|code|session_id)$/i;

/** The request path, with query values of sensitive parameters replaced. */
export function redactUrl(url: string): string {
  const questionMark = url.indexOf('?');
  if (questionMark === -1) return url;
  const params = new URLSearchParams(url.slice(questionMark + 1));
  const redacted = [...params.keys()].map((key) =>
    SENSITIVE_QUERY.test(key) ? `${encodeURIComponent(key)}=[REDACTED]` : `${encodeURIComponent(key)}=${encodeURIComponent(params.get(key) ?? '')}`,
  );
  return `${url.slice(0, questionMark)}?${redacted.join('&')}`;
}

interface SerializableRequest {
  method: string;
  url: string;
  id: string;
  ip?: string;
  routeOptions?: { url?: string };
}

export function createLogger(config: Pick<Config, 'log' | 'env'>, destination?: DestinationStream): Logger {
  return pino(
    {
      level: config.log.level,
      base: { service: 'bulwark' },
      redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
      serializers: {
        // Only what an operator needs to follow a request; no headers, no bodies, no client IP
        // (the IP is personal data; the request id ties a log line to the audit trail).
        req: (request: SerializableRequest) => ({
          id: request.id,
          method: request.method,
          url: redactUrl(request.url),
          route: request.routeOptions?.url,
        }),
        res: (reply: { statusCode: number }) => ({ statusCode: reply.statusCode }),
        err: pino.stdSerializers.err,
      },
    },
    destination,
  );
}
