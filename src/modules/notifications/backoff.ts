/**
 * When a failed delivery is tried again (OUT-1, MAIL-1). The n-th failure waits
 * RETRY_DELAYS_MS[n-1], shortened by up to 10% at random (jitter, so that deliveries that
 * failed together do not all come back at once; never lengthened, so the whole schedule
 * stays inside the window). After MAX_DELIVERY_ATTEMPTS attempts, about 71.6 hours after
 * the first, the delivery is given up ('dead'): the retry window is 3 days.
 */
const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const RETRY_DELAYS_MS: readonly number[] = [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 14 * HOUR, 20 * HOUR, 20 * HOUR];
export const MAX_DELIVERY_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
export const RETRY_WINDOW_MS = 3 * 24 * HOUR;

/** The wait after `attempts` failed attempts, or undefined when the delivery is given up. */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number | undefined {
  const base = RETRY_DELAYS_MS[attempts - 1];
  if (base === undefined) return undefined;
  return Math.round(base * (1 - 0.1 * random()));
}
