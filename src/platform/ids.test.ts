import { describe, expect, it } from 'vitest';
import { newId } from './ids.js';

describe('newId', () => {
  it('gives 128-bit base64url ids with the kind prefix, never the same twice, across many pools of random bytes', () => {
    const ids = Array.from({ length: 2_000 }, () => newId('reservation'));
    for (const id of ids) expect(id).toMatch(/^res_[A-Za-z0-9_-]{22}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // No two ids share their random part either (a pool's bytes are handed out once).
    expect(new Set(ids.map((id) => id.slice(4))).size).toBe(ids.length);
  });
});
