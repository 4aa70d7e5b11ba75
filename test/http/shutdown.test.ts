import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { installGracefulShutdown } from '../../src/platform/shutdown.js';
import { createTestApp } from '../helpers/app.js';

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('graceful shutdown (OPS-7)', () => {
  it('stops accepting, lets the in-flight request finish, closes the database, then exits 0', async () => {
    let release!: () => void;
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const testApp = await createTestApp({
      beforeReady: (app) => {
        app.get('/test/slow', async () => {
          entered();
          await new Promise<void>((resolve) => (release = resolve));
          return { finished: true };
        });
      },
    });
    const { app, deps } = testApp;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as net.AddressInfo).port;
    const exits: number[] = [];
    const shutdown = installGracefulShutdown(app, {
      timeoutMs: 10_000,
      logger: deps.logger,
      exit: (code) => exits.push(code),
      signals: [],
    });

    const inFlight = fetch(`http://127.0.0.1:${port}/test/slow`);
    await inside;
    const closing = shutdown('test');

    await expect.poll(() => connectionRefused(port)).toBe(true);
    expect(exits).toEqual([]);

    release();
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ finished: true });
    await closing;
    expect(exits).toEqual([0]);
    await expect(deps.database.query('SELECT 1')).rejects.toThrow();
    // A second signal while closing does not start a second shutdown.
    await shutdown('again');
    expect(exits).toEqual([0]);
  });

  it('gives up and exits 1 when in-flight work outlasts the timeout', async () => {
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const testApp = await createTestApp({
      beforeReady: (app) => {
        app.get('/test/stuck', () => {
          entered();
          return new Promise(() => undefined);
        });
      },
    });
    const { app, deps } = testApp;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as net.AddressInfo).port;
    const exits: number[] = [];
    const shutdown = installGracefulShutdown(app, { timeoutMs: 300, logger: deps.logger, exit: (code) => exits.push(code), signals: [] });
    const controller = new AbortController();
    const stuck = fetch(`http://127.0.0.1:${port}/test/stuck`, { signal: controller.signal }).catch(() => undefined);
    await inside;
    void shutdown('test');
    await expect.poll(() => exits, { timeout: 5_000 }).toEqual([1]);
    controller.abort();
    await stuck;
    app.server.closeAllConnections();
  });
});
