import type { Logger } from 'pino';

/** Where unexpected errors go besides the log: Sentry when SENTRY_DSN is set, nowhere otherwise. */
export interface ErrorReporter {
  capture(error: unknown, context: { requestId?: string; route?: string }): void;
  flush(timeoutMs: number): Promise<void>;
}

export const noErrorReporter: ErrorReporter = {
  capture: () => undefined,
  flush: async () => undefined,
};

export async function createSentryReporter(dsn: string, environment: string, logger: Logger): Promise<ErrorReporter> {
  const Sentry = await import('@sentry/node');
  Sentry.init({
    dsn,
    environment,
    sendDefaultPii: false,
    tracesSampleRate: 0,
    // Only the error and our own tags leave the process: no request bodies, headers,
    // cookies, IPs or breadcrumbs that could carry personal data or credentials.
    defaultIntegrations: false,
    integrations: [],
    beforeSend(event) {
      delete event.request;
      delete event.user;
      delete event.breadcrumbs;
      return event;
    },
  });
  logger.info('error reporting to Sentry is on');
  return {
    capture(error, context) {
      Sentry.withScope((scope) => {
        if (context.requestId) scope.setTag('request_id', context.requestId);
        if (context.route) scope.setTag('route', context.route);
        Sentry.captureException(error);
      });
    },
    async flush(timeoutMs) {
      await Sentry.flush(timeoutMs);
    },
  };
}
