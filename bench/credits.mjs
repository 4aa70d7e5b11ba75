// `npm run bench` (after bench/run.mjs), or `node bench/credits.mjs` alone: credit reservations
// under load (issue 5). Starts the real Bulwark server (dist/server.js) on a fresh PostgreSQL
// database and measures, in alternating rounds:
//
//   reference  pgbench: the single-row UPDATE ceiling of the same PostgreSQL (one hot row,
//              autocommit, 32 clients), in transactions/s;
//   hot        reserve+confirm pairs/s on ONE account at 32 connections (every reserve takes the
//              same grant row's lock);
//   many       reserve+confirm pairs/s spread over 1,000 accounts at 32 connections.
//
// Writes its section into bench/RESULTS.md between the credits markers (replacing an earlier
// one, or appending it), so that the rest of the file (bench/run.mjs) stays as it is.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { bulwarkServer } from './lib/child.mjs';
import { processCpuSeconds } from './lib/cpu.mjs';
import { freePort, httpRequest } from './lib/net.mjs';
import { createScratchDatabase, dropScratchDatabase } from './lib/postgres.mjs';
import { loadSettings } from './lib/settings.mjs';
import { fmt, writeMarkedSection } from './lib/marked-section.mjs';
import { median } from './lib/stats.mjs';

const run = promisify(execFile);
const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROJECT_DIR = path.resolve(BENCH_DIR, '..');
const RESULTS_FILE = path.join(BENCH_DIR, process.env.BENCH_ONLY ? 'RESULTS.partial.md' : 'RESULTS.md');
const START_MARK = '<!-- credits benchmark: start (bench/credits.mjs) -->';
const END_MARK = '<!-- credits benchmark: end -->';

const CONNECTIONS = 32;
const ACCOUNTS = 1_000;
const HOT_TARGET_RATIO = 0.3;
const MANY_TARGET_PAIRS = 2_000;

const settings = loadSettings();
const secrets = new Set();
const redact = (text) => [...secrets].reduce((result, secret) => result.split(secret).join('[redacted]'), String(text));
const log = (message) => process.stdout.write(redact(`[bench:credits] ${message}\n`));

async function admin(server, token, method, route, payload, expected) {
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  const response = await httpRequest({
    host: server.host,
    port: server.port,
    method,
    path: route,
    headers: { host: '127.0.0.1', authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) },
    body,
    timeoutMs: 15_000,
  });
  if (response.status !== expected) throw new Error(`setup: ${method} ${route} answered ${response.status}, expected ${expected}`);
  return JSON.parse(response.body);
}

/** An ENTERPRISE account (no per-plan machine limit) with `credits` and an API key. */
async function fundedAccount(server, token, credits) {
  const { account } = await admin(server, token, 'POST', '/api/admin/accounts', { name: 'bench credits', plan: 'ENTERPRISE' }, 201);
  await admin(server, token, 'POST', `/api/admin/accounts/${account.id}/credits`, { amount: credits, source: 'admin' }, 201);
  const { secret } = await admin(server, token, 'POST', `/api/admin/accounts/${account.id}/keys`, { label: 'bench' }, 201);
  secrets.add(secret);
  return { accountId: account.id, apiKey: secret };
}

async function inBatches(count, width, make) {
  const made = [];
  for (let start = 0; start < count; start += width) {
    made.push(...(await Promise.all(Array.from({ length: Math.min(width, count - start) }, () => make()))));
  }
  return made;
}

let keyCounter = 0;
const keyPrefix = randomBytes(6).toString('hex');

/** autocannon over reserve (fresh idempotency key) then confirm of that reservation, per connection. */
function pairs(server, accounts) {
  return new Promise((resolve, reject) => {
    let confirmed = 0;
    let failedPairs = 0;
    const instance = autocannon(
      {
        url: `http://${server.host}:${server.port}`,
        connections: CONNECTIONS,
        duration: settings.durationSeconds,
        timeout: 10,
        headers: { host: '127.0.0.1', 'content-type': 'application/json' },
        requests: [
          {
            method: 'POST',
            path: '/api/credits/reservations',
            setupRequest: (request, context) => {
              const account = accounts[Math.floor(Math.random() * accounts.length)];
              context.apiKey = account.apiKey;
              keyCounter += 1;
              const key = `${keyPrefix}-${keyCounter}`;
              return { ...request, headers: { ...request.headers, 'x-api-key': account.apiKey }, body: JSON.stringify({ jobId: key, jobType: 'bench', amount: 1, idempotencyKey: key }) };
            },
            onResponse: (status, body, context) => {
              context.reservationId = status === 201 ? JSON.parse(body).reservation.id : undefined;
              if (status !== 201) failedPairs += 1;
            },
          },
          {
            method: 'POST',
            setupRequest: (request, context) => ({
              ...request,
              path: `/api/credits/reservations/${context.reservationId ?? 'res_missing'}/confirm`,
              headers: { host: '127.0.0.1', 'x-api-key': context.apiKey },
              body: undefined,
            }),
            onResponse: (status) => {
              if (status === 200) confirmed += 1;
              else failedPairs += 1;
            },
          },
        ],
      },
      (error, result) => {
        if (error) reject(error);
        else resolve({ pairsPerSecond: confirmed / result.duration, confirmed, failedPairs, errors: result.errors, timeouts: result.timeouts, p99Ms: result.latency.p99, requests: result.requests.total });
      },
    );
    instance.on('error', reject);
  });
}

async function pgbenchCeiling(databaseUrl, scriptPath) {
  const { stdout } = await run('pgbench', ['-n', '-c', String(CONNECTIONS), '-j', '2', '-T', String(settings.durationSeconds), '-f', scriptPath, databaseUrl], { maxBuffer: 1 << 20 });
  const match = /tps = ([0-9.]+) \(without initial connection time\)/.exec(stdout);
  if (!match) throw new Error(`could not read pgbench's tps from:\n${stdout}`);
  return Number(match[1]);
}


async function main() {
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((id) => id.trim()).filter(Boolean);
  if (only.length > 0 && !only.includes('credits')) {
    log('BENCH_ONLY does not name credits; skipped');
    return;
  }
  const database = await createScratchDatabase(settings.postgresAdminUrl);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bulwark-bench-credits-'));
  const adminToken = randomBytes(32).toString('hex');
  secrets.add(adminToken);
  const port = await freePort(settings.host);
  const server = bulwarkServer({
    projectDir: PROJECT_DIR,
    settings,
    port,
    dataDir,
    databaseUrl: database.url,
    adminToken,
    // Setup creates 1,001 accounts through the operator API (3 requests each).
    rateLimits: JSON.stringify({ 'admin.ip': { limit: 1_000_000, windowSeconds: 3600 } }),
  });
  const rounds = [];
  let machineLoad;
  try {
    await server.waitUntilReady({ path: '/health', timeoutMs: settings.startupTimeoutMs });
    log(`Bulwark ready on port ${port}; setting up 1 hot account and ${ACCOUNTS} accounts`);
    const hot = [await fundedAccount(server, adminToken, 1_000_000)];
    const many = await inBatches(ACCOUNTS, 16, () => fundedAccount(server, adminToken, 100_000));
    // The pgbench reference table lives in the same database.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query('CREATE TABLE bench_hot_row (id int PRIMARY KEY, value bigint NOT NULL); INSERT INTO bench_hot_row VALUES (1, 0)');
    await client.end();
    const scriptPath = path.join(dataDir, 'hot-row.sql');
    await writeFile(scriptPath, 'UPDATE bench_hot_row SET value = value + 1 WHERE id = 1;\n');
    // Warm-up of both: the first request of each account's key verifies it in the database
    // and loads the account's snapshot; the measured rounds see the steady state of a
    // service whose accounts are active.
    log('warm-up');
    await pairs(server, hot);
    await pairs(server, many);
    machineLoad = os.loadavg();
    for (let round = 1; round <= settings.rounds; round += 1) {
      const ceiling = await pgbenchCeiling(database.url, scriptPath);
      const cpuBefore = await processCpuSeconds(server.pid);
      const hotRun = await pairs(server, hot);
      const cpuAfter = await processCpuSeconds(server.pid);
      const manyRun = await pairs(server, many);
      rounds.push({ round, ceiling, hot: hotRun, many: manyRun, hotCpuUsPerPair: cpuBefore !== undefined && cpuAfter !== undefined ? ((cpuAfter - cpuBefore) * 1e6) / Math.max(1, hotRun.confirmed) : undefined });
      log(`round ${round}: pgbench ${fmt(ceiling)} tps; hot ${fmt(hotRun.pairsPerSecond)} pairs/s (${fmt(hotRun.pairsPerSecond / ceiling, 2)}x); many ${fmt(manyRun.pairsPerSecond)} pairs/s`);
    }
  } finally {
    await server.stop(settings.stopGraceMs).catch(() => undefined);
    await dropScratchDatabase(settings.postgresAdminUrl, database.name).catch((error) => log(`drop failed: ${error.message}`));
    await rm(dataDir, { recursive: true, force: true });
  }

  const invalid = rounds.filter((entry) => entry.hot.failedPairs + entry.many.failedPairs + entry.hot.errors + entry.many.errors > 0);
  if (invalid.length > 0) throw new Error(`invalid rounds (a reserve or confirm did not answer 201/200): ${invalid.map((entry) => entry.round).join(', ')}`);
  const ceiling = median(rounds.map((entry) => entry.ceiling));
  const hotPairs = median(rounds.map((entry) => entry.hot.pairsPerSecond));
  const manyPairs = median(rounds.map((entry) => entry.many.pairsPerSecond));
  const hotRatio = median(rounds.map((entry) => entry.hot.pairsPerSecond / entry.ceiling));
  const section = [
    START_MARK,
    '## Credits: reserve + confirm pairs (bench/credits.mjs)',
    '',
    `Started ${new Date().toISOString()} on ${os.cpus()[0]?.model?.trim() ?? 'unknown'} x ${os.cpus().length}, Node ${process.version}, load average at start ${machineLoad?.map((v) => v.toFixed(2)).join(' / ') ?? 'n/a'}. ` +
      `${settings.rounds} rounds of ${settings.durationSeconds} s, alternating: pgbench reference, hot account, 1,000 accounts. ${CONNECTIONS} connections (pgbench clients) everywhere.`,
    '',
    `- **Hot account: ${fmt(hotPairs)} pairs/s = ${fmt(hotRatio, 2)}x the single-row UPDATE ceiling of ${fmt(ceiling)} tps (target >= ${HOT_TARGET_RATIO}x)** - ${hotRatio >= HOT_TARGET_RATIO ? 'meets the target' : 'BELOW the target'}`,
    `- **1,000 accounts: ${fmt(manyPairs)} pairs/s (target >= ${fmt(MANY_TARGET_PAIRS)})** - ${manyPairs >= MANY_TARGET_PAIRS ? 'meets the target' : 'BELOW the target'}`,
    '',
    '| Round | pgbench single-row UPDATE (tps) | hot account pairs/s | ratio | hot p99 (ms) | hot server CPU per pair (us) | 1,000 accounts pairs/s | p99 (ms) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rounds.map(
      (entry) =>
        `| ${entry.round} | ${fmt(entry.ceiling)} | ${fmt(entry.hot.pairsPerSecond)} | ${fmt(entry.hot.pairsPerSecond / entry.ceiling, 2)} | ${entry.hot.p99Ms} | ${entry.hotCpuUsPerPair === undefined ? 'n/a' : fmt(entry.hotCpuUsPerPair)} | ${fmt(entry.many.pairsPerSecond)} | ${entry.many.p99Ms} |`,
    ),
    `| **median** | **${fmt(ceiling)}** | **${fmt(hotPairs)}** | **${fmt(hotRatio, 2)}** | | | **${fmt(manyPairs)}** | |`,
    '',
    'A pair is POST /api/credits/reservations `{jobId, jobType:"bench", amount:1, idempotencyKey}` (a fresh key each time) answered 201, then ' +
      'POST /api/credits/reservations/:id/confirm answered 200, on one keep-alive connection, with `X-API-Key`. Pairs/s counts confirmations. ' +
      'A round is invalid (and nothing is written) if any reserve or confirm answers anything else. Before round 1 both the hot and the 1,000-account load run once unmeasured (warm-up: key verification and account caches filled).',
    'The reference is `pgbench -n -c 32 -j 2 -T <duration> -f hot-row.sql` on the same database, where hot-row.sql is `UPDATE bench_hot_row SET value = value + 1 WHERE id = 1;` (one row, autocommit): ' +
      'the rate at which this PostgreSQL can commit updates to one row, the bound for any design that keeps one balance row exact. The ratio is hot pairs/s over that, per round.',
    'Setup through the operator API: ENTERPRISE accounts (no per-plan machine limit), one with 1,000,000 credits (hot) and 1,000 with 100,000 each, each with an API key. Bulwark runs as in the other benchmarks (bench/systems.mjs bulwarkEnv: LOG_LEVEL=warn, JOBS_ENABLED=false, no Stripe sandbox, default pool of 10) with the operator limit raised for the setup.',
    END_MARK,
  ].join('\n');
  await writeMarkedSection({ file: RESULTS_FILE, startMark: START_MARK, endMark: END_MARK, section, secrets });
  log(`hot ${fmt(hotPairs)} pairs/s = ${fmt(hotRatio, 2)}x ceiling ${fmt(ceiling)} tps; many ${fmt(manyPairs)} pairs/s. Wrote ${path.relative(PROJECT_DIR, RESULTS_FILE)}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(redact(`[bench:credits] FAILED: ${error.stack ?? error}\n`));
    process.exit(1);
  },
);
