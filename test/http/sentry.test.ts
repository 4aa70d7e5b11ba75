import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * OPS-3: with SENTRY_DSN set, unexpected errors reach Sentry, carrying the request id
 * and route but no credentials or personal data. The DSN points at a local HTTP server
 * standing in for Sentry's ingestion endpoint.
 */
describe('error tracking with SENTRY_DSN', () => {
  const envelopes: string[] = [];
  let ingest: http.Server;
  let testApp: TestApp;

  beforeAll(async () => {
    ingest = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks);
        envelopes.push((request.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8'));
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => ingest.listen(0, '127.0.0.1', resolve));
    const port = (ingest.address() as AddressInfo).port;
    testApp = await createTestApp({
      env: { SENTRY_DSN: `http://publickey@127.0.0.1:${port}/42` },
      beforeReady: (app) => {
        app.post('/test/explode', async () => {
          throw new Error('ledger invariant broken in reservation handler');
        });
      },
    });
  });

  afterAll(async () => {
    await testApp.close();
    await new Promise((resolve) => ingest.close(resolve));
  });

  it('sends a 5xx error with its request id and route, and nothing from the request', async () => {
    const response = await testApp.app.inject({
      method: 'POST',
      url: '/test/explode?email=person%40example.com',
      headers: { authorization: 'Bearer super-secret-token', cookie: 'access_token=abc123', 'x-api-key': 'cust_a_b' },
      payload: { password: 'hunter2hunter2' },
    });
    expect(response.statusCode).toBe(500);
    const requestId = response.json().error.requestId as string;
    await testApp.deps.errorReporter.flush(5_000);
    const sent = envelopes.join('\n');
    expect(sent).toContain('ledger invariant broken in reservation handler');
    expect(sent).toContain(requestId);
    expect(sent).toContain('/test/explode');
    for (const secret of ['super-secret-token', 'abc123', 'cust_a_b', 'hunter2hunter2', 'person@example.com', 'person%40example.com']) {
      expect(sent).not.toContain(secret);
    }
  });

  it('does not send expected 4xx refusals', async () => {
    const before = envelopes.length;
    const response = await testApp.app.inject({ method: 'GET', url: '/no/such/route' });
    expect(response.statusCode).toBe(404);
    await testApp.deps.errorReporter.flush(2_000);
    expect(envelopes.length).toBe(before);
  });
});
