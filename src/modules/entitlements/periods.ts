/** Period boundaries in UTC for metered features (TIER-3). */
export interface Period {
  readonly start: Date;
  /** When the counter starts again from zero. */
  readonly resetsAt: Date;
}

export function periodOf(kind: 'day' | 'month', at: Date): Period {
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  if (kind === 'day') {
    const start = new Date(Date.UTC(year, month, at.getUTCDate()));
    return { start, resetsAt: new Date(start.getTime() + 24 * 60 * 60 * 1000) };
  }
  return { start: new Date(Date.UTC(year, month, 1)), resetsAt: new Date(Date.UTC(year, month + 1, 1)) };
}

/** Static limits count since the beginning of time: they never reset. */
export const STATIC_PERIOD_START = new Date(0);
