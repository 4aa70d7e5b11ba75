import type { FastifyInstance } from 'fastify';
import secureJsonParse from 'secure-json-parse';
import { AppError } from '../../errors/app-error.js';

/**
 * JSON bodies parsed with prototype-poisoning protection: a body carrying `__proto__` or
 * `constructor.prototype` anywhere is refused with 400, not silently stripped.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  // JSON only: any other content type is 415. (Routes that need a raw body, such as
  // Stripe webhooks, add their own parser in their own plugin scope.)
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(new AppError('INVALID_JSON', 'Request body is empty; send a JSON document'), undefined);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      done(new AppError('INVALID_JSON', 'Request body is not valid JSON'), undefined);
      return;
    }
    // Only bodies that mention the forbidden names (possibly \u-escaped) need the full scan.
    if (!text.includes('__proto__') && !text.includes('constructor') && !text.includes('\\u')) {
      done(null, parsed);
      return;
    }
    try {
      secureJsonParse.scan(parsed as Record<string, unknown>, { protoAction: 'error', constructorAction: 'error' });
    } catch {
      done(new AppError('INVALID_JSON', 'Request body contains a forbidden property (__proto__ or constructor.prototype)'), undefined);
      return;
    }
    done(null, parsed);
  });
}
