import type {} from '@fastify/cookie';
import type { FastifyReply } from 'fastify';
import { ACCESS_TOKEN_TTL_SECONDS } from './access-tokens.js';

export const ACCESS_COOKIE = 'access_token';
export const REFRESH_COOKIE = 'refresh_token';
export const CSRF_COOKIE = 'csrf_token';
/** The refresh token is only ever sent to the routes that use it (AUTH-3). */
export const REFRESH_COOKIE_PATH = '/auth';

export interface CookiePolicy {
  readonly secure: boolean;
}

/** Sets the session's three cookies: two HttpOnly tokens and the readable CSRF token. */
export function setSessionCookies(
  reply: FastifyReply,
  policy: CookiePolicy,
  session: { accessToken: string; refreshToken: string; refreshExpiresAt: Date; csrfToken: string },
  now: Date,
): void {
  const refreshMaxAge = Math.max(0, Math.floor((session.refreshExpiresAt.getTime() - now.getTime()) / 1000));
  void reply.setCookie(ACCESS_COOKIE, session.accessToken, {
    httpOnly: true,
    secure: policy.secure,
    sameSite: 'lax',
    path: '/',
    maxAge: ACCESS_TOKEN_TTL_SECONDS,
  });
  void reply.setCookie(REFRESH_COOKIE, session.refreshToken, {
    httpOnly: true,
    secure: policy.secure,
    sameSite: 'strict',
    path: REFRESH_COOKIE_PATH,
    maxAge: refreshMaxAge,
  });
  void reply.setCookie(CSRF_COOKIE, session.csrfToken, {
    httpOnly: false,
    secure: policy.secure,
    sameSite: 'lax',
    path: '/',
    maxAge: refreshMaxAge,
  });
}

export function clearSessionCookies(reply: FastifyReply, policy: CookiePolicy): void {
  void reply.clearCookie(ACCESS_COOKIE, { path: '/', httpOnly: true, secure: policy.secure, sameSite: 'lax' });
  void reply.clearCookie(REFRESH_COOKIE, { path: REFRESH_COOKIE_PATH, httpOnly: true, secure: policy.secure, sameSite: 'strict' });
  void reply.clearCookie(CSRF_COOKIE, { path: '/', secure: policy.secure, sameSite: 'lax' });
}
