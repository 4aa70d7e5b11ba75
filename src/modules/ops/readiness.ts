import { statfs } from 'node:fs/promises';
import net from 'node:net';
import type { Config } from '../../config/config.js';
import type { Database } from '../../platform/database/database.js';

/** A check either passes ('ok'), is not applicable here ('skipped'), or throws. */
export type CheckResult = 'ok' | 'skipped';

export interface ReadinessCheck {
  readonly name: string;
  run(): Promise<CheckResult>;
}

export function databaseCheck(database: Database): ReadinessCheck {
  return {
    name: 'database',
    async run() {
      await database.query('SELECT 1');
      return 'ok';
    },
  };
}

export function diskCheck(directory: string, minFreeBytes: number): ReadinessCheck {
  return {
    name: 'disk',
    async run() {
      const stats = await statfs(directory);
      const free = stats.bavail * stats.bsize;
      if (free < minFreeBytes) throw new Error(`only ${free} bytes free under the data directory`);
      return 'ok';
    },
  };
}

/** Opens (and closes) a TCP connection: enough to know the peer is reachable. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`connect to ${host}:${port} timed out`)));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
  });
}

/**
 * Stripe reachability. In test and live modes: a TCP connection to Stripe's API host.
 * In sandbox mode the sandbox runs inside this process and provides its own check
 * (passed in by the composition root once it exists); without one there is nothing
 * external to reach and the check reports 'skipped'.
 */
export function stripeCheck(
  stripe: Config['stripe'],
  timeoutMs: number,
  sandboxCheck?: () => Promise<void>,
  apiHost: { host: string; port: number } = { host: 'api.stripe.com', port: 443 },
): ReadinessCheck {
  return {
    name: 'stripe',
    async run() {
      if (stripe.mode === 'sandbox') {
        if (!sandboxCheck) return 'skipped';
        await sandboxCheck();
        return 'ok';
      }
      await tcpReachable(apiHost.host, apiHost.port, timeoutMs);
      return 'ok';
    },
  };
}

export interface ReadinessReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, CheckResult | 'failed'>;
}

function withTimeout<T>(work: Promise<T>, timeoutMs: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} check timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Runs every check in parallel, each bounded by timeoutMs; failures are reported by name only. */
export async function runReadiness(
  checks: readonly ReadinessCheck[],
  timeoutMs: number,
  onFailure: (name: string, error: unknown) => void,
): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (check) => {
      try {
        return [check.name, await withTimeout(check.run(), timeoutMs, check.name)] as const;
      } catch (error) {
        onFailure(check.name, error);
        return [check.name, 'failed'] as const;
      }
    }),
  );
  const report: ReadinessReport = { status: 'ok', checks: {} };
  for (const [name, result] of results) {
    report.checks[name] = result;
    if (result === 'failed') report.status = 'unavailable';
  }
  return report;
}
