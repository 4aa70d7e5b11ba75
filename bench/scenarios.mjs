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
import { createAccountWithApiKey } from './lib/bulwark-setup.mjs';

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
];
