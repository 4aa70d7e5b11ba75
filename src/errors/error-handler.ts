import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify';
import type { ErrorObject } from 'ajv';
import type { ErrorReporter } from '../platform/observability/error-reporter.js';
import { fieldProblems } from '../platform/http/validation.js';
import { AppError, validationError, type FieldProblem } from './app-error.js';
import { ERROR_STATUS, type ErrorCode } from './error-codes.js';

export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; requestId: string; details?: readonly FieldProblem[] };
}

/** Fastify's own 4xx errors, mapped to our codes with messages safe to show. */
const FASTIFY_ERRORS: Record<string, { code: ErrorCode; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', message: 'Request body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Unsupported Content-Type; send application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'INVALID_JSON', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_JSON', message: 'Request body is empty; send a JSON document' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_JSON', message: 'Request body is not valid JSON' },
};

const STATUS_FALLBACK: Record<number, ErrorCode> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  503: 'SERVICE_UNAVAILABLE',
};

function toAppError(error: FastifyError | AppError | Error): AppError | undefined {
  if (error instanceof AppError) return error;
  const fastifyError = error as FastifyError & { validation?: ErrorObject[]; validationContext?: string };
  if (Array.isArray(fastifyError.validation)) {
    return validationError(fieldProblems(fastifyError.validation, fastifyError.validationContext));
  }
  const known = fastifyError.code ? FASTIFY_ERRORS[fastifyError.code] : undefined;
  if (known) return new AppError(known.code, known.message);
  const status = fastifyError.statusCode;
  // Other client errors raised by Fastify or its plugins: keep the status, not the text.
  if (status !== undefined && status >= 400 && status < 500) {
    const code = STATUS_FALLBACK[status] ?? 'VALIDATION_FAILED';
    return new AppError(code, status === 429 ? 'Too many requests' : 'Request could not be processed');
  }
  if (status === 503) return new AppError('SERVICE_UNAVAILABLE', 'Service unavailable');
  return undefined;
}

export function envelope(request: FastifyRequest, code: ErrorCode, message: string, details?: readonly FieldProblem[]): ErrorEnvelope {
  return { error: { code, message, requestId: request.id, ...(details && details.length > 0 ? { details } : {}) } };
}

/**
 * The one place errors become HTTP answers. Expected errors keep their code and message;
 * anything else is logged with its stack and answered "Internal error" with the request
 * id, so no stack, SQL or internal detail ever reaches a caller.
 */
export function registerErrorHandling(
  app: FastifyInstance,
  reporter: ErrorReporter,
  /** Hooks for requests no route matches (the general per-IP rate limit counts them too). */
  notFoundHooks: preValidationHookHandler[] = [],
): void {
  app.setErrorHandler((error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    const appError = toAppError(error);
    if (appError) {
      if (appError.headers) void reply.headers(appError.headers);
      request.log.info({ code: appError.code, statusCode: appError.statusCode }, 'request refused');
      return reply.status(appError.statusCode).send(envelope(request, appError.code, appError.message, appError.details));
    }
    request.log.error({ err: error }, 'unhandled error');
    reporter.capture(error, { requestId: request.id, route: request.routeOptions.url });
    return reply.status(ERROR_STATUS.INTERNAL_ERROR).send(envelope(request, 'INTERNAL_ERROR', 'Internal error'));
  });

  app.setNotFoundHandler({ preValidation: notFoundHooks }, (request, reply) => {
    return reply.status(404).send(envelope(request, 'NOT_FOUND', `No route ${request.method} ${(request.url.split('?', 1)[0] ?? '').slice(0, 200)}`));
  });
}
