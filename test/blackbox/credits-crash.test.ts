import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { createScratchDatabase, describeWithPostgres, openPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * CRD-6 against a real crash: the process that took the holds dies by SIGKILL, some of
 * its reserves still in flight. Another instance's sweeper must return every held credit
 * after the TTL, and the ledger must show no credit lost or created.
 */
describeWithPostgres('a process killed between reserve and confirm (CRD-6)', () => {
  let scratch: ScratchDatabase;
  let dataDir: string;
  const processes: ServerProcess[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-crash-'));
  });
  afterAll(async () => {
    for (const server of processes) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    await Promise.all(processes.map((server) => server.exited));
    await scratch.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function startInstance(jobs: boolean): Promise<ServerProcess> {
    const server = await startServerProcess({
      cwd: dataDir,
      entry: 'source',
      env: {
        DATA_DIR: dataDir, // shared: both instances use the same generated secrets (admin token, key pepper)
        DATABASE_URL: scratch.url,
        PORT: '0',
        JOBS_ENABLED: String(jobs),
        CREDIT_RESERVATION_TTL_SECONDS: '3',
        CREDIT_SWEEP_INTERVAL_SECONDS: '1',
        STRIPE_SANDBOX_START: 'false', // no Stripe here: two instances must not compete for the sandbox's port
      },
    });
    processes.push(server);
    return server;
  }

  it('the sweeper of the surviving instance returns every held credit after the TTL; nothing is lost or created', async () => {
    const first = await startInstance(false);
    const adminToken = (JSON.parse(readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')) as { adminApiToken: string }).adminApiToken;
    const admin = async (method: string, route: string, body: unknown) => {
      const response = await fetch(`${first.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status, `${method} ${route}`).toBeLessThan(300);
      return (await response.json()) as unknown;
    };
    const created = (await admin('POST', '/api/admin/accounts', { name: 'crash test' })) as { account: { id: string } };
    const accountId = created.account.id;
    await admin('POST', `/api/admin/accounts/${accountId}/credits`, { amount: 100, source: 'admin' });
    const issued = (await admin('POST', `/api/admin/accounts/${accountId}/keys`, { label: 'worker' })) as { secret: string };

    const reserve = (base: string, key: string) =>
      fetch(`${base}/api/credits/reservations`, {
        method: 'POST',
        headers: { 'x-api-key': issued.secret, 'content-type': 'application/json' },
        body: JSON.stringify({ jobId: key, jobType: 'render', amount: 5, idempotencyKey: key }),
      });
    const credits = async (base: string) =>
      (await (await fetch(`${base}/api/credits`, { headers: { 'x-api-key': issued.secret } })).json()) as { balance: number; held: number };

    // Ten jobs hold their credits and are never confirmed...
    const held = await Promise.all(Array.from({ length: 10 }, (_, index) => reserve(first.url, `held-${index}`)));
    expect(held.map((response) => response.status)).toEqual(Array(10).fill(201));
    const heldIds = await Promise.all(held.map(async (response) => ((await response.json()) as { reservation: { id: string } }).reservation.id));
    expect(await credits(first.url)).toMatchObject({ balance: 50, held: 50 });

    // ...and the process dies with more reserves in flight: killed as soon as the first of them is answered.
    const inFlight = Array.from({ length: 20 }, (_, index) => reserve(first.url, `flight-${index}`).then((r) => r.status, () => 'killed'));
    await Promise.race(inFlight);
    first.child.kill('SIGKILL');
    const outcomes = await Promise.all(inFlight);
    expect(await first.exited).toBe(null);
    expect(outcomes.every((outcome) => outcome === 201 || outcome === 402 || outcome === 'killed')).toBe(true);
    expect(outcomes).toContain(201);

    // The other instance's sweeper, after the TTL, returns every hold: the committed ones of both groups.
    const second = await startInstance(true);
    const deadline = Date.now() + 30_000;
    let now = await credits(second.url);
    while (now.held !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      now = await credits(second.url);
    }
    expect(now).toMatchObject({ balance: 100, held: 0 });

    // A late confirm of a swept reservation is refused: nothing can be spent after the release.
    const late = await fetch(`${second.url}/api/credits/reservations/${heldIds[0] ?? ''}/confirm`, {
      method: 'POST',
      headers: { 'x-api-key': issued.secret },
    });
    expect(late.status).toBe(409);

    const owner = openPostgres(scratch.url);
    try {
      const { rows } = await owner.query<{ status: string; count: number }>(
        `SELECT status, count(*)::int AS count FROM credit_reservations WHERE account_id = $1 GROUP BY status`,
        [accountId],
      );
      // Every reservation that was ever committed ended released: none held, none confirmed.
      expect(rows.map((row) => row.status)).toEqual(['released']);
      expect(rows[0]?.count).toBeGreaterThanOrEqual(10);
      const verification = await verifyCreditLedger(owner);
      expect(verification).toMatchObject({ valid: true, mismatches: [] });
    } finally {
      await owner.close();
    }
  }, 90_000);
});
