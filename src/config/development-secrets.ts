import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { deepFreeze, type Config } from './config.js';
import { generateLicenseKeyPem } from '../modules/licenses/license-keys.js';

export const DEVELOPMENT_SECRETS_FILE = 'secrets.json';
/** The development licence signing key (Ed25519, PKCS#8 PEM) under DATA_DIR. */
export const DEVELOPMENT_LICENSE_KEY_FILE = 'license-private-key.pem';

interface StoredSecrets {
  jwtSecret: string;
  cookieSecret: string;
  adminApiToken: string;
  stripeWebhookSecret: string;
  apiKeyPepper: string;
  auditPseudonymKey: string;
}

function generate(): StoredSecrets {
  return {
    jwtSecret: randomBytes(32).toString('hex'),
    cookieSecret: randomBytes(32).toString('hex'),
    adminApiToken: randomBytes(32).toString('hex'),
    stripeWebhookSecret: `whsec_${randomBytes(24).toString('hex')}`,
    apiKeyPepper: randomBytes(32).toString('hex'),
    auditPseudonymKey: randomBytes(32).toString('hex'),
  };
}

function isStoredSecrets(value: unknown): value is Partial<StoredSecrets> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads the development secrets file under dataDir, creating it (0600, in a 0700 folder)
 * on first start and adding any secret a newer version needs.
 */
function loadOrCreate(dataDir: string): { secrets: StoredSecrets; file: string; created: boolean } {
  const file = path.join(dataDir, DEVELOPMENT_SECRETS_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  let stored: Partial<StoredSecrets> = {};
  const existed = existsSync(file);
  if (existed) {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (!isStoredSecrets(parsed)) throw new Error(`${file} is not a JSON object`);
    stored = parsed;
  }
  const fresh = generate();
  const secrets: StoredSecrets = {
    jwtSecret: stored.jwtSecret ?? fresh.jwtSecret,
    cookieSecret: stored.cookieSecret ?? fresh.cookieSecret,
    adminApiToken: stored.adminApiToken ?? fresh.adminApiToken,
    stripeWebhookSecret: stored.stripeWebhookSecret ?? fresh.stripeWebhookSecret,
    apiKeyPepper: stored.apiKeyPepper ?? fresh.apiKeyPepper,
    auditPseudonymKey: stored.auditPseudonymKey ?? fresh.auditPseudonymKey,
  };
  const changed = Object.keys(secrets).some(
    (key) => stored[key as keyof StoredSecrets] !== secrets[key as keyof StoredSecrets],
  );
  if (changed) writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFileSync only applies on creation; enforce it every time.
  chmodSync(file, 0o600);
  return { secrets, file, created: !existed };
}

/** The development licence key file under dataDir, created (0600, in a 0700 folder) on first use. */
function developmentLicenseKeyFile(dataDir: string): string {
  const file = path.join(dataDir, DEVELOPMENT_LICENSE_KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // 'wx': never overwrite a key that licences in the field may already be signed with.
  if (!existsSync(file)) writeFileSync(file, generateLicenseKeyPem(), { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return file;
}

/**
 * LIC-1 outside production: without LICENSE_PRIVATE_KEY_PATH, a development Ed25519 key
 * under DATA_DIR (development) or in memory (test). Production has refused a missing path.
 */
function resolveLicenseKey(config: Config): Config['license'] {
  if (config.isProduction || config.license.privateKeyPath !== undefined || config.license.privateKeyPem !== undefined) {
    return config.license;
  }
  return config.env === 'test'
    ? { ...config.license, privateKeyPem: generateLicenseKeyPem() }
    : { ...config.license, privateKeyPath: developmentLicenseKeyFile(config.dataDir) };
}

export interface ResolvedSecrets {
  readonly config: Config;
  /** Where generated development secrets live, when they were used. */
  readonly secretsFile: string | undefined;
  readonly created: boolean;
}

/**
 * Outside production, fills every secret the environment did not set: from the
 * development secrets file (development) or freshly in memory (test). Production
 * secrets must come from the environment; loadConfig has already refused missing ones.
 */
export function resolveDevelopmentSecrets(config: Config): ResolvedSecrets {
  if (config.isProduction) return { config, secretsFile: undefined, created: false };
  const license = resolveLicenseKey(config);
  const needed =
    config.secrets.jwt === undefined ||
    config.secrets.cookie === undefined ||
    config.secrets.adminApiToken === undefined ||
    config.secrets.apiKeyPepper === undefined ||
    config.secrets.auditPseudonymKey === undefined ||
    config.stripe.webhookSecrets.length === 0;
  if (!needed) {
    const withKey = license === config.license ? config : deepFreeze({ ...config, license });
    return { config: withKey, secretsFile: undefined, created: false };
  }

  const { secrets, file, created } =
    config.env === 'test'
      ? { secrets: generate(), file: undefined, created: false }
      : loadOrCreate(config.dataDir);

  const resolved: Config = {
    ...config,
    license,
    secrets: {
      ...config.secrets,
      jwt: config.secrets.jwt ?? { keyId: 'dev', secret: secrets.jwtSecret },
      cookie: config.secrets.cookie ?? secrets.cookieSecret,
      adminApiToken: config.secrets.adminApiToken ?? secrets.adminApiToken,
      apiKeyPepper: config.secrets.apiKeyPepper ?? secrets.apiKeyPepper,
      auditPseudonymKey: config.secrets.auditPseudonymKey ?? secrets.auditPseudonymKey,
    },
    stripe: {
      ...config.stripe,
      webhookSecrets:
        config.stripe.webhookSecrets.length > 0 ? config.stripe.webhookSecrets : [secrets.stripeWebhookSecret],
    },
  };
  return { config: deepFreeze(resolved), secretsFile: file, created };
}
