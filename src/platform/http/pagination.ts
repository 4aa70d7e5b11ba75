/** The largest page any list answers with (USE-2). */
export const MAX_PAGE_LIMIT = 100;

/**
 * USE-2, for every paginated list: limit = max(1, min(limit, 100)); a missing or
 * non-finite limit takes the fallback, a fractional one is truncated.
 */
export function clampPageLimit(limit: number | undefined, fallback = 50): number {
  const value = limit === undefined || !Number.isFinite(limit) ? fallback : Math.trunc(limit);
  return Math.max(1, Math.min(value, MAX_PAGE_LIMIT));
}
