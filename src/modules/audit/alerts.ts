import type { Logger } from 'pino';
import type { Clock } from '../../platform/clock.js';

/**
 * Alerts (AUD-3). An alert is one log line at pino's highest level, `fatal` (60), with
 * `alert: true` and `severity: "critical"` (what log pipelines should page on), plus an
 * optional JSON POST to the operator's alert webhook (ALERT_WEBHOOK_URL).
 *
 * Alerting never fails the caller: delivery runs in the background, failures are logged
 * at error level (without the webhook URL, which often embeds a secret) and dropped.
 */

export type AlertKind =
  | 'auth_failures'
  | 'owner_charge_attempt'
  | 'webhook_signature_failed'
  | 'reconciliation_discrepancy'
  | 'payment_disputed'
  | 'audit_chain_broken';

/** Ids and counts only. `ip` is allowed for source-based alerts: the log redacts it, the webhook carries it. */
export type AlertDetails = Readonly<Record<string, string | number | boolean | null>>;

export interface AlertPayload {
  readonly alert: AlertKind;
  readonly severity: 'critical';
  readonly message: string;
  readonly at: string;
  readonly service: 'bulwark';
  readonly details: AlertDetails;
}

export interface AlerterOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** ALERT_WEBHOOK_URL; without it alerts go to the log only. */
  readonly webhookUrl?: string | undefined;
  readonly webhookTimeoutMs?: number;
}

export class Alerter {
  private readonly pending = new Set<Promise<void>>();
  private readonly timeoutMs: number;

  constructor(private readonly options: AlerterOptions) {
    this.timeoutMs = options.webhookTimeoutMs ?? 5_000;
  }

  /** Logs the alert at critical level now and delivers it to the webhook in the background. Never throws. */
  alert(kind: AlertKind, message: string, details: AlertDetails = {}): void {
    const payload: AlertPayload = {
      alert: kind,
      severity: 'critical',
      message,
      at: this.options.clock.now().toISOString(),
      service: 'bulwark',
      details,
    };
    // Details at the top level, so the logger's redaction of `ip` (and friends) applies.
    this.options.logger.fatal({ ...details, alert: true, severity: 'critical', alertKind: kind }, `ALERT ${kind}: ${message}`);
    if (this.options.webhookUrl === undefined) return;
    const delivery = this.deliver(this.options.webhookUrl, payload);
    this.pending.add(delivery);
    void delivery.finally(() => this.pending.delete(delivery));
  }

  /** Waits for deliveries in flight (tests, graceful shutdown). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private async deliver(url: string, payload: AlertPayload): Promise<void> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined);
      if (!response.ok) {
        this.options.logger.error({ alertKind: payload.alert, status: response.status }, 'alert webhook refused the alert');
      }
    } catch (error) {
      const reason = error instanceof Error ? error.name : 'unknown';
      this.options.logger.error({ alertKind: payload.alert, reason }, 'alert webhook delivery failed');
    }
  }
}

export interface AuthFailure {
  /** The client IP (the source). */
  readonly ip?: string | null;
  /** The account the attempt was against, when known. */
  readonly accountId?: string | null;
}

export interface AuthFailureDetectorOptions {
  readonly alerter: Alerter;
  readonly clock: Clock;
  /** Alert when more than this many failures fall within the window. Default 10. */
  readonly threshold?: number;
  readonly windowMs?: number;
  /** Bound on tracked sources and accounts; the least recently failing key is forgotten first. */
  readonly maxTrackedKeys?: number;
}

interface Tracked {
  /** Times of the most recent failures within the window, at most threshold + 1. */
  times: number[];
  alerted: boolean;
}

/**
 * AUD-3: alerts when more than `threshold` (10) failed authentications happen within a
 * sliding hour from one source IP, or against one account. One alert per crossing: the
 * key alerts again only after its count has fallen back to the threshold or below.
 *
 * Limitation: counts live in this process's memory. With several instances each counts
 * its own share (up to threshold x instances failures before any alerts) and a restart
 * forgets them; a shared store (Redis, as for RL-2) lifts that.
 */
export class AuthFailureDetector {
  private readonly tracked = new Map<string, Tracked>();
  private readonly threshold: number;
  private readonly windowMs: number;
  private readonly maxTrackedKeys: number;
  private recordsSinceSweep = 0;

  constructor(private readonly options: AuthFailureDetectorOptions) {
    this.threshold = options.threshold ?? 10;
    this.windowMs = options.windowMs ?? 3_600_000;
    this.maxTrackedKeys = options.maxTrackedKeys ?? 100_000;
  }

  recordAuthFailure(failure: AuthFailure): void {
    const now = this.options.clock.now().getTime();
    if (failure.ip) this.count(`ip:${failure.ip}`, now, { scope: 'ip', ip: failure.ip });
    if (failure.accountId) this.count(`account:${failure.accountId}`, now, { scope: 'account', accountId: failure.accountId });
    this.recordsSinceSweep += 1;
    if (this.recordsSinceSweep >= 1_000) this.sweep(now);
  }

  /** How many keys are tracked (for tests and metrics). */
  get size(): number {
    return this.tracked.size;
  }

  private count(key: string, now: number, details: Record<string, string>): void {
    let entry = this.tracked.get(key);
    if (!entry) {
      while (this.tracked.size >= this.maxTrackedKeys) {
        const oldest = this.tracked.keys().next().value;
        if (oldest === undefined) break;
        this.tracked.delete(oldest);
      }
      entry = { times: [], alerted: false };
    } else {
      // Move the key to the end: the map's order is least recently failed first.
      this.tracked.delete(key);
    }
    this.tracked.set(key, entry);
    const since = now - this.windowMs;
    entry.times = entry.times.filter((time) => time > since);
    entry.times.push(now);
    if (entry.times.length > this.threshold + 1) entry.times.shift();
    if (entry.times.length <= this.threshold) {
      entry.alerted = false;
      return;
    }
    if (entry.alerted) return;
    entry.alerted = true;
    const windowMinutes = Math.round(this.windowMs / 60_000);
    this.options.alerter.alert(
      'auth_failures',
      `more than ${this.threshold} failed authentications within ${windowMinutes} minutes ${details.scope === 'ip' ? 'from one source' : 'against one account'}`,
      { ...details, failures: entry.times.length, windowMinutes },
    );
  }

  /** Forgets keys whose failures have all left the window. */
  private sweep(now: number): void {
    this.recordsSinceSweep = 0;
    const since = now - this.windowMs;
    for (const [key, entry] of this.tracked) {
      if ((entry.times.at(-1) ?? 0) <= since) this.tracked.delete(key);
    }
  }
}
