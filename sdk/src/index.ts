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
