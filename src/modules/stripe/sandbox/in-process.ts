import type { Logger } from 'pino';
import type { Config } from '../../../config/config.js';
import type { Clock } from '../../../platform/clock.js';
import { startStripeSandbox, type StripeSandbox } from './sandbox-server.js';

/**
 * The sandbox `npm start` runs beside the service (STRIPE_MODE=sandbox, the default
 * outside production): its Stripe API on 127.0.0.1:STRIPE_SANDBOX_PORT, its state in
 * DATA_DIR/stripe-sandbox.json, its events signed with the first STRIPE_WEBHOOK_SECRET.
 */
export async function startInProcessSandbox(config: Config, logger: Logger, clock: Clock): Promise<StripeSandbox> {
  const log = logger.child({ component: 'stripe-sandbox' });
  const sandbox = await startStripeSandbox({
    port: config.stripe.sandboxPort,
    dataDir: config.dataDir,
    ...(config.stripe.webhookSecrets[0] ? { webhookSecret: config.stripe.webhookSecrets[0] } : {}),
    ...(config.stripe.secretKey ? { apiKey: config.stripe.secretKey } : {}),
    clock,
    onError: (error) => log.error({ err: error }, 'stripe sandbox error'),
  });
  log.info({ url: sandbox.url }, 'Stripe sandbox listening');
  return sandbox;
}

/**
 * Once the service listens, the sandbox learns where its hosted pages are served (the
 * service's /sandbox/checkout/...) and where to deliver events (STRIPE_SANDBOX_WEBHOOK_URL,
 * or the service's own POST /api/webhooks/stripe).
 */
export function connectSandbox(sandbox: StripeSandbox, config: Config, serviceUrl: string): void {
  const base = (config.publicUrl ?? serviceUrl).replace(/\/$/, '');
  sandbox.setHostedBaseUrl(base);
  sandbox.setWebhookUrl(config.stripe.sandboxWebhookUrl ?? `${serviceUrl.replace(/\/$/, '')}/api/webhooks/stripe`);
}

/** Readiness of a sandbox at `url` (in this process or elsewhere): its health route answers. */
export async function sandboxHealth(url: string, timeoutMs: number): Promise<void> {
  const response = await fetch(`${url}/_sandbox/health`, { signal: AbortSignal.timeout(timeoutMs) });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`sandbox health answered ${response.status}`);
}
