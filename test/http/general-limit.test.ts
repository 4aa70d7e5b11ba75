import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** RL-5 as wired in app.ts: anonymous requests share the general per-IP limit, unmatched paths included; probes never count. */
describe('the general per-IP limit in the real app', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    testApp = await createTestApp({ env: { RATE_LIMITS: JSON.stringify({ 'general.ip': { limit: 3, windowSeconds: 900 } }) } });
  });
  afterAll(async () => testApp.close());

  it('limits unknown paths and public routes per IP, but not /health', async () => {
    const peer = '203.0.113.77';
    const statuses: number[] = [];
    for (const url of ['/nope', '/api/pricing', '/nope/again', '/nope/more', '/api/pricing']) {
      statuses.push((await testApp.app.inject({ method: 'GET', url, remoteAddress: peer })).statusCode);
    }
    expect(statuses).toEqual([404, 200, 404, 429, 429]);
    for (let index = 0; index < 5; index += 1) {
      expect((await testApp.app.inject({ method: 'GET', url: '/health', remoteAddress: peer })).statusCode).toBe(200);
    }
    // Another address has its own budget.
    expect((await testApp.app.inject({ method: 'GET', url: '/api/pricing', remoteAddress: '203.0.113.78' })).statusCode).toBe(200);
  });
});
