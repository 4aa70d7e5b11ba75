import type { Config } from './config.js';

/** Minimum length, in bytes, of the JWT and cookie signing secrets in production. */
export const MIN_SIGNING_SECRET_BYTES = 32;

const STRIPE_KEY_PATTERN = /^(sk|rk)_(test|live)_[A-Za-z0-9]+$/;

function secretProblems(name: string, secret: string | undefined): string[] {
  if (secret === undefined) return [`${name} is missing`];
  if (Buffer.byteLength(secret, 'utf8') < MIN_SIGNING_SECRET_BYTES) {
    return [`${name} is shorter than ${MIN_SIGNING_SECRET_BYTES} bytes`];
  }
  return [];
}

function adminTokenProblems(token: string | undefined): string[] {
  if (token === undefined) return ['ADMIN_API_TOKEN is missing'];
  if (!/^[0-9a-fA-F]{64,}$/.test(token)) {
    return ['ADMIN_API_TOKEN must be at least 64 hexadecimal characters (e.g. `openssl rand -hex 32`)'];
  }
  // A long run of one or two characters passes the pattern but is not a secret.
  if (new Set(token.toLowerCase()).size < 8) {
    return ['ADMIN_API_TOKEN has too little variety to be random; generate it with `openssl rand -hex 32`'];
  }
  return [];
}

function stripeProblems(stripe: Config['stripe']): string[] {
  const problems: string[] = [];
  if (stripe.mode === 'sandbox') {
    problems.push('STRIPE_MODE=sandbox is for development; use test or live in production');
  }
  const key = stripe.secretKey;
  if (key === undefined) {
    problems.push('STRIPE_SECRET_KEY is missing');
  } else if (!STRIPE_KEY_PATTERN.test(key)) {
    problems.push('STRIPE_SECRET_KEY is not a Stripe secret or restricted key (sk_... or rk_...)');
  } else {
    const keyIsLive = key.includes('_live_');
    if (stripe.mode === 'live' && !keyIsLive) {
      problems.push('STRIPE_SECRET_KEY is a test key but STRIPE_MODE=live');
    }
    if (stripe.mode === 'test' && keyIsLive) {
      problems.push('STRIPE_SECRET_KEY is a live key but STRIPE_MODE=test');
    }
  }
  if (stripe.webhookSecrets.length === 0) problems.push('STRIPE_WEBHOOK_SECRET is missing');
  if (stripe.mode !== 'sandbox' && stripe.apiUrl !== undefined && !stripe.apiUrl.startsWith('https://')) {
    problems.push('STRIPE_API_URL must be an https:// URL in production');
  }
  return problems;
}

/**
 * Every reason the configuration is unfit for production, one human-readable line each.
 * An empty list means start-up may proceed.
 */
export function productionProblems(config: Config): string[] {
  const problems: string[] = [];
  if (config.log.debug) problems.push('DEBUG must be off in production');
  if (config.log.level === 'debug' || config.log.level === 'trace') {
    problems.push(`LOG_LEVEL=${config.log.level} is debug output; use info or higher in production`);
  }

  problems.push(...secretProblems('JWT_SECRET', config.secrets.jwt?.secret));
  for (const previous of config.secrets.previousJwt) {
    problems.push(...secretProblems(`JWT_PREVIOUS_SECRETS (${previous.keyId})`, previous.secret));
  }
  problems.push(...secretProblems('COOKIE_SECRET', config.secrets.cookie));
  config.secrets.previousCookie.forEach((secret, index) => {
    problems.push(...secretProblems(`COOKIE_PREVIOUS_SECRETS[${index}]`, secret));
  });
  problems.push(...adminTokenProblems(config.secrets.adminApiToken));
  problems.push(...secretProblems('API_KEY_PEPPER', config.secrets.apiKeyPepper));
  if (config.license.privateKeyPath === undefined) {
    problems.push('LICENSE_PRIVATE_KEY_PATH is missing: licences must be signed with a key you keep (Ed25519 or RSA, PEM)');
  }
  problems.push(...secretProblems('AUDIT_PSEUDONYM_KEY', config.secrets.auditPseudonymKey));
  if (config.service.sharedSecret !== undefined) {
    problems.push(...secretProblems('API_SHARED_SECRET', config.service.sharedSecret));
    if (config.service.externalJwtSecret === undefined && config.service.externalJwksUrl === undefined) {
      problems.push('API_SHARED_SECRET is set but neither EXTERNAL_JWT_SECRET nor EXTERNAL_JWT_JWKS_URL is');
    }
  }
  if (config.service.externalJwtSecret !== undefined) {
    problems.push(...secretProblems('EXTERNAL_JWT_SECRET', config.service.externalJwtSecret));
  }
  if (config.mail.smtpUrl === undefined) {
    problems.push('SMTP_URL is missing: password reset and billing emails need a mail server in production');
  }
  problems.push(...stripeProblems(config.stripe));

  if (config.http.corsOrigins.some((origin) => origin.includes('*'))) {
    problems.push('CORS_ORIGINS contains a wildcard; list each allowed origin');
  }
  if (config.http.allowedHosts.length === 0) {
    problems.push('ALLOWED_HOSTS is empty; list the host names this service answers to');
  } else if (config.http.allowedHosts.some((host) => host.includes('*'))) {
    problems.push('ALLOWED_HOSTS contains a wildcard; list each host name');
  }
  if (config.database.kind === 'pglite') {
    problems.push('DATABASE_URL is missing: the embedded database is for development only');
  }
  const trustProxy = config.http.trustProxy;
  if (trustProxy.kind === 'hops') {
    problems.push(
      'TRUST_PROXY is a hop count; list the proxy addresses or CIDRs so X-Forwarded-For cannot be spoofed',
    );
  } else if (trustProxy.kind === 'all') {
    problems.push('TRUST_PROXY trusts every address; list the proxy addresses or CIDRs');
  }
  return problems;
}
