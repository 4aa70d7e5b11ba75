/**
 * The security headers every response carries (HTTP-1), computed once at start-up.
 * These are the headers @fastify/helmet sends with our settings; we set them from a
 * precomputed object because helmet rebuilds them on every request, which measured at
 * about 13 us of CPU per request against about 2.5 us for this (bench/RESULTS.md).
 * test/http/edge.test.ts pins the exact set.
 */
export function securityHeaders(options: { production: boolean }): Readonly<Record<string, string>> {
  const contentSecurityPolicy = [
    "default-src 'self'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    ...(options.production ? ['upgrade-insecure-requests'] : []),
  ].join(';');
  return Object.freeze({
    'content-security-policy': contentSecurityPolicy,
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'origin-agent-cluster': '?1',
    'referrer-policy': 'no-referrer',
    'strict-transport-security': `max-age=31536000; includeSubDomains${options.production ? '; preload' : ''}`,
    'x-content-type-options': 'nosniff',
    'x-dns-prefetch-control': 'off',
    'x-download-options': 'noopen',
    'x-frame-options': 'DENY',
    'x-permitted-cross-domain-policies': 'none',
    'x-xss-protection': '0',
  });
}
