// `node bench/webhooks.mjs` (after `npm run build`): the Stripe webhook intake under load
// (issue 7). Starts the real Bulwark server (dist/server.js) on a fresh PostgreSQL database,
// with its in-process Stripe sandbox, and measures, in alternating rounds, signed deliveries
// to POST /api/webhooks/stripe:
//
//   distinct   every request a new event id of a type nothing handles (customer.updated):
//              verification, the inbox look-up, the claim and the committed `ignored` row;
//   handled    every request a new event id of charge.succeeded for one real sandbox charge
//              of an account's customer: the same plus the re-fetch of the charge from the
//              sandbox (one Stripe round trip), the payment's lock and update;
//   duplicate  the same already-processed event again and again: verification and one look-up.
//
// Writes its section into bench/RESULTS.md between the webhooks markers (replacing an
// earlier one, or appending it); with BENCH_ONLY set, into bench/RESULTS.partial.md.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { bulwarkServer } from './lib/child.mjs';
import { freePort, httpRequest } from './lib/net.mjs';
import { createScratchDatabase, dropScratchDatabase } from './lib/postgres.mjs';
import { loadSettings } from './lib/settings.mjs';
import { fmt, writeMarkedSection } from './lib/marked-section.mjs';
import { median } from './lib/stats.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROJECT_DIR = path.resolve(BENCH_DIR, '..');
const RESULTS_FILE = path.join(BENCH_DIR, process.env.BENCH_ONLY ? 'RESULTS.partial.md' : 'RESULTS.md');
const START_MARK = '<!-- webhooks benchmark: start (bench/webhooks.mjs) -->';
const END_MARK = '<!-- webhooks benchmark: end -->';
const CONNECTIONS = 32;

const settings = loadSettings();
const secrets = new Set();
const redact = (text) => [...secrets].reduce((result, secret) => result.split(secret).join('[redacted]'), String(text));
const log = (message) => process.stdout.write(redact(`[bench:webhooks] ${message}\n`));

/** Stripe's signature header for `payload` (HMAC-SHA256 of "t.payload"), timestamp in seconds. */
function sign(payload, secret) {
  const timestamp = Math.floor(Date.now() / 1000);
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${payload}`, 'utf8').digest('hex')}`;
}

let counter = 0;
const runId = randomBytes(6).toString('hex');
const nextEventId = () => `evt_bench${runId}${(counter += 1)}`;

function event(id, type, object) {
  return JSON.stringify({ id, object: 'event', api_version: '2026-10-28.endive', created: Math.floor(Date.now() / 1000), data: { object }, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, type });
}

async function call(server, { method, route, headers = {}, body, expected }) {
  const response = await httpRequest({ host: server.host, port: server.port, method, path: route, headers: { host: '127.0.0.1', ...headers }, body, timeoutMs: 15_000 });
  if (expected !== undefined && response.status !== expected) throw new Error(`setup: ${method} ${route} answered ${response.status}, expected ${expected}: ${response.body.slice(0, 200)}`);
  return response.body ? JSON.parse(response.body) : undefined;
}

/** autocannon over the webhook route; `payloadOf()` gives each request's body. Counts answers by outcome. */
function deliveries(server, secret, payloadOf, expectedOutcome) {
  return new Promise((resolve, reject) => {
    let expected = 0;
    let unexpected = 0;
    const instance = autocannon(
      {
        url: `http://${server.host}:${server.port}`,
        connections: CONNECTIONS,
        duration: settings.durationSeconds,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            path: '/api/webhooks/stripe',
            setupRequest: (request) => {
              const body = payloadOf();
              return { ...request, body, headers: { host: '127.0.0.1', 'content-type': 'application/json; charset=utf-8', 'stripe-signature': sign(body, secret) } };
            },
            onResponse: (status, body) => {
              if (status === 200 && JSON.parse(body).outcome === expectedOutcome) expected += 1;
              else unexpected += 1;
            },
          },
        ],
      },
      (error, result) => {
        if (error) reject(error);
        else resolve({ perSecond: expected / result.duration, expected, unexpected, errors: result.errors, timeouts: result.timeouts, p99Ms: result.latency.p99 });
      },
    );
    instance.on('error', reject);
  });
}


async function main() {
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((id) => id.trim()).filter(Boolean);
  if (only.length > 0 && !only.includes('webhooks')) {
    log('BENCH_ONLY does not name webhooks; skipped');
    return;
  }
  const database = await createScratchDatabase(settings.postgresAdminUrl);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bulwark-bench-webhooks-'));
  const adminToken = randomBytes(32).toString('hex');
  const webhookSecret = ['whsec', randomBytes(24).toString('hex')].join('_');
  secrets.add(adminToken);
  secrets.add(webhookSecret);
  const port = await freePort(settings.host);
  const sandboxPort = await freePort(settings.host);
  const sandboxKey = ['sk', 'test', 'bench'].join('_');
  const server = bulwarkServer({
    projectDir: PROJECT_DIR,
    settings,
    port,
    dataDir,
    databaseUrl: database.url,
    adminToken,
    env: {
      STRIPE_WEBHOOK_SECRET: webhookSecret,
      STRIPE_SANDBOX_START: 'true',
      STRIPE_SANDBOX_PORT: String(sandboxPort),
      // The sandbox's own deliveries go nowhere: the benchmark sends every delivery itself.
      STRIPE_SANDBOX_WEBHOOK_URL: 'http://127.0.0.1:9/nowhere',
      RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000_000, windowSeconds: 3600 }, 'webhooks.ip': { limit: 1_000_000, windowSeconds: 60 } }),
    },
  });
  const rounds = [];
  let machineLoad;
  try {
    await server.waitUntilReady({ path: '/health', timeoutMs: settings.startupTimeoutMs });
    log(`Bulwark ready on port ${port}; setting up an account with a paid sandbox charge`);
    const sandbox = { host: settings.host, port: sandboxPort };
    const stripeForm = (route, form) =>
      call(sandbox, { method: 'POST', route, headers: { authorization: `Bearer ${sandboxKey}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString(), expected: 200 });
    const customer = await stripeForm('/v1/customers', { email: 'bench@example.com' });
    const price = await stripeForm('/v1/prices', { unit_amount: '1000', currency: 'usd', 'product_data[name]': 'bench pack' });
    const session = await stripeForm('/v1/checkout/sessions', { mode: 'payment', customer: customer.id, 'line_items[0][price]': price.id, success_url: 'http://localhost/ok' });
    const paid = await call(sandbox, { method: 'POST', route: `/_sandbox/checkout/${session.id}/pay`, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card: '4242424242424242' }), expected: 200 });
    const intent = await call(sandbox, { method: 'GET', route: `/v1/payment_intents/${paid.paymentIntent.id}`, headers: { authorization: `Bearer ${sandboxKey}` }, expected: 200 });
    const { account } = await call(server, {
      method: 'POST',
      route: '/api/admin/accounts',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bench webhooks' }),
      expected: 201,
    });
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query('UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1', [account.id, customer.id]);
    await client.end();
    const charge = { id: intent.latest_charge, object: 'charge', customer: customer.id };
    const duplicate = event(nextEventId(), 'customer.updated', { id: customer.id, object: 'customer' });
    await call(server, { method: 'POST', route: '/api/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': sign(duplicate, webhookSecret) }, body: duplicate, expected: 200 });

    const distinctPayload = () => event(nextEventId(), 'customer.updated', { id: 'cus_bench_unknown', object: 'customer' });
    const handledPayload = () => event(nextEventId(), 'charge.succeeded', charge);
    log('warm-up');
    await deliveries(server, webhookSecret, distinctPayload, 'ignored');
    machineLoad = os.loadavg();
    for (let round = 1; round <= settings.rounds; round += 1) {
      const distinct = await deliveries(server, webhookSecret, distinctPayload, 'ignored');
      const handled = await deliveries(server, webhookSecret, handledPayload, 'processed');
      const duplicates = await deliveries(server, webhookSecret, () => duplicate, 'duplicate');
      rounds.push({ round, distinct, handled, duplicates });
      log(`round ${round}: distinct ${fmt(distinct.perSecond)}/s, handled ${fmt(handled.perSecond)}/s, duplicates ${fmt(duplicates.perSecond)}/s`);
    }
  } finally {
    await server.stop(settings.stopGraceMs).catch(() => undefined);
    await dropScratchDatabase(settings.postgresAdminUrl, database.name).catch((error) => log(`drop failed: ${error.message}`));
    await rm(dataDir, { recursive: true, force: true });
  }

  const invalid = rounds.filter((entry) => ['distinct', 'handled', 'duplicates'].some((kind) => entry[kind].unexpected + entry[kind].errors + entry[kind].timeouts > 0));
  if (invalid.length > 0) throw new Error(`invalid rounds (an answer was not 200 with the expected outcome): ${invalid.map((entry) => entry.round).join(', ')}`);
  const distinct = median(rounds.map((entry) => entry.distinct.perSecond));
  const handled = median(rounds.map((entry) => entry.handled.perSecond));
  const duplicates = median(rounds.map((entry) => entry.duplicates.perSecond));
  const section = [
    START_MARK,
    '## Stripe webhooks: signed deliveries per second (bench/webhooks.mjs)',
    '',
    `Started ${new Date().toISOString()} on ${os.cpus()[0]?.model?.trim() ?? 'unknown'} x ${os.cpus().length}, Node ${process.version}, load average at start ${machineLoad?.map((v) => v.toFixed(2)).join(' / ') ?? 'n/a'}. ` +
      `${settings.rounds} rounds of ${settings.durationSeconds} s, alternating distinct, handled and duplicate deliveries, ${CONNECTIONS} connections.`,
    '',
    `- **Distinct events: ${fmt(distinct)}/s** (each a new event id, recorded in the inbox as ignored)`,
    `- **Distinct handled events: ${fmt(handled)}/s** (charge.succeeded, each re-fetching the charge from the local sandbox and updating the payment)`,
    `- **Duplicate deliveries: ${fmt(duplicates)}/s** (one processed event delivered again)`,
    '',
    '| Round | distinct/s | p99 (ms) | handled/s | p99 (ms) | duplicates/s | p99 (ms) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rounds.map(
      (entry) =>
        `| ${entry.round} | ${fmt(entry.distinct.perSecond)} | ${entry.distinct.p99Ms} | ${fmt(entry.handled.perSecond)} | ${entry.handled.p99Ms} | ${fmt(entry.duplicates.perSecond)} | ${entry.duplicates.p99Ms} |`,
    ),
    `| **median** | **${fmt(distinct)}** | | **${fmt(handled)}** | | **${fmt(duplicates)}** | |`,
    '',
    'Every request is POST /api/webhooks/stripe with a body signed like Stripe signs it (`Stripe-Signature: t=<now>,v1=<HMAC-SHA256>`, ' +
      'computed by the load generator per request) and counts only when answered 200 with the expected outcome (`ignored`, `processed`, `duplicate`); ' +
      'a round with any other answer is invalid and nothing is written. Bulwark runs on PostgreSQL with its default pool of 10, LOG_LEVEL=warn, ' +
      'JOBS_ENABLED=false, its in-process sandbox as the Stripe API, and the `webhooks.ip` limit raised for the run. ' +
      'Handled events all name one charge, so they also serialise on that payment\'s lock: a worst case for one customer, not the spread of real traffic.',
    END_MARK,
  ].join('\n');
  await writeMarkedSection({ file: RESULTS_FILE, startMark: START_MARK, endMark: END_MARK, section, secrets });
  log(`distinct ${fmt(distinct)}/s, handled ${fmt(handled)}/s, duplicates ${fmt(duplicates)}/s. Wrote ${path.relative(PROJECT_DIR, RESULTS_FILE)}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(redact(`[bench:webhooks] FAILED: ${error.stack ?? error}\n`));
    process.exit(1);
  },
);
