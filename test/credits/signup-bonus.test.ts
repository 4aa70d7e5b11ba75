import { describe, expect, it } from 'vitest';
import { createTestApp } from '../helpers/app.js';

/** CRD-7 through the real sign-up route: the configured bonus, once; 0 turns it off. */
describe('the sign-up bonus', () => {
  it.each([
    ['the default 10 credits', {}, 10],
    ['nothing when SIGNUP_BONUS_CREDITS=0', { SIGNUP_BONUS_CREDITS: '0' }, 0],
  ])('grants %s at sign-up', async (_label, env, expected) => {
    const testApp = await createTestApp({ env });
    try {
      const signup = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email: 'bonus@example.com', password: 'a sturdy passphrase 42' } });
      expect(signup.statusCode).toBe(201);
      const credits = await testApp.app.inject({ method: 'GET', url: '/api/credits', headers: { authorization: `Bearer ${signup.json().accessToken}` } });
      expect(credits.statusCode, credits.body).toBe(200);
      expect(credits.json()).toMatchObject({ balance: expected, held: 0 });
      expect(credits.json().grants.map((grant: { source: string }) => grant.source)).toEqual(expected > 0 ? ['signup_bonus'] : []);
    } finally {
      await testApp.close();
    }
  });
});
