import type { Logger } from 'pino';
import { AppError } from '../../errors/app-error.js';
import { RateLimitStoreUnavailableError, type RateLimitBackend } from './backend.js';
import type { LockoutRule } from './gcra.js';
import { keyKindOf, normaliseEmail } from './keys.js';
import type { RateLimitMetrics } from './metrics.js';
import { LOGIN_LOCKOUT_POLICY_NAME, type StoreFailureMode } from './policies.js';

export interface LoginLockoutSettings {
  /** Consecutive failures before the first lock (default 5). */
  readonly threshold: number;
  /** The first lock, doubled by each further failure (default 30 s). */
  readonly baseDelaySeconds: number;
  /** The longest single lock (default 15 min). */
  readonly maxDelaySeconds: number;
  /** Failures are forgotten this long after the last one (default 1 hour; at least maxDelaySeconds). */
  readonly forgetAfterSeconds: number;
}

export const DEFAULT_LOGIN_LOCKOUT: LoginLockoutSettings = {
  threshold: 5,
  baseDelaySeconds: 30,
  maxDelaySeconds: 15 * 60,
  forgetAfterSeconds: 60 * 60,
};

export interface LockoutStatus {
  readonly locked: boolean;
  /** Seconds until the next attempt may be made (0 when not locked). */
  readonly retryAfterSeconds: number;
  /** Locked only because the shared store is down and the lockout fails closed (answer 503). */
  readonly unavailable: boolean;
}

export interface LockoutFailureResult extends LockoutStatus {
  readonly failures: number;
  /** True when this failure set a lock (the first lock or a longer one): audit it. */
  readonly lockedNow: boolean;
}

export interface LoginLockedEvent {
  readonly keyKind: string;
  /** The key itself (a normalised email): personal data, for the audit trail only. */
  readonly key: string;
  readonly failures: number;
  readonly lockSeconds: number;
}

export interface LoginLockoutOptions {
  readonly settings?: Partial<LoginLockoutSettings>;
  readonly logger: Logger;
  readonly metrics?: RateLimitMetrics;
  /**
   * When the shared store is down: "local" keeps counting failures per instance (default);
   * "closed" reports every key as locked (no login at all) until it is back.
   */
  readonly onStoreFailure?: StoreFailureMode;
  /** Called when a failure sets a lock; the audit module records `rate_limit.lockout`. Errors are logged. */
  readonly onLocked?: (event: LoginLockedEvent) => void | Promise<void>;
}

const UNAVAILABLE_RETRY_SECONDS = 5;

/**
 * Issue 3 item 6: after `threshold` consecutive failed logins a key is locked for
 * baseDelay, and each further failure doubles the lock (30 s, 60 s, 120 s, ... capped at
 * 15 min); a success forgets everything. Locks live in the same store as the rate limits,
 * so with Redis they hold across instances.
 *
 * No enumeration (AUTH-6): key it by the normalised email the caller typed (use
 * `LoginLockout.keyForEmail`), and record failures for unknown emails exactly as for
 * known ones; the lockout never looks at whether an account exists.
 *
 * Use: `check` before verifying the password (a locked key is refused without touching
 * the password: the attempt has no effect), `recordFailure` after a wrong password or an
 * unknown email, `recordSuccess` after a successful login.
 */
export class LoginLockout {
  readonly rule: LockoutRule;
  private readonly logger: Logger;
  private readonly metrics: RateLimitMetrics | undefined;
  private readonly mode: StoreFailureMode;
  private onLocked: LoginLockoutOptions['onLocked'];

  constructor(
    private readonly backend: RateLimitBackend,
    options: LoginLockoutOptions,
  ) {
    const settings = { ...DEFAULT_LOGIN_LOCKOUT, ...options.settings };
    const { threshold, baseDelaySeconds, maxDelaySeconds } = settings;
    if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError('lockout threshold must be a positive integer');
    if (!Number.isInteger(baseDelaySeconds) || baseDelaySeconds < 1) throw new RangeError('lockout base delay must be at least 1 s');
    if (!Number.isInteger(maxDelaySeconds) || maxDelaySeconds < baseDelaySeconds) {
      throw new RangeError('lockout max delay must be an integer at least the base delay');
    }
    this.rule = {
      threshold,
      baseDelayMs: baseDelaySeconds * 1000,
      maxDelayMs: maxDelaySeconds * 1000,
      forgetAfterMs: Math.max(settings.forgetAfterSeconds, maxDelaySeconds) * 1000,
    };
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.mode = options.onStoreFailure ?? 'local';
    this.onLocked = options.onLocked;
  }

  /** Sets the lock hook after construction (the audit module is built after the lockout). */
  setOnLocked(hook: LoginLockoutOptions['onLocked']): void {
    this.onLocked = hook;
  }

  /** The lockout key of an email as typed: `email:<normalised>`. */
  static keyForEmail(email: string): string {
    return `email:${normaliseEmail(email)}`;
  }

  async check(key: string): Promise<LockoutStatus> {
    const id = this.backend.idFor(LOGIN_LOCKOUT_POLICY_NAME, key);
    let lockedMs: number;
    try {
      lockedMs = (await this.backend.run(this.mode, (store) => store.lockedForMs(id))).value;
    } catch (error) {
      if (!(error instanceof RateLimitStoreUnavailableError)) throw error;
      return { locked: true, retryAfterSeconds: UNAVAILABLE_RETRY_SECONDS, unavailable: true };
    }
    if (lockedMs <= 0) return { locked: false, retryAfterSeconds: 0, unavailable: false };
    this.metrics?.hits.inc({ policy: LOGIN_LOCKOUT_POLICY_NAME });
    return { locked: true, retryAfterSeconds: Math.max(1, Math.ceil(lockedMs / 1000)), unavailable: false };
  }

  async recordFailure(key: string): Promise<LockoutFailureResult> {
    const id = this.backend.idFor(LOGIN_LOCKOUT_POLICY_NAME, key);
    let failures: number;
    let lockedMs: number;
    try {
      ({ failures, lockedMs } = (await this.backend.run(this.mode, (store) => store.recordFailure(id, this.rule))).value);
    } catch (error) {
      if (!(error instanceof RateLimitStoreUnavailableError)) throw error;
      // Failing closed: check() already refuses every login while the store is down.
      return { locked: true, retryAfterSeconds: UNAVAILABLE_RETRY_SECONDS, unavailable: true, failures: 0, lockedNow: false };
    }
    if (lockedMs <= 0) return { locked: false, retryAfterSeconds: 0, unavailable: false, failures, lockedNow: false };
    const lockSeconds = Math.ceil(lockedMs / 1000);
    const keyKind = keyKindOf(key);
    this.logger.warn({ component: 'rate-limit', policy: LOGIN_LOCKOUT_POLICY_NAME, keyKind, failures, lockSeconds }, 'login locked after repeated failures');
    if (this.onLocked) {
      try {
        await this.onLocked({ keyKind, key, failures, lockSeconds });
      } catch (error) {
        this.logger.error({ component: 'rate-limit', policy: LOGIN_LOCKOUT_POLICY_NAME, err: error }, 'login lockout hook failed');
      }
    }
    return { locked: true, retryAfterSeconds: lockSeconds, unavailable: false, failures, lockedNow: true };
  }

  async recordSuccess(key: string): Promise<void> {
    const id = this.backend.idFor(LOGIN_LOCKOUT_POLICY_NAME, key);
    try {
      await this.backend.run(this.mode, (store) => store.clearFailures(id));
    } catch (error) {
      if (!(error instanceof RateLimitStoreUnavailableError)) throw error;
    }
  }
}

/**
 * The answer for a locked login, in the error envelope, with Retry-After: 429, the same
 * for every email; 503 when the lock only means the shared store is down (fail closed).
 */
export function loginLockedError(status: LockoutStatus): AppError {
  const headers = { 'Retry-After': String(Math.max(1, status.retryAfterSeconds)) };
  return status.unavailable
    ? new AppError('SERVICE_UNAVAILABLE', 'Service temporarily unavailable', undefined, headers)
    : new AppError('RATE_LIMITED', 'Too many requests', undefined, headers);
}
