/**
 * @bulwark/client: a typed client for Bulwark (SDK-1). Entitlement checks and tracking,
 * leases, usage reports, credits (reserve / confirm / release), the gate, licences and
 * their offline verification. Runtime needs: fetch and WebCrypto only.
 */
export { BulwarkClient, type BulwarkClientOptions, type RetryOptions } from './client.js';
export { BulwarkError, BulwarkNetworkError, type BulwarkErrorCode, type FieldProblem } from './errors.js';
export {
  LICENSE_TOKEN_TYPE,
  verifyLicense,
  type License,
  type LicenseAlgorithm,
  type LicenseFailure,
  type LicenseJwk,
  type LicenseLimit,
  type LicensePublicKeyDocument,
  type LicenseVerification,
  type LicenseVerificationKey,
  type VerifyLicenseOptions,
} from './license.js';
export { verifyWebhook, type VerifyWebhookOptions, type WebhookHeaders } from './webhooks.js';
export { OPERATIONS, SERVER_ERROR_CODES, type BodyShape, type Operation, type OperationName, type ServerErrorCode } from './operations.js';
export type * from './types.js';
