// Setup steps on a running Bulwark, through its operator API (Authorization: Bearer
// <ADMIN_API_TOKEN>). Error messages give statuses and error codes, never a request's
// headers or an answer that may hold a secret.
import { httpRequest } from './net.mjs';

const SETUP_TIMEOUT_MS = 15_000;

function errorCodeOf(body) {
  try {
    return JSON.parse(body)?.error?.code ?? 'no error code';
  } catch {
    return 'not JSON';
  }
}

/** Sends JSON as the operator (POST by default); resolves the parsed answer, or throws unless it has `status`. */
async function adminPost(server, adminToken, path, payload, status, method = 'POST') {
  const body = JSON.stringify(payload);
  const response = await httpRequest({
    host: server.host,
    port: server.port,
    method,
    path,
    headers: {
      host: '127.0.0.1',
      authorization: `Bearer ${adminToken}`,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    },
    body,
    timeoutMs: SETUP_TIMEOUT_MS,
  });
  if (response.status !== status) {
    const hint = response.status === 429 ? ' (operator routes allow 10 requests an hour per IP by default)' : '';
    throw new Error(`setup: ${method} ${path} answered ${response.status} (${errorCodeOf(response.body)}), expected ${status}${hint}`);
  }
  try {
    return JSON.parse(response.body);
  } catch {
    throw new Error(`setup: ${method} ${path} answered ${status} with a body that is not JSON`);
  }
}

/**
 * Creates an account (FREE plan) and issues it an API key, as an operator would: two
 * operator requests (POST /api/admin/accounts, POST /api/admin/accounts/:id/keys).
 * Resolves { accountId, keyId, apiKey }; `apiKey` is the whole secret for X-API-Key.
 */
export async function createAccountWithApiKey(server, adminToken) {
  const created = await adminPost(server, adminToken, '/api/admin/accounts', { plan: 'FREE', name: 'bench' }, 201);
  const account = created?.account;
  if (typeof account?.id !== 'string' || account.plan !== 'FREE' || account.status !== 'active') {
    throw new Error('setup: POST /api/admin/accounts did not answer {account: {id, plan: "FREE", status: "active", ...}}');
  }
  const issued = await adminPost(server, adminToken, `/api/admin/accounts/${encodeURIComponent(account.id)}/keys`, { label: 'bench' }, 201);
  const apiKey = issued?.secret;
  if (typeof issued?.key?.id !== 'string' || typeof apiKey !== 'string' || !apiKey.startsWith(`cust_${account.id}_`)) {
    // Not quoting the answer: it may hold the secret.
    throw new Error(`setup: POST /api/admin/accounts/${account.id}/keys did not answer {key: {id, ...}, secret: "cust_${account.id}_..."}`);
  }
  return { accountId: account.id, keyId: issued.key.id, apiKey };
}

/**
 * Moves an account to another plan as an operator would: PATCH /api/admin/accounts/:id
 * `{plan}` (one operator request). Resolves the account as answered.
 */
export async function setAccountPlan(server, adminToken, accountId, plan) {
  const path = `/api/admin/accounts/${encodeURIComponent(accountId)}`;
  const updated = await adminPost(server, adminToken, path, { plan }, 200, 'PATCH');
  if (updated?.account?.id !== accountId || updated.account.plan !== plan) {
    throw new Error(`setup: PATCH ${path} did not answer {account: {id: "${accountId}", plan: "${plan}", ...}}`);
  }
  return updated.account;
}

/** Grants credits as an operator would: POST /api/admin/accounts/:id/credits `{amount, source: "admin"}`. */
export async function grantCredits(server, adminToken, accountId, amount) {
  const path = `/api/admin/accounts/${encodeURIComponent(accountId)}/credits`;
  const granted = await adminPost(server, adminToken, path, { amount, source: 'admin' }, 201);
  if (granted?.grant?.amount !== amount) throw new Error(`setup: POST ${path} did not answer {grant: {amount: ${amount}, ...}}`);
  return granted.grant;
}
