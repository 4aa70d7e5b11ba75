import { describe, expect, it } from 'vitest';
import { periodOf } from './periods.js';

const at = (iso: string) => new Date(iso);

describe('periodOf (UTC periods, TIER-3)', () => {
  it('gives the UTC day and month around an instant, with the ISO end', () => {
    expect(periodOf('day', at('2026-03-31T23:59:59.999Z'))).toEqual({
      start: at('2026-03-31T00:00:00.000Z'),
      resetsAt: at('2026-04-01T00:00:00.000Z'),
      resetsAtIso: '2026-04-01T00:00:00.000Z',
    });
    expect(periodOf('month', at('2026-12-15T08:00:00Z'))).toMatchObject({ start: at('2026-12-01T00:00:00Z'), resetsAtIso: '2027-01-01T00:00:00.000Z' });
    expect(periodOf('month', at('2028-02-29T12:00:00Z'))).toMatchObject({ start: at('2028-02-01T00:00:00Z'), resetsAtIso: '2028-03-01T00:00:00.000Z' });
    expect(periodOf('day', at('2028-02-29T00:00:00Z'))).toMatchObject({ start: at('2028-02-29T00:00:00Z'), resetsAtIso: '2028-03-01T00:00:00.000Z' });
  });

  it('keeps the current period while the time is inside it, and moves at the boundary either way', () => {
    const first = periodOf('day', at('2026-06-10T00:00:00.000Z'));
    expect(periodOf('day', at('2026-06-10T23:59:59.999Z'))).toBe(first);
    const next = periodOf('day', at('2026-06-11T00:00:00.000Z'));
    expect(next).not.toBe(first);
    expect(next.start).toEqual(at('2026-06-11T00:00:00.000Z'));
    // A clock moved back lands in its own period again, not in the kept one.
    expect(periodOf('day', at('2026-06-10T12:00:00Z')).start).toEqual(at('2026-06-10T00:00:00.000Z'));
    // Days and months are kept apart.
    expect(periodOf('month', at('2026-06-10T12:00:00Z')).start).toEqual(at('2026-06-01T00:00:00.000Z'));
    expect(periodOf('day', at('2026-06-10T12:00:00Z')).start).toEqual(at('2026-06-10T00:00:00.000Z'));
  });
});
