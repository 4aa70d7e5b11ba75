import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestApp, type TestApp } from '../../test/helpers/app.js';

/**
 * What the proxy does with the next request:
 * - `pass`: forwards it and returns the answer;
 * - `lose-answer`: forwards it (the service does the work) and then cuts the connection
 *   instead of answering, as a load balancer or a network blip would;
 * - `unavailable`: answers 503 without forwarding (a restarting upstream);
 * - `refuse`: cuts the connection without forwarding.
 */
export type ProxyAction = 'pass' | 'lose-answer' | 'unavailable' | 'refuse';

/**
 * A real HTTP proxy in front of the real service, which misbehaves on request: the
 * client's retries are tested over real sockets against the real server, with nothing
 * of either replaced.
 */
export class FlakyProxy {
  private readonly queue: ProxyAction[] = [];
  /** `METHOD /path` of every request that reached the proxy, in order. */
  readonly seen: string[] = [];
  private server: http.Server | undefined;
  url = '';

  constructor(private readonly target: string) {}

  /** The actions for the next requests, in order; afterwards requests pass. */
  next(...actions: ProxyAction[]): void {
    this.queue.push(...actions);
  }

  /** How many requests for `METHOD /path` arrived (query strings ignored). */
  count(request: string): number {
    return this.seen.filter((entry) => entry === request).length;
  }

  async start(): Promise<void> {
    this.server = http.createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const action = this.queue.shift() ?? 'pass';
    this.seen.push(`${request.method} ${(request.url ?? '').split('?')[0]}`);
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (action === 'refuse') {
      request.socket.destroy();
      return;
    }
    if (action === 'unavailable') {
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      response.end(JSON.stringify({ error: { code: 'SERVICE_UNAVAILABLE', message: 'Service temporarily unavailable', requestId: 'req_proxy_503' } }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name)) headers[name] = value;
    }
    const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
    const upstream = await fetch(`${this.target}${request.url ?? '/'}`, { method: request.method ?? 'GET', headers, ...(body ? { body } : {}) });
    const answer = Buffer.from(await upstream.arrayBuffer());
    if (action === 'lose-answer') {
      request.socket.destroy();
      return;
    }
    const responseHeaders: Record<string, string> = {};
    upstream.headers.forEach((value, name) => {
      if (!['content-length', 'connection', 'keep-alive', 'transfer-encoding', 'content-encoding'].includes(name)) responseHeaders[name] = value;
    });
    response.writeHead(upstream.status, responseHeaders);
    response.end(answer);
  }
}

/** The real app listening on an ephemeral port, as `npm start` serves it. */
export interface RunningService {
  readonly testApp: TestApp;
  readonly url: string;
  readonly admin: { authorization: string };
  close(): Promise<void>;
}

export async function startService(env: Record<string, string> = {}): Promise<RunningService> {
  const testApp = await createTestApp({ env: { RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }), ...env } });
  await testApp.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = testApp.app.server.address() as AddressInfo;
  return {
    testApp,
    url: `http://127.0.0.1:${port}`,
    admin: { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` },
    close: () => testApp.close(),
  };
}

/** A new account with an API key (and optionally credits), made through the operator API over HTTP. */
export async function accountWithKey(service: RunningService, options: { plan?: string; credits?: number } = {}): Promise<{ accountId: string; apiKey: string }> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${service.url}${path}`, {
      method: 'POST',
      headers: { ...service.admin, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as unknown;
  };
  const created = (await post('/api/admin/accounts', options.plan ? { plan: options.plan } : {})) as { account: { id: string } };
  const accountId = created.account.id;
  const issued = (await post(`/api/admin/accounts/${accountId}/keys`, {})) as { secret: string };
  if (options.credits) await post(`/api/admin/accounts/${accountId}/credits`, { amount: options.credits, source: 'admin' });
  return { accountId, apiKey: issued.secret };
}
