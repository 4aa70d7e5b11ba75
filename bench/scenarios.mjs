// What we measure. Each scenario sends a request to a reference and a request to a target
// (systems from systems.mjs) and reports the target's throughput as a ratio of the
// reference's, measured in the same run. To add a benchmark, add an entry here (and, if
// the reference needs a new answer, a route in bare-server.mjs).
//
// Two shapes (bench/lib/scenario.mjs brings them to one):
// - the same request to two systems: `request`, `expect`, and `reference` / `target` as
//   system ids;
// - a different request per role: `reference` / `target` as `{ system, label, request,
//   expect }`, e.g. two routes of the same server. Give each role its own label.
//
// `expect` is checked once per role before measuring, so each side gives the answer we mean
// to measure (expect.body: exact string, RegExp, or (body, fixtures) -> true | false |
// problem). `setup({ server, secretsOf, keepSecret, log })`, when present, runs once after the servers
// are ready and before warm-up; what it resolves ("fixtures") is passed to request
// functions and body checks. Anything secret it creates must go through keepSecret(value):
// the runner then never prints it and refuses to write RESULTS.md if it appears there.
// `notes` are extra lines for the scenario's section in RESULTS.md (never put secrets there).
// `targetRatio` is the ratio we aim for (reported, never asserted).
//
// Optional, per scenario: `connections` (autocannon connections for both roles of this
// scenario, instead of BENCH_CONNECTIONS). Optional, per role: `units` = { name,
// count(status, body) -> number, perResponse, perSecondTarget? }: counted on every
// response during the runs (e.g. usage events accepted); a run is invalid unless the 2xx
// answers add up to exactly `perResponse` each, and the scenario's headline becomes
// units/s against `perSecondTarget` when given. A request's `body` may be a function
// returning a fresh body for every request (e.g. new idempotency keys each time).
import { randomBytes } from 'node:crypto';
import { createAccountWithApiKey, grantCredits, setAccountPlan } from './lib/bulwark-setup.mjs';

const JSON_TYPE = /^application\/json\b/;
const HEALTH_REQUEST = { method: 'GET', path: '/health', headers: {} };
const HEALTH_EXPECT = { status: 200, contentType: JSON_TYPE, body: '{"status":"ok"}' };

/** GET /api/account must answer the setup's account: `{account: {id, plan, status}, subscription}` (API.md). */
function isSetupAccount(body, { accountId }) {
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    return 'not JSON';
  }
  if (parsed?.account?.id !== accountId) return `account.id is not the setup's account ${accountId}`;
  if (parsed.account.status !== 'active') return 'account.status is not "active"';
  return true;
}

/**
 * One ENTERPRISE account and key for every entitlement and usage scenario, created once per
 * run (operator routes allow 10 requests an hour per IP: this is 3 of them). ENTERPRISE has
 * api_calls_per_day unlimited (a FREE account would answer allowed:false after 100 tracked
 * calls) and no per-plan machine rate limit (RL-5; FREE allows 600 requests a minute).
 */
let enterpriseAccount;
function sharedEnterpriseAccount({ server, secretsOf, keepSecret, log }) {
  enterpriseAccount ??= (async () => {
    const bulwark = server('bulwark');
    const adminToken = secretsOf('bulwark').adminToken;
    const fixtures = await createAccountWithApiKey(bulwark, adminToken);
    keepSecret(fixtures.apiKey);
    await setAccountPlan(bulwark, adminToken, fixtures.accountId, 'ENTERPRISE');
    log(`setup: account ${fixtures.accountId} and its API key ${fixtures.keyId} created, then moved to ENTERPRISE, through the operator API (shared by the entitlement and usage scenarios)`);
    return fixtures;
  })();
  return enterpriseAccount;
}

const ENTERPRISE_SETUP_NOTE =
  'Setup, once per run and shared by the entitlement and usage scenarios, through the operator API (Authorization: ' +
  'Bearer ADMIN_API_TOKEN): POST /api/admin/accounts `{"plan":"FREE","name":"bench"}`, POST /api/admin/accounts/:id/keys ' +
  '`{"label":"bench"}`, then PATCH /api/admin/accounts/:id `{"plan":"ENTERPRISE"}`. ENTERPRISE because its ' +
  '`api_calls_per_day` is unlimited (FREE allows 100 a day, after which a tracked check answers allowed:false) and it has ' +
  'no per-plan machine rate limit (RL-5; FREE allows 600 requests a minute per account).';

function parseJson(body) {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

const CHECK_PATH = '/api/entitlements/check';

function checkRequest(payload) {
  const body = JSON.stringify(payload);
  return ({ apiKey }) => ({
    method: 'POST',
    path: CHECK_PATH,
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body,
  });
}

/** The answer of an unlimited metered feature (ENTERPRISE): allowed, limit null; `tracked` answers count at least 1. */
function isUnlimitedAllowed(tracked) {
  return (body) => {
    const parsed = parseJson(body);
    if (!parsed) return 'not JSON';
    if (parsed.allowed !== true) return 'allowed is not true';
    if (parsed.feature !== 'api_calls_per_day' || parsed.kind !== 'metered') return 'not the metered api_calls_per_day feature';
    if (parsed.limit !== null) return `limit is ${parsed.limit}, not null (unlimited): is the account on ENTERPRISE?`;
    if (tracked && !(Number(parsed.used) >= 1)) return 'a tracked check did not count (used < 1)';
    return true;
  };
}

/** Every 200 answer must say allowed:true (an allowed:false answer is also a 200, but not the path we measure). */
const ALLOWED_UNITS = {
  name: 'allowed:true answers',
  count: (status, body) => (status === 200 && body.includes('"allowed":true') ? 1 : 0),
  perResponse: 1,
};

const USAGE_BATCH = 100;
const USAGE_TARGET_EVENTS_PER_SECOND = 20_000;
/** Idempotency keys unique across the whole run (warm-up, every round, the answer check): run prefix + counter. */
const usageKeyPrefix = `bench-${randomBytes(6).toString('hex')}-`;
let usageKeyCounter = 0;
function usageBatchBody() {
  const events = [];
  for (let i = 0; i < USAGE_BATCH; i += 1) {
    usageKeyCounter += 1;
    events.push({ idempotencyKey: `${usageKeyPrefix}${usageKeyCounter}`, jobType: 'bench.event', quantity: 1 });
  }
  return JSON.stringify({ events });
}

function isWholeBatchAccepted(body) {
  const parsed = parseJson(body);
  if (!parsed) return 'not JSON';
  if (parsed.accepted !== USAGE_BATCH || parsed.duplicates !== 0) return `expected {accepted: ${USAGE_BATCH}, duplicates: 0}`;
  return true;
}

/** The shared ENTERPRISE account, funded once with 1,000,000 credits for the gate (one more operator request). */
let fundedEnterpriseAccount;
function sharedFundedEnterpriseAccount(context) {
  fundedEnterpriseAccount ??= (async () => {
    const fixtures = await sharedEnterpriseAccount(context);
    await grantCredits(context.server('bulwark'), context.secretsOf('bulwark').adminToken, fixtures.accountId, 1_000_000);
    context.log(`setup: 1,000,000 credits granted to ${fixtures.accountId} for the gate`);
    return fixtures;
  })();
  return fundedEnterpriseAccount;
}

const gateKeyPrefix = `gate-${randomBytes(6).toString('hex')}-`;
let gateKeyCounter = 0;
function gateBody() {
  gateKeyCounter += 1;
  const key = `${gateKeyPrefix}${gateKeyCounter}`;
  return JSON.stringify({ feature: 'api_calls_per_day', track: 1, credits: { jobId: key, jobType: 'bench', amount: 1, idempotencyKey: key } });
}

function isGateAllowed(body) {
  const parsed = parseJson(body);
  if (!parsed) return 'not JSON';
  if (parsed.allowed !== true) return `allowed is not true (reason ${parsed.reason})`;
  if (parsed.reservation?.status !== 'held' || parsed.reservation.amount !== 1) return 'no held reservation of 1 credit';
  if (parsed.entitlement?.limit !== null) return 'the entitlement is not the unlimited ENTERPRISE one';
  return true;
}

export const scenarios = [
  {
    id: 'health',
    title: 'GET /health',
    request: HEALTH_REQUEST,
    expect: HEALTH_EXPECT,
    reference: 'bare',
    target: 'bulwark',
    targetRatio: 0.6,
  },
  {
    // Issue 3: an API-key-authenticated read as a ratio to /health on the same server.
    id: 'account-api-key',
    title: 'GET /api/account (X-API-Key)',
    reference: { system: 'bulwark', label: 'Bulwark GET /health', request: HEALTH_REQUEST, expect: HEALTH_EXPECT },
    target: {
      system: 'bulwark',
      label: 'Bulwark GET /api/account',
      request: ({ apiKey }) => ({ method: 'GET', path: '/api/account', headers: { 'x-api-key': apiKey } }),
      expect: { status: 200, contentType: JSON_TYPE, body: isSetupAccount },
    },
    async setup({ server, secretsOf, keepSecret, log }) {
      const bulwark = server('bulwark');
      const fixtures = await createAccountWithApiKey(bulwark, secretsOf('bulwark').adminToken);
      keepSecret(fixtures.apiKey);
      log(`setup: account ${fixtures.accountId} (FREE) and its API key ${fixtures.keyId} created through the operator API`);
      return fixtures;
    },
    notes: [
      'Both requests go to the same Bulwark process: the reference is GET /health, the target GET /api/account with ' +
        '`X-API-Key` set to an account key (the secret is never written out).',
      'Setup, once per run after the servers are ready and before warm-up, through the operator API (Authorization: Bearer ' +
        'ADMIN_API_TOKEN): POST /api/admin/accounts `{"plan":"FREE","name":"bench"}`, then POST /api/admin/accounts/:id/keys ' +
        '`{"label":"bench"}`. Before measuring, the target is checked to answer 200, JSON, with that account\'s id.',
      'Every target request authenticates the key (HMAC, in-process verification cache while the revocation feed is ' +
        'live), checks the account\'s status in the database, and reads the account (each database step is its own ' +
        'transaction with the row-level-security account setting).',
    ],
    targetRatio: 0.5,
  },
  {
    // Issue 4: an entitlement check (no tracking) as a ratio to /health, at 100 connections.
    id: 'entitlement-check',
    title: 'POST /api/entitlements/check (X-API-Key)',
    connections: 100,
    reference: { system: 'bulwark', label: 'Bulwark GET /health', request: HEALTH_REQUEST, expect: HEALTH_EXPECT },
    target: {
      system: 'bulwark',
      label: 'Bulwark POST /api/entitlements/check',
      request: checkRequest({ feature: 'api_calls_per_day' }),
      expect: { status: 200, contentType: JSON_TYPE, body: isUnlimitedAllowed(false) },
      units: ALLOWED_UNITS,
    },
    setup: sharedEnterpriseAccount,
    notes: [
      'Both requests go to the same Bulwark process at 100 connections (this scenario\'s own setting): the reference is ' +
        'GET /health, the target POST /api/entitlements/check `{"feature":"api_calls_per_day"}` with `X-API-Key` set to ' +
        'an account key (the secret is never written out).',
      ENTERPRISE_SETUP_NOTE,
      'Before measuring, the target is checked to answer 200, JSON, `allowed: true`, `limit: null`; during every run each ' +
        '200 answer is checked to contain `"allowed":true` (the run is invalid otherwise).',
      'Each target request authenticates the key, reads the account (status and plan; cached while the change feed is ' +
        'live), applies the per-plan machine rate limit (none on ENTERPRISE), and reads the feature\'s counter for the ' +
        'current day in one database transaction with the row-level-security account setting.',
    ],
    targetRatio: 0.5,
  },
  {
    // Issue 4: an entitlement check that records usage (track), as a ratio to /health, at 100 connections.
    id: 'entitlement-check-track',
    title: 'POST /api/entitlements/check with track (X-API-Key)',
    connections: 100,
    reference: { system: 'bulwark', label: 'Bulwark GET /health', request: HEALTH_REQUEST, expect: HEALTH_EXPECT },
    target: {
      system: 'bulwark',
      label: 'Bulwark POST /api/entitlements/check track:1',
      request: checkRequest({ feature: 'api_calls_per_day', track: 1 }),
      expect: { status: 200, contentType: JSON_TYPE, body: isUnlimitedAllowed(true) },
      units: ALLOWED_UNITS,
    },
    setup: sharedEnterpriseAccount,
    notes: [
      'Both requests go to the same Bulwark process at 100 connections (this scenario\'s own setting): the reference is ' +
        'GET /health, the target POST /api/entitlements/check `{"feature":"api_calls_per_day","track":1}` with `X-API-Key`.',
      ENTERPRISE_SETUP_NOTE,
      'Before measuring, the target is checked to answer 200, JSON, `allowed: true`, `limit: null` and a count of at ' +
        'least 1; during every run each 200 answer is checked to contain `"allowed":true`.',
      'Each target request adds 1 to the account\'s counter for the day with one conditional upsert (INSERT ... ON ' +
        'CONFLICT DO UPDATE ... RETURNING): every request of the run updates the same row, so concurrent transactions ' +
        'queue on that row\'s lock. That is the worst case for one account; many accounts would spread the rows.',
    ],
    targetRatio: 0.25,
  },
  {
    // Issue 4: usage ingestion in events/s, batches of 100.
    id: 'usage-ingest',
    title: `POST /api/usage (batches of ${USAGE_BATCH} events, X-API-Key)`,
    reference: { system: 'bulwark', label: 'Bulwark GET /health', request: HEALTH_REQUEST, expect: HEALTH_EXPECT },
    target: {
      system: 'bulwark',
      label: `Bulwark POST /api/usage x${USAGE_BATCH}`,
      request: ({ apiKey }) => ({
        method: 'POST',
        path: '/api/usage',
        headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
        body: usageBatchBody,
      }),
      expect: { status: 202, contentType: JSON_TYPE, body: isWholeBatchAccepted },
      units: {
        name: 'events',
        count: (status, body) => (status === 202 ? (parseJson(body)?.accepted ?? 0) : 0),
        perResponse: USAGE_BATCH,
        perSecondTarget: USAGE_TARGET_EVENTS_PER_SECOND,
      },
    },
    setup: sharedEnterpriseAccount,
    notes: [
      `The target POSTs /api/usage with \`X-API-Key\` and a batch of ${USAGE_BATCH} events, each ` +
        '`{"idempotencyKey":"bench-<run>-<n>","jobType":"bench.event","quantity":1}` with a key never used before in the ' +
        'run (a fresh body is built for every request), so every event is new and stored. The headline is **events/s** = ' +
        `events the answers report as \`accepted\` / run duration, against the target of ${USAGE_TARGET_EVENTS_PER_SECOND.toLocaleString('en-US')} ` +
        'events/s; the req/s ratio to GET /health is shown for reference only. A run is invalid unless every 202 answer ' +
        `accepted all ${USAGE_BATCH} events (no duplicates).`,
      ENTERPRISE_SETUP_NOTE,
      '**Rate limit raised for this benchmark:** Bulwark runs with `RATE_LIMITS={"usage_report.account":{"limit":1000000,' +
        '"windowSeconds":3600}}` (1,000,000 reports an hour per account, the highest limit RATE_LIMITS accepts) instead of ' +
        'the default 60 reports an hour per account, which would answer 429 after the first 60 batches. The benchmark ' +
        'measures ingestion, not the limiter (the limiter still runs on every request).',
      'Each target request authenticates the key, reads the account, applies the limits, and in one transaction inserts ' +
        'the batch with one INSERT ... SELECT FROM jsonb_to_recordset ... ON CONFLICT DO NOTHING, then adds the batch to the ' +
        "account's daily event count (one row per account and day, locked to commit: concurrent batches of one account " +
        'take turns there) for the anomaly rule.',
    ],
  },
  {
    // Issue 5 item 7: the gate (entitlement with track + credit hold in one transaction) as a ratio to /health.
    id: 'gate',
    title: 'POST /api/gate with track and credits (X-API-Key)',
    connections: 100,
    reference: { system: 'bulwark', label: 'Bulwark GET /health', request: HEALTH_REQUEST, expect: HEALTH_EXPECT },
    target: {
      system: 'bulwark',
      label: 'Bulwark POST /api/gate',
      request: ({ apiKey }) => ({ method: 'POST', path: '/api/gate', headers: { 'x-api-key': apiKey, 'content-type': 'application/json' }, body: gateBody }),
      expect: { status: 200, contentType: JSON_TYPE, body: isGateAllowed },
      units: ALLOWED_UNITS,
    },
    setup: sharedFundedEnterpriseAccount,
    notes: [
      'Both requests go to the same Bulwark process at 100 connections: the reference is GET /health, the target POST /api/gate ' +
        '`{"feature":"api_calls_per_day","track":1,"credits":{"jobId":k,"jobType":"bench","amount":1,"idempotencyKey":k}}` with a fresh ' +
        'key k for every request, so every gate tracks one unit and holds one new credit.',
      ENTERPRISE_SETUP_NOTE + ' The gate scenario grants that account 1,000,000 credits first (POST /api/admin/accounts/:id/credits).',
      'Each target request authenticates the key, applies the per-plan machine limit (none on ENTERPRISE) and joins a batch of concurrent ' +
        'gates (at most 200, one batch at a time per account) that runs as one statement and one commit (gate_pass_many, migration 0024): ' +
        'look up the idempotency key, add 1 to the day\'s counter, hold 1 credit. Every request takes the same counter row and the same ' +
        'grant row, so this is the one-hot-account worst case.',
    ],
    targetRatio: 0.2,
  },
];
