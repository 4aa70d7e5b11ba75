import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

export interface ShutdownOptions {
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly exit?: (code: number) => void;
  readonly signals?: readonly NodeJS.Signals[];
}

/**
 * On SIGTERM or SIGINT: stop accepting connections, let in-flight requests finish, close
 * the scheduler and the database pool (the app's onClose hooks), then exit 0. If that
 * takes longer than timeoutMs, exit 1 anyway so an orchestrator is never left waiting.
 * Returns the shutdown function so fatal errors can use the same path.
 */
export function installGracefulShutdown(app: FastifyInstance, options: ShutdownOptions): (reason: string, code?: number) => Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let closing: Promise<void> | undefined;

  const shutdown = (reason: string, code = 0): Promise<void> => {
    if (closing) return closing;
    options.logger.info({ reason }, 'shutting down: no new connections, finishing in-flight requests');
    const timer = setTimeout(() => {
      options.logger.error({ timeoutMs: options.timeoutMs }, 'graceful shutdown timed out; exiting');
      exit(1);
    }, options.timeoutMs);
    timer.unref();
    closing = app.close().then(
      () => {
        clearTimeout(timer);
        options.logger.info('shutdown complete');
        exit(code);
      },
      (error: unknown) => {
        clearTimeout(timer);
        options.logger.error({ err: error }, 'error while shutting down');
        exit(1);
      },
    );
    return closing;
  };

  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => void shutdown(signal));
  }
  return shutdown;
}
