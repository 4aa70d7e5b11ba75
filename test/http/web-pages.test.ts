import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** How the service serves the portal and the dashboard (UI-1): from memory, typed, cacheable by validation, under the CSP. */
describe('the web pages', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await createTestApp();
  });
  afterAll(async () => {
    await testApp?.close();
  });

  const get = (url: string, headers: Record<string, string> = {}) => testApp.app.inject({ method: 'GET', url, headers });

  it('serves the portal under /portal (and sub-paths, and the reset link) and the dashboard under /admin, with the strict CSP', async () => {
    for (const url of ['/portal', '/portal/credits', '/portal/checkout/return?session_id=cs_1', '/reset?token=abc']) {
      const response = await get(url);
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(response.body).toContain('<script type="module" src="/web/portal.js"></script>');
    }
    for (const url of ['/admin', '/admin/accounts/acct_1']) {
      const response = await get(url);
      expect(response.statusCode, url).toBe(200);
      expect(response.body).toContain('src="/web/admin.js"');
      expect(response.headers['content-security-policy']).toBe("default-src 'self';base-uri 'self';form-action 'self';frame-ancestors 'none';object-src 'none'");
      expect(response.headers['x-frame-options']).toBe('DENY');
    }
    expect((await get('/')).headers.location).toBe('/portal');
  });

  it('has no inline script, inline style or outside resource in any page or stylesheet', async () => {
    for (const url of ['/portal', '/admin']) {
      const html = (await get(url)).body;
      expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i);
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    }
    const css = (await get('/web/style.css')).body;
    expect(css).not.toMatch(/@import|url\(/);
  });

  it('serves scripts and styles with their types, an ETag, no-cache, and 304 when unchanged', async () => {
    const script = await get('/web/lib/api.js');
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['cache-control']).toBe('no-cache');
    expect(script.headers['x-content-type-options']).toBe('nosniff');
    const etag = String(script.headers.etag);
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    const again = await get('/web/lib/api.js', { 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect((await get('/web/style.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get('/web/icon.svg')).headers['content-type']).toBe('image/svg+xml');
  });

  it('answers 404 for anything else under /web/, including the shells, the tsconfig and paths that climb out', async () => {
    for (const url of ['/web/nothing.js', '/web/portal.html', '/web/tsconfig.json', '/web/../app.ts', '/web/%2e%2e/%2e%2e/package.json', '/web/lib/../../server.ts']) {
      const response = await get(url);
      expect(response.statusCode, url).toBe(404);
      expect(response.body).not.toContain('import ');
    }
  });
});
