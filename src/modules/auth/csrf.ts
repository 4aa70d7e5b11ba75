import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed double-submit CSRF tokens bound to a login session (refresh-token family): the
 * token is HMAC(cookie secret, session id), so it stays valid across that session's
 * refreshes and is worthless with any other session's cookies. It travels in the
 * readable csrf_token cookie and must come back in X-CSRF-Token (AUTH-4).
 */
export class CsrfTokens {
  constructor(private readonly secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('CSRF tokens need at least one secret');
  }

  tokenFor(sessionId: string): string {
    return this.sign(this.secrets[0] as string, sessionId);
  }

  /** Accepts tokens made with the current or a previous cookie secret (rotation). */
  matches(presented: string | undefined, sessionId: string): boolean {
    if (presented === undefined || presented.length > 200) return false;
    const given = Buffer.from(presented);
    return this.secrets.some((secret) => {
      const expected = Buffer.from(this.sign(secret, sessionId));
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
  }

  private sign(secret: string, sessionId: string): string {
    return createHmac('sha256', secret).update(`csrf:${sessionId}`).digest('base64url');
  }
}
