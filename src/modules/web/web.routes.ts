import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';

/**
 * The customer portal (/portal) and the operator dashboard (/admin), UI-1: two HTML
 * shells plus ES modules and one stylesheet, served from memory by the service itself
 * (no CDN, no build step: `npm start` copies src/web to dist/web). Pages load their
 * scripts from /web/, never inline, so the service's CSP (default-src 'self') holds.
 */

/** The folder beside modules/: src/web when run from source, dist/web when built. */
export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/** Every servable file under `root`, by its path with forward slashes ('lib/api.js'). */
export function loadWebFiles(root: string = WEB_ROOT): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (folder: string): void => {
    for (const name of readdirSync(folder)) {
      const full = path.join(folder, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const contentType = CONTENT_TYPES[path.extname(name)];
      if (!contentType) continue;
      const body = readFileSync(full);
      const relative = path.relative(root, full).split(path.sep).join('/');
      files.set(relative, { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
    }
  };
  walk(root);
  return files;
}

/**
 * Sends a file from memory. `no-cache` means "revalidate every time": a changed file is
 * seen at once after an upgrade, an unchanged one costs a 304 and no body.
 */
function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  void reply.header('Cache-Control', 'no-cache').header('ETag', file.etag).header('Content-Type', file.contentType);
  if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
  return reply.send(file.body);
}

/** The pages are public (the API behind them decides who sees what): no general per-IP limit for files served from memory. */
const STATIC = { rateLimit: { general: false } } as const;

export async function webRoutes(app: FastifyInstance, options: { readonly root?: string } = {}): Promise<void> {
  const files = loadWebFiles(options.root);
  const portal = files.get('portal.html');
  const dashboard = files.get('admin.html');
  if (!portal || !dashboard) throw new Error(`the web pages are missing from ${options.root ?? WEB_ROOT} (portal.html, admin.html)`);

  const schema = { hide: true } as const;
  app.get('/', { schema, config: STATIC }, async (_request, reply) => reply.redirect('/portal', 302));
  // The portal's pages, and the link of password-reset emails (/reset?token=...).
  for (const url of ['/portal', '/portal/*', '/reset']) {
    app.get(url, { schema, config: STATIC }, async (request, reply) => send(request, reply, portal));
  }
  for (const url of ['/admin', '/admin/*']) {
    app.get(url, { schema, config: STATIC }, async (request, reply) => send(request, reply, dashboard));
  }
  app.get<{ Params: { '*': string } }>('/web/*', { schema, config: STATIC }, async (request, reply) => {
    const name = request.params['*'];
    const file = name.endsWith('.html') ? undefined : files.get(name);
    if (!file) throw new AppError('NOT_FOUND', 'Not found');
    return send(request, reply, file);
  });
}
