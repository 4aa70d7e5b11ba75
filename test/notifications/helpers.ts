import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { NotificationRequest } from '../../src/modules/notifications/notifier.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { TestApp } from '../helpers/app.js';

export const NOTIFY_LIMITS = JSON.stringify({
  'admin.ip': { limit: 10_000, windowSeconds: 3600 },
  'login.ip': { limit: 1_000, windowSeconds: 60 },
  'password_reset.ip': { limit: 1_000, windowSeconds: 3600 },
});

export interface ReceivedWebhook {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/**
 * A real HTTP receiver for outgoing webhooks: answers each request with the next status of
 * `statuses` (the last one repeats) and keeps what it received.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private server: http.Server | undefined;
  statuses: number[];

  constructor(statuses: number[] = [200]) {
    this.statuses = statuses;
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}/hooks`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        const status = this.statuses.length > 1 ? this.statuses.shift()! : (this.statuses[0] ?? 200);
        response.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return this;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

/** A port nothing listens on (yet). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The smallest SMTP server that accepts mail (no TLS, no auth): enough for nodemailer over smtp://. */
export class TinySmtpServer {
  readonly messages: { from: string; to: string[]; data: string }[] = [];
  private readonly server = net.createServer((socket) => {
    let buffer = '';
    let inData = false;
    let current = { from: '', to: [] as string[], data: '' };
    socket.setEncoding('utf8');
    socket.write('220 tiny ESMTP\r\n');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end === -1) return;
          current.data = buffer.slice(0, end).replace(/^\.\./gm, '.');
          buffer = buffer.slice(end + 5);
          inData = false;
          this.messages.push(current);
          current = { from: '', to: [], data: '' };
          socket.write('250 OK queued\r\n');
          continue;
        }
        const newline = buffer.indexOf('\r\n');
        if (newline === -1) return;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') {
          socket.write('250 tiny\r\n');
        } else if (verb === 'MAIL') {
          current.from = line;
          socket.write('250 OK\r\n');
        } else if (verb === 'RCPT') {
          current.to.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          socket.write('250 OK\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          socket.end('221 bye\r\n');
        } else {
          socket.write('250 OK\r\n');
        }
      }
    });
    socket.on('error', () => undefined);
  });

  async listen(port: number): Promise<void> {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export function adminHeaders(testApp: TestApp): Record<string, string> {
  return { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
}

/** Creates a webhook endpoint through the admin route; answers its id and secret. */
export async function createEndpoint(testApp: TestApp, body: Record<string, unknown>): Promise<{ id: string; secret: string }> {
  const response = await testApp.app.inject({ method: 'POST', url: '/api/admin/webhook-endpoints', headers: adminHeaders(testApp), payload: body });
  if (response.statusCode !== 201) throw new Error(`endpoint creation answered ${response.statusCode}: ${response.body}`);
  const json = response.json() as { endpoint: { id: string }; secret: string };
  return { id: json.endpoint.id, secret: json.secret };
}

/** Emits in a transaction of its own (as a change would in its own), committed. */
export function emitCommitted(testApp: TestApp, request: NotificationRequest): Promise<string> {
  return asSystem(testApp.deps.database, (tx) => testApp.deps.notifier.emit(tx, request));
}

export interface DeliveryRow {
  id: string;
  status: string;
  attempts: number;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  last_error: string | null;
  last_response_status: number | null;
  recipient: string | null;
  channel: string;
}

export async function deliveriesOf(testApp: TestApp, notificationId: string): Promise<DeliveryRow[]> {
  const { rows } = await asSystem(testApp.deps.database, (tx) =>
    tx.query<DeliveryRow>('SELECT * FROM notification_deliveries WHERE notification_id = $1 ORDER BY channel, id', [notificationId]),
  );
  return rows;
}
