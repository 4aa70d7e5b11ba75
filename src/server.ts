import { ConfigError, loadConfig } from './config/config.js';
import { resolveDevelopmentSecrets } from './config/development-secrets.js';
import { createDependencies } from './dependencies.js';
import { buildApp } from './app.js';
import { installGracefulShutdown } from './platform/shutdown.js';
import { connectSandbox } from './modules/stripe/sandbox/in-process.js';

/** Process entry: loadConfig -> createDependencies -> buildApp -> listen; graceful close on signals. */
async function main(): Promise<void> {
  let loaded;
  try {
    loaded = resolveDevelopmentSecrets(loadConfig());
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write('Bulwark refuses to start:\n');
      for (const reason of error.reasons) process.stderr.write(`  - ${reason}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
  const { config, secretsFile, created } = loaded;
  const deps = await createDependencies(config);
  const { logger } = deps;
  if (secretsFile) {
    logger.info(
      { secretsFile },
      created
        ? 'generated development secrets (admin token, signing keys) in the secrets file; it is readable by you only'
        : 'using development secrets from the secrets file',
    );
  }
  const app = await buildApp(deps);
  const shutdown = installGracefulShutdown(app, { timeoutMs: config.shutdownTimeoutMs, logger });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection');
    void shutdown('unhandledRejection', 1);
  });
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception');
    void shutdown('uncaughtException', 1);
  });

  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  if (deps.stripeSandbox) {
    // Hosted pages and webhooks need an address a browser and the sandbox can reach.
    const reachable = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;
    connectSandbox(deps.stripeSandbox, config, `http://${reachable}:${port}`);
  }
  logger.info(
    { url: `http://${host}:${port}`, database: config.database.kind, stripeMode: config.stripe.mode, env: config.env },
    `Bulwark listening on http://${host}:${port}`,
  );
  if (config.jobsEnabled) deps.scheduler.start();
}

main().catch((error: unknown) => {
  process.stderr.write(`Bulwark failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
