/** Period boundaries in UTC for metered features (TIER-3). */
export interface Period {
  readonly start: Date;
  /** When the counter starts again from zero. */
  readonly resetsAt: Date;
  /** `resetsAt` as every answer writes it. */
  readonly resetsAtIso: string;
}

/**
 * The current period of each kind, kept: every check asks for it, and it changes once a
 * day (or month). The Dates are shared between callers, who must never mutate them.
 */
const current: { day?: Period; month?: Period } = {};

export function periodOf(kind: 'day' | 'month', at: Date): Period {
  const time = at.getTime();
  const known = current[kind];
  if (known && time >= known.start.getTime() && time < known.resetsAt.getTime()) return known;
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  const start = kind === 'day' ? new Date(Date.UTC(year, month, at.getUTCDate())) : new Date(Date.UTC(year, month, 1));
  const resetsAt = kind === 'day' ? new Date(start.getTime() + 24 * 60 * 60 * 1000) : new Date(Date.UTC(year, month + 1, 1));
  const period = { start, resetsAt, resetsAtIso: resetsAt.toISOString() };
  current[kind] = period;
  return period;
}

/** Static limits count since the beginning of time: they never reset. */
export const STATIC_PERIOD_START = new Date(0);
