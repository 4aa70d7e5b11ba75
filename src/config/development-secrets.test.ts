import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { DEVELOPMENT_LICENSE_KEY_FILE, DEVELOPMENT_SECRETS_FILE, resolveDevelopmentSecrets } from './development-secrets.js';
import { readLicenseSigningKey } from '../modules/licenses/license-keys.js';

const folders: string[] = [];
function tempDataDir(): string {
  const folder = mkdtempSync(path.join(tmpdir(), 'bulwark-secrets-'));
  folders.push(folder);
  return path.join(folder, 'data');
}
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

describe('development secrets', () => {
  it('generates every missing secret on first start into a 0600 file in a 0700 folder, and reuses it', () => {
    const dataDir = tempDataDir();
    const first = resolveDevelopmentSecrets(loadConfig({ DATA_DIR: dataDir }));
    const file = path.join(dataDir, DEVELOPMENT_SECRETS_FILE);
    expect(first.secretsFile).toBe(file);
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(first.config.secrets.adminApiToken).toMatch(/^[0-9a-f]{64}$/);
    expect(Buffer.byteLength(first.config.secrets.jwt?.secret ?? '')).toBeGreaterThanOrEqual(32);
    expect(Buffer.byteLength(first.config.secrets.cookie ?? '')).toBeGreaterThanOrEqual(32);
    expect(first.config.stripe.webhookSecrets[0]).toMatch(/^whsec_[0-9a-f]{48}$/);
    expect(Buffer.byteLength(first.config.secrets.apiKeyPepper ?? '')).toBeGreaterThanOrEqual(32);
    expect(Buffer.byteLength(first.config.secrets.auditPseudonymKey ?? '')).toBeGreaterThanOrEqual(32);

    const second = resolveDevelopmentSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(second.created).toBe(false);
    expect(second.config.secrets).toEqual(first.config.secrets);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ adminApiToken: first.config.secrets.adminApiToken });
  });

  it('generates a development Ed25519 licence key under DATA_DIR (0600) when LICENSE_PRIVATE_KEY_PATH is unset, and keeps it', () => {
    const dataDir = tempDataDir();
    const first = resolveDevelopmentSecrets(loadConfig({ DATA_DIR: dataDir }));
    const file = path.join(dataDir, DEVELOPMENT_LICENSE_KEY_FILE);
    expect(first.config.license.privateKeyPath).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = readLicenseSigningKey(first.config.license);
    expect(key.publicKey.algorithm).toBe('EdDSA');
    const second = resolveDevelopmentSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(readLicenseSigningKey(second.config.license).publicKey.keyId).toBe(key.publicKey.keyId);
    // A configured path is used as it is, nothing generated.
    const configured = resolveDevelopmentSecrets(loadConfig({ DATA_DIR: tempDataDir(), LICENSE_PRIVATE_KEY_PATH: file }));
    expect(configured.config.license.privateKeyPath).toBe(file);
    expect(configured.config.license.privateKeyPem).toBeUndefined();
  });

  it('keeps secrets the environment sets and fills only the rest', () => {
    const dataDir = tempDataDir();
    const adminToken = 'ab'.repeat(32);
    const { config } = resolveDevelopmentSecrets(loadConfig({ DATA_DIR: dataDir, ADMIN_API_TOKEN: adminToken }));
    expect(config.secrets.adminApiToken).toBe(adminToken);
    expect(config.secrets.cookie).toBeDefined();
  });

  it('writes nothing under NODE_ENV=test: secrets live in memory for the run', () => {
    const dataDir = tempDataDir();
    const resolved = resolveDevelopmentSecrets(loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir }));
    expect(resolved.secretsFile).toBeUndefined();
    expect(resolved.config.secrets.adminApiToken).toMatch(/^[0-9a-f]{64}$/);
    expect(readLicenseSigningKey(resolved.config.license).publicKey.algorithm).toBe('EdDSA');
    expect(() => statSync(dataDir)).toThrow();
  });
});
