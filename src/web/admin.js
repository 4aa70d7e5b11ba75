// The operator dashboard (UI-1), served at /admin. The admin token is typed once and
// exchanged for an HttpOnly session cookie (POST /api/admin/session); the page keeps only
// that session's CSRF token, in memory: nothing in storage, nothing readable in a cookie.
import { createClient } from './lib/api.js';
import { barChart } from './lib/chart.js';
import {
  describeError,
  field,
  formatCount,
  formatDate,
  formatMoney,
  formValues,
  h,
  humanise,
  notify,
  parseMoneyToCents,
  replace,
  select,
  showFormSuccess,
  table,
} from './lib/dom.js';
import { actionForm, page, section } from './lib/page.js';
import { createRouter } from './lib/router.js';

const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));

/** @type {{csrfToken: string | null, expiresAt: string} | null} */
let session = null;

const api = createClient({
  csrfToken: () => session?.csrfToken ?? undefined,
  // A session cannot be renewed without the token: sign in again.
  refresh: async () => false,
  onSignedOut: () => {
    session = null;
    renderNav();
    router.go('/admin/login?expired=1', { replace: true });
  },
});
const publicApi = createClient({ csrfToken: () => undefined });

const PLANS = ['FREE', 'STARTER', 'PRO', 'ENTERPRISE'];

function renderNav() {
  if (!session) {
    replace(nav);
    return;
  }
  replace(
    nav,
    h(
      'ul',
      null,
      h('li', null, h('a', { href: '/admin', 'data-route': true }, 'Accounts')),
      h('li', null, h('a', { href: '/admin/audit', 'data-route': true }, 'Audit log')),
      h('li', null, h('a', { href: '/admin/reconciliation', 'data-route': true }, 'Reconciliation')),
      h('li', null, h('a', { href: '/admin/webhooks', 'data-route': true }, 'Webhooks')),
      h('li', null, h('a', { href: '/admin/endpoints', 'data-route': true }, 'Outgoing webhooks')),
      h('li', null, h('a', { href: '/admin/health', 'data-route': true }, 'Health')),
      h('li', null, h('button', { type: 'button', class: 'link-button', onclick: signOut }, 'Sign out')),
    ),
  );
}

async function signOut() {
  try {
    await api.delete('/api/admin/session');
  } catch (error) {
    if (/** @type {{status?: number}} */ (error).status !== 401) {
      notify(describeError(error).message);
      return;
    }
  }
  session = null;
  renderNav();
  router.go('/admin/login?signedOut=1');
}

/** A section whose content comes from a route that may not exist on this server yet. @param {string} title @param {() => Promise<Array<Node | null>>} build */
async function optionalSection(title, build) {
  try {
    return section(title, ...(await build()));
  } catch (error) {
    return section(title, h('p', { class: 'error-text' }, describeError(error).message));
  }
}

// --- Sign-in ---------------------------------------------------------------------------

/** @param {URLSearchParams} query */
function loginPage(query) {
  const note = query.has('expired') ? 'Your session ended. Sign in again.' : query.has('signedOut') ? 'You are signed out.' : null;
  return page('Operator sign-in', () => [
    note ? h('p', { class: 'notice-inline', role: 'status' }, note) : null,
    h('p', null, 'Paste the admin token (ADMIN_API_TOKEN). It is exchanged for a session of 30 minutes and is not kept by this page.'),
    actionForm({
      label: 'Sign in',
      fields: [field({ label: 'Admin token', name: 'token', type: 'password', required: true, autocomplete: 'off' })],
      action: async (values, form) => {
        const input = /** @type {HTMLInputElement | null} */ (form.querySelector('input[name="token"]'));
        // The field is emptied at once, whatever the answer: the token stays in no element.
        if (input) input.value = '';
        const answer = await publicApi.post('/api/admin/session', { token: values.token });
        session = { csrfToken: answer.csrfToken, expiresAt: answer.session.expiresAt };
        renderNav();
        router.go('/admin');
      },
    }),
  ]);
}

// --- Accounts --------------------------------------------------------------------------

/** @param {URLSearchParams} query */
function accountsPage(query) {
  const q = query.get('q') ?? '';
  const cursor = query.get('cursor');
  return page('Accounts', async () => {
    const parameters = new URLSearchParams({ limit: '25' });
    if (q) parameters.set('q', q);
    if (cursor) parameters.set('cursor', cursor);
    const found = await api.get(`/api/admin/accounts?${parameters.toString()}`);
    const searchForm = /** @type {HTMLFormElement} */ (
      h(
        'form',
        { role: 'search', class: 'inline-form', novalidate: true },
        field({ label: 'Search accounts', name: 'q', type: 'search', value: q, hint: 'An account id, or part of a name or owner email.' }),
        h('button', { type: 'submit' }, 'Search'),
      )
    );
    searchForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = formValues(searchForm).q ?? '';
      router.go(text ? `/admin?q=${encodeURIComponent(text)}` : '/admin');
    });
    const next = found.nextCursor
      ? h('a', { href: `/admin?${new URLSearchParams({ ...(q ? { q } : {}), cursor: found.nextCursor }).toString()}`, 'data-route': true, class: 'button secondary' }, 'Next page')
      : null;
    return [
      searchForm,
      table(
        q ? `Accounts matching "${q}"` : 'Accounts',
        ['Account', 'Owner', 'Plan', 'Status', 'Created'],
        found.items.map((/** @type {any} */ account) => [
          h('a', { href: `/admin/accounts/${encodeURIComponent(account.id)}`, 'data-route': true }, account.name ?? account.id),
          account.ownerEmail ?? '—',
          account.plan,
          humanise(account.status),
          formatDate(account.createdAt),
        ]),
        { empty: q ? 'No account matches.' : 'No accounts yet.' },
      ),
      h('p', { class: 'pager' }, cursor ? h('a', { href: q ? `/admin?q=${encodeURIComponent(q)}` : '/admin', 'data-route': true }, 'First page') : null, ' ', next),
      section(
        'Create an account',
        actionForm({
          label: 'Create the account',
          fields: [
            field({ label: 'Name', name: 'name', maxlength: '200' }),
            field({ label: 'Owner email (optional)', name: 'email', type: 'email' }),
            select({ label: 'Plan', name: 'plan', options: PLANS.map((plan) => [plan, plan]), value: 'FREE' }),
          ],
          action: async (values) => {
            const created = await api.post('/api/admin/accounts', {
              plan: values.plan,
              ...(values.name ? { name: values.name } : {}),
              ...(values.email ? { email: values.email } : {}),
            });
            router.go(`/admin/accounts/${encodeURIComponent(created.account.id)}`);
          },
        }),
      ),
    ];
  });
}

/** What a payment was for. @param {any} payment */
function paymentWhat(payment) {
  if (payment.kind === 'credit_pack') return `Credit pack ${payment.creditPackId ?? ''}`.trim();
  if (payment.kind === 'subscription_invoice') return 'Subscription invoice';
  return humanise(payment.kind);
}

/** The account's subscription as the billing module stores it from Stripe. @param {any} subscription */
function subscriptionFacts(subscription) {
  if (!subscription) return h('p', { 'data-testid': 'admin-subscription' }, 'No subscription.');
  const end = subscription.cancelAtPeriodEnd ? `ends on ${formatDate(subscription.currentPeriodEnd)}` : subscription.currentPeriodEnd ? `renews on ${formatDate(subscription.currentPeriodEnd)}` : '';
  return h(
    'p',
    { 'data-testid': 'admin-subscription' },
    `Subscription ${subscription.id}: ${subscription.plan ?? 'unknown plan'}, ${humanise(subscription.status)}${end ? `, ${end}` : ''}${subscription.trialEnd ? ` (trial until ${formatDate(subscription.trialEnd)})` : ''}.`,
  );
}

/**
 * Refund a payment in full (no amount) or in part (an amount in the payment's currency,
 * sent in cents). Each submission carries its own Idempotency-Key: a retry of it refunds
 * once, a second refund of the same amount on purpose is a new one.
 * @param {Array<any>} refundable @param {() => Promise<void>} reload
 */
function refundForm(refundable, reload) {
  return h(
    'div',
    { class: 'stack' },
    h('h3', null, 'Refund a payment'),
    actionForm({
      label: 'Refund',
      className: 'inline-form',
      fields: [
        select({
          label: 'Payment',
          name: 'paymentId',
          options: refundable.map((payment) => [
            payment.id,
            `${paymentWhat(payment)}, ${formatMoney(payment.amount - payment.amountRefunded, payment.currency)} left (${payment.id})`,
          ]),
          value: refundable[0]?.id,
        }),
        field({ label: 'Amount (empty: everything left)', name: 'amount', inputmode: 'decimal', hint: 'In the payment\'s currency, e.g. 5.00.' }),
        select({
          label: 'Reason',
          name: 'reason',
          options: [
            ['requested_by_customer', 'Requested by the customer'],
            ['duplicate', 'Duplicate payment'],
            ['fraudulent', 'Fraudulent'],
          ],
          value: 'requested_by_customer',
        }),
      ],
      action: async (values) => {
        const payment = refundable.find((candidate) => candidate.id === values.paymentId);
        const text = (values.amount ?? '').trim();
        const cents = text ? parseMoneyToCents(text) : null;
        // A malformed amount goes to the API as typed, which names the field.
        const amount = text ? (cents ?? text) : undefined;
        const what = amount === undefined ? 'everything left' : typeof amount === 'number' && payment ? formatMoney(amount, payment.currency) : text;
        if (!confirm(`Refund ${what} of ${values.paymentId}? Unspent credits of a pack are taken back.`)) return;
        const answer = await api.post(
          '/api/admin/refunds',
          { paymentId: values.paymentId, reason: values.reason, ...(amount !== undefined ? { amount } : {}) },
          { headers: { 'Idempotency-Key': `dashboard-${crypto.randomUUID()}` } },
        );
        await reload();
        notify(`Refunded ${formatMoney(answer.refund.amount, answer.refund.currency)} (${humanise(answer.refund.status)}). Credits taken back show in the ledger once Stripe confirms.`, 'success');
      },
    }),
  );
}

/** @param {string} accountId */
function accountPage(accountId) {
  return page('Account', async () => {
    const overview = await api.get(`/api/admin/accounts/${encodeURIComponent(accountId)}/overview`);
    const { account } = overview;
    const reload = () => accountPage(accountId);
    const keyPanel = h('div', { 'aria-live': 'polite' });

    const keys = table(
      'API keys',
      ['Label', 'Prefix', 'Created', 'Last used', 'State', ''],
      overview.keys.items.map((/** @type {any} */ key) => [
        key.label ?? '—',
        h('code', null, key.prefix),
        formatDate(key.createdAt),
        formatDate(key.lastUsedAt),
        key.revokedAt ? `Revoked ${formatDate(key.revokedAt)}` : 'Active',
        key.revokedAt
          ? ''
          : h(
              'button',
              {
                type: 'button',
                class: 'danger small',
                'aria-label': `Revoke the key ${key.label ?? key.prefix}`,
                onclick: async () => {
                  if (!confirm(`Revoke the key ${key.label ?? key.prefix}?`)) return;
                  try {
                    await api.delete(`/api/admin/keys/${encodeURIComponent(key.id)}`);
                    await reload();
                    notify(`The key ${key.label ?? key.prefix} is revoked.`, 'success');
                  } catch (error) {
                    notify(describeError(error).message);
                  }
                },
              },
              'Revoke',
            ),
      ]),
      { empty: 'No keys.' },
    );

    const payments = await optionalSection('Subscription and payments', async () => {
      const found = await api.get(`/api/admin/accounts/${encodeURIComponent(accountId)}/payments?limit=50`);
      /** @type {Array<any>} */
      const items = found.items ?? [];
      const refundable = items.filter((payment) => payment.status === 'succeeded' && payment.amountRefunded < payment.amount);
      return [
        subscriptionFacts(found.subscription),
        table(
          'Payments',
          ['When', 'What', 'Amount', 'Refunded', 'Credits', 'Status', 'Payment'],
          items.map((payment) => [
            formatDate(payment.createdAt),
            paymentWhat(payment),
            formatMoney(payment.amount, payment.currency),
            payment.amountRefunded > 0 ? formatMoney(payment.amountRefunded, payment.currency) : '—',
            payment.creditsGranted > 0
              ? `${formatCount(payment.creditsGranted)} granted${payment.creditsReversed > 0 ? `, ${formatCount(payment.creditsReversed)} taken back` : ''}${payment.creditsReversalShortfall > 0 ? `, ${formatCount(payment.creditsReversalShortfall)} already spent` : ''}`
              : '—',
            `${humanise(payment.status)}${payment.disputedAt ? ', disputed' : ''}`,
            h('code', null, payment.id),
          ]),
          { empty: 'No payments.' },
        ),
        found.nextCursor ? h('p', { class: 'hint' }, 'The 50 newest payments are shown.') : null,
        refundable.length === 0 ? null : refundForm(refundable, reload),
      ];
    });

    return [
      section(
        account.name ?? account.id,
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Id'),
          h('dd', null, h('code', null, account.id)),
          h('dt', null, 'Plan'),
          h('dd', { 'data-testid': 'account-plan' }, account.plan),
          h('dt', null, 'Status'),
          h('dd', { 'data-testid': 'account-status' }, humanise(account.status)),
          h('dt', null, 'Created'),
          h('dd', null, formatDate(account.createdAt)),
          h('dt', null, 'People'),
          h('dd', null, overview.users.map((/** @type {any} */ user) => `${user.email ?? '(erased)'} (${user.role}${user.status === 'active' ? '' : `, ${user.status}`})`).join(', ') || '—'),
        ),
        account.status === 'deleted'
          ? h('p', null, 'This account is deleted and cannot be changed.')
          : actionForm({
              label: 'Save plan and status',
              className: 'inline-form',
              fields: [
                select({ label: 'Plan', name: 'plan', options: PLANS.map((plan) => [plan, plan]), value: account.plan }),
                select({ label: 'Status', name: 'status', options: [['active', 'Active'], ['suspended', 'Suspended']], value: account.status }),
              ],
              action: async (values, form) => {
                const changes = {
                  ...(values.plan !== account.plan ? { plan: values.plan } : {}),
                  ...(values.status !== account.status ? { status: values.status } : {}),
                };
                if (Object.keys(changes).length === 0) {
                  showFormSuccess(form, 'Nothing to change.');
                  return;
                }
                await api.patch(`/api/admin/accounts/${encodeURIComponent(accountId)}`, changes);
                await reload();
                notify('Saved.', 'success');
              },
            }),
      ),
      section(
        'Credits',
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Balance'),
          h('dd', { 'data-testid': 'admin-balance' }, `${formatCount(overview.credits.balance)} credits`),
          h('dt', null, 'Held'),
          h('dd', null, `${formatCount(overview.credits.held)} credits`),
        ),
        actionForm({
          label: 'Grant credits',
          className: 'inline-form',
          fields: [
            field({ label: 'Credits to grant', name: 'amount', type: 'number', required: true, min: '1', max: '1000000', inputmode: 'numeric' }),
            select({ label: 'Source', name: 'source', options: [['admin', 'Operator grant'], ['promotion', 'Promotion']], value: 'admin' }),
            field({ label: 'Expires (optional)', name: 'expiresAt', type: 'date' }),
          ],
          action: async (values) => {
            // Whole credits only: "12.5" or "1e3" are refused by the API, not rounded here.
            const amount = /^\d+$/.test(values.amount ?? '') ? Number(values.amount) : values.amount;
            await api.post(`/api/admin/accounts/${encodeURIComponent(accountId)}/credits`, {
              amount,
              source: values.source,
              ...(values.expiresAt ? { expiresAt: `${values.expiresAt}T23:59:59Z` } : {}),
            });
            await reload();
            notify(`Granted ${values.amount} credits.`, 'success');
          },
        }),
        table(
          'Credit ledger',
          ['When', 'What', 'Credits', 'Reference'],
          overview.ledger.items.map((/** @type {any} */ entry) => [
            formatDate(entry.createdAt),
            humanise(entry.kind),
            h('span', { class: entry.amount < 0 ? 'negative' : 'positive' }, `${entry.amount > 0 ? '+' : ''}${formatCount(entry.amount)}`),
            entry.reservationId ?? entry.grantId ?? '',
          ]),
          { empty: 'No credit movements.' },
        ),
      ),
      payments,
      section(
        'Usage',
        barChart({ title: 'Reported usage', unit: 'units', points: overview.usage.daily.map((/** @type {any} */ day) => ({ day: day.day, value: day.quantity })) }),
        table(
          'Latest usage reports',
          ['When', 'Job type', 'Job', 'Status'],
          overview.usage.recent.map((/** @type {any} */ report) => [formatDate(report.createdAt), report.jobType, report.jobId ?? '—', report.status]),
          { empty: 'No usage reported.' },
        ),
      ),
      section(
        'API keys',
        actionForm({
          label: 'Issue a key',
          className: 'inline-form',
          fields: [field({ label: 'Label', name: 'label', maxlength: '100' })],
          action: async (values) => {
            const issued = await api.post(`/api/admin/accounts/${encodeURIComponent(accountId)}/keys`, values.label ? { label: values.label } : {});
            await reload();
            // After the reload: the secret is shown once, in this page only.
            const panel = document.getElementById('issued-key');
            if (panel) {
              replace(
                panel,
                h('div', { class: 'secret-panel' }, h('p', null, h('strong', null, 'Give this key to the customer now: it is shown only once.')), h('code', { class: 'secret', 'data-testid': 'admin-new-secret' }, issued.secret)),
              );
            }
          },
        }),
        h('div', { id: 'issued-key', 'aria-live': 'polite' }, keyPanel),
        keys,
      ),
      section(
        'Audit entries',
        table(
          'Audit entries about this account',
          ['When', 'Event', 'Actor', 'Subject', 'Details'],
          overview.audit.items.map((/** @type {any} */ entry) => [
            formatDate(entry.at),
            h('code', null, entry.event),
            `${entry.actorType}${entry.actorId ? ` ${entry.actorId}` : ''}`,
            entry.subjectId ?? '—',
            Object.keys(entry.metadata ?? {}).length > 0 ? JSON.stringify(entry.metadata) : '',
          ]),
          { empty: 'No audit entries.' },
        ),
      ),
    ];
  });
}

// --- Audit, reconciliation, webhooks, health ---------------------------------------------

/** @param {URLSearchParams} query */
function auditPage(query) {
  const cursor = query.get('cursor');
  return page('Audit log', async () => {
    const entries = await api.get(`/api/admin/audit?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const result = h('p', { role: 'status', 'aria-live': 'polite', 'data-testid': 'verify-result' });
    return [
      section(
        'Chain verification',
        h('p', null, 'Recomputes the hash chain of the whole log and names the first entry that does not fit.'),
        actionForm({
          label: 'Verify the chain',
          className: 'inline',
          fields: [],
          action: async () => {
            const verified = await api.get('/api/admin/audit/verify');
            result.className = verified.valid ? 'success-text' : 'error-text';
            replace(result, verified.valid ? `The chain is intact: ${formatCount(verified.checked)} entries checked.` : `The chain is broken at entry ${verified.brokenAt}.`);
          },
        }),
        result,
      ),
      section(
        'Entries',
        table(
          'Audit entries, newest first',
          ['When', 'Event', 'Actor', 'Subject', 'IP'],
          entries.items.map((/** @type {any} */ entry) => [
            formatDate(entry.at),
            h('code', null, entry.event),
            `${entry.actorType}${entry.actorId ? ` ${entry.actorId}` : ''}`,
            entry.subjectId ? `${entry.subjectType ?? ''} ${entry.subjectId}` : '—',
            entry.ip ?? '—',
          ]),
          { empty: 'No entries.' },
        ),
        entries.nextCursor ? h('p', { class: 'pager' }, h('a', { href: `/admin/audit?cursor=${encodeURIComponent(entries.nextCursor)}`, 'data-route': true, class: 'button secondary' }, 'Older entries')) : null,
      ),
    ];
  });
}

/** One reconciliation report in a sentence. @param {any} report */
function reportSentence(report) {
  const counts = `${formatCount(report.customersChecked)} customers checked, ${formatCount(report.discrepancies)} discrepancies, ${formatCount(report.repaired)} repaired, ${formatCount(report.failed)} failed`;
  if (report.status === 'running') return `Running since ${formatDate(report.startedAt)}.`;
  if (report.status === 'failed') return `Failed (${report.errorCode ?? 'unknown error'}) after ${counts}.`;
  return `${counts}.`;
}

/** @param {URLSearchParams} [query] */
function reconciliationPage(query = new URLSearchParams()) {
  const cursor = query.get('cursor');
  return page('Reconciliation', async () => [
    section(
      'Run now',
      h('p', null, 'Compares local payments, subscriptions and credit purchases with Stripe, repairs what Stripe shows was missed, and reports the rest. A daily job runs it too.'),
      actionForm({
        label: 'Run reconciliation now',
        className: 'inline',
        fields: [],
        action: async () => {
          const report = await api.post('/api/admin/reconciliation/run');
          await reconciliationPage();
          notify(`Reconciliation ${report.status === 'succeeded' ? 'finished' : humanise(report.status)}: ${reportSentence(report)}`, report.status === 'failed' ? 'error' : 'success');
        },
      }),
    ),
    await optionalSection('Reports', async () => {
      const reports = await api.get(`/api/admin/reconciliation?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      /** @type {Array<any>} */
      const items = reports.items ?? [];
      return [
        table(
          'Reconciliation reports, newest first',
          ['Started', 'Trigger', 'Status', 'Customers', 'Discrepancies', 'Repaired', 'Failed', 'By kind'],
          items.map((report) => [
            formatDate(report.startedAt),
            humanise(report.trigger),
            report.status === 'failed' ? `Failed (${report.errorCode ?? 'unknown'})` : humanise(report.status),
            formatCount(report.customersChecked),
            formatCount(report.discrepancies),
            formatCount(report.repaired),
            formatCount(report.failed),
            Object.entries(/** @type {Record<string, number>} */ (report.summary ?? {}))
              .map(([kind, count]) => `${humanise(kind)}: ${formatCount(count)}`)
              .join(', ') || '—',
          ]),
          { empty: 'No reports yet: run one now, or wait for the daily job.' },
        ),
        ...items
          .filter((report) => (report.items ?? []).length > 0)
          .slice(0, 5)
          .map((report) =>
            h(
              'details',
              null,
              h('summary', null, `Discrepancies of the run of ${formatDate(report.startedAt)} (${formatCount(report.items.length)})`),
              table(
                `Discrepancies of the run of ${formatDate(report.startedAt)}`,
                ['Kind', 'Object', 'Account', 'Here', 'At Stripe', 'Resolution'],
                report.items.map((/** @type {any} */ item) => [
                  humanise(item.kind),
                  h('code', null, `${item.objectType} ${item.objectId}`),
                  item.accountId ? h('a', { href: `/admin/accounts/${encodeURIComponent(item.accountId)}`, 'data-route': true }, item.accountId) : '—',
                  item.local ? JSON.stringify(item.local) : '—',
                  item.stripe ? JSON.stringify(item.stripe) : '—',
                  `${humanise(item.resolution)}${item.errorCode ? ` (${item.errorCode})` : ''}`,
                ]),
              ),
            ),
          ),
        reports.nextCursor ? h('p', { class: 'pager' }, h('a', { href: `/admin/reconciliation?cursor=${encodeURIComponent(reports.nextCursor)}`, 'data-route': true, class: 'button secondary' }, 'Older reports')) : null,
      ];
    }),
  ]);
}

/** @param {URLSearchParams} [query] */
function webhooksPage(query = new URLSearchParams(location.search)) {
  const cursor = query.get('cursor');
  return page('Webhook dead letters', async () => [
    await optionalSection('Failed events', async () => {
      const letters = await api.get(`/api/admin/webhooks/dead-letters?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      return [
        h('p', null, 'Stripe events that failed every attempt. Replaying fetches the event again from Stripe and applies it once.'),
        table(
          'Stripe events that could not be applied',
          ['Event', 'Type', 'Account', 'Attempts', 'Last error', 'Received', ''],
          (letters.items ?? []).map((/** @type {any} */ letter) => [
            h('code', null, letter.eventId),
            letter.type,
            letter.accountId ? h('a', { href: `/admin/accounts/${encodeURIComponent(letter.accountId)}`, 'data-route': true }, letter.accountId) : '—',
            formatCount(letter.attempts),
            letter.lastErrorCode ?? '—',
            formatDate(letter.receivedAt),
            actionForm({
              label: `Replay ${letter.eventId}`,
              fields: [],
              className: 'inline',
              action: async () => {
                const replayed = await api.post(`/api/admin/webhooks/${encodeURIComponent(letter.eventId)}/replay`);
                await webhooksPage(new URLSearchParams());
                notify(`Replayed ${letter.eventId}: ${humanise(replayed.outcome ?? 'done')}.`, 'success');
              },
            }),
          ]),
          { empty: 'No dead letters: every event was applied.' },
        ),
        letters.nextCursor ? h('p', { class: 'pager' }, h('a', { href: `/admin/webhooks?cursor=${encodeURIComponent(letters.nextCursor)}`, 'data-route': true, class: 'button secondary' }, 'More')) : null,
      ];
    }),
  ]);
}

// --- Outgoing webhook endpoints (OUT-1) ------------------------------------------------

function endpointsPage() {
  return page('Outgoing webhooks', async () => {
    const found = await api.get('/api/admin/webhook-endpoints');
    /** @type {Array<any>} */
    const endpoints = found.items ?? [];
    return [
      section(
        'Add an endpoint',
        h('p', null, 'Bulwark posts signed events (Standard Webhooks) to these URLs: subscriptions, payments, refunds, credits. Failed deliveries are retried with a growing delay.'),
        actionForm({
          label: 'Add the endpoint',
          fields: [
            field({ label: 'URL', name: 'url', type: 'url', required: true, maxlength: '2048' }),
            field({ label: 'Description (optional)', name: 'description', maxlength: '500' }),
            field({ label: 'Event types (optional)', name: 'eventTypes', hint: 'Comma-separated, e.g. payment.refunded, subscription.canceled; empty: every type.' }),
          ],
          action: async (values) => {
            const eventTypes = (values.eventTypes ?? '')
              .split(',')
              .map((type) => type.trim())
              .filter((type) => type.length > 0);
            const created = await api.post('/api/admin/webhook-endpoints', {
              url: values.url,
              ...(values.description ? { description: values.description } : {}),
              ...(eventTypes.length > 0 ? { eventTypes } : {}),
            });
            await endpointsPage();
            // After the re-render: the signing secret is shown once, in this page only.
            const panel = document.getElementById('endpoint-secret');
            if (panel) {
              replace(
                panel,
                h(
                  'div',
                  { class: 'secret-panel' },
                  h('p', null, h('strong', null, `Signing secret of ${created.endpoint.url}: copy it now, it is shown only once.`)),
                  h('code', { class: 'secret', 'data-testid': 'endpoint-secret' }, created.secret),
                ),
              );
            }
          },
        }),
        h('div', { id: 'endpoint-secret', 'aria-live': 'polite' }),
      ),
      section(
        'Endpoints',
        table(
          'Outgoing webhook endpoints',
          ['URL', 'Description', 'Event types', 'State', 'Created', ''],
          endpoints.map((endpoint) => [
            h('a', { href: `/admin/endpoints/${encodeURIComponent(endpoint.id)}`, 'data-route': true }, endpoint.url),
            endpoint.description ?? '—',
            endpoint.eventTypes.length > 0 ? endpoint.eventTypes.join(', ') : 'Every type',
            endpoint.enabled ? 'Enabled' : 'Disabled',
            formatDate(endpoint.createdAt),
            endpoint.enabled
              ? h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger small',
                    'aria-label': `Disable the endpoint ${endpoint.url}`,
                    onclick: async () => {
                      if (!confirm(`Disable ${endpoint.url}? Its pending deliveries are given up.`)) return;
                      try {
                        await api.delete(`/api/admin/webhook-endpoints/${encodeURIComponent(endpoint.id)}`);
                        await endpointsPage();
                        notify(`The endpoint ${endpoint.url} is disabled.`, 'success');
                      } catch (error) {
                        notify(describeError(error).message);
                      }
                    },
                  },
                  'Disable',
                )
              : '',
          ]),
          { empty: 'No endpoints yet.' },
        ),
      ),
    ];
  });
}

/** @param {string} endpointId @param {URLSearchParams} [query] */
function endpointPage(endpointId, query = new URLSearchParams()) {
  const cursor = query.get('cursor');
  return page('Delivery log', async () => {
    const [list, deliveries] = await Promise.all([
      api.get('/api/admin/webhook-endpoints'),
      api.get(`/api/admin/webhook-endpoints/${encodeURIComponent(endpointId)}/deliveries?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
    ]);
    const endpoint = (list.items ?? []).find((/** @type {any} */ candidate) => candidate.id === endpointId);
    return [
      h('p', null, 'Deliveries to ', h('code', null, endpoint?.url ?? endpointId), `${endpoint && !endpoint.enabled ? ' (disabled)' : ''}, newest first. `, h('a', { href: '/admin/endpoints', 'data-route': true }, 'All endpoints'), '.'),
      table(
        'Deliveries',
        ['Created', 'Event', 'Status', 'Attempts', 'Last answer', 'Next attempt', ''],
        (deliveries.items ?? []).map((/** @type {any} */ delivery) => [
          formatDate(delivery.createdAt),
          h('code', null, delivery.type),
          humanise(delivery.status),
          formatCount(delivery.attempts),
          delivery.lastResponseStatus !== null ? `HTTP ${delivery.lastResponseStatus}` : (delivery.lastError ?? '—'),
          formatDate(delivery.nextAttemptAt),
          actionForm({
            label: `Redeliver ${delivery.type}`,
            fields: [],
            className: 'inline',
            action: async () => {
              await api.post(`/api/admin/notification-deliveries/${encodeURIComponent(delivery.id)}/redeliver`);
              await endpointPage(endpointId);
              notify(`Delivery ${delivery.id} is queued again.`, 'success');
            },
          }),
        ]),
        { empty: 'Nothing delivered to this endpoint yet.' },
      ),
      deliveries.nextCursor ? h('p', { class: 'pager' }, h('a', { href: `/admin/endpoints/${encodeURIComponent(endpointId)}?cursor=${encodeURIComponent(deliveries.nextCursor)}`, 'data-route': true, class: 'button secondary' }, 'Older deliveries')) : null,
    ];
  });
}

function healthPage() {
  return page('Health', async () => {
    const ready = await fetch('/ready', { cache: 'no-store' }).then(async (response) => ({ status: response.status, body: await response.json() }));
    const summary = await api.get('/api/admin/summary');
    const checks = Object.entries(/** @type {Record<string, string>} */ (ready.body.checks ?? {}));
    return [
      section(
        'Readiness',
        h('p', { 'data-testid': 'ready-status', class: ready.status === 200 ? 'success-text' : 'error-text' }, ready.status === 200 ? 'Ready: every check passes.' : 'Not ready: a check fails.'),
        table('Readiness checks', ['Check', 'Result'], checks.map(([name, result]) => [humanise(name), result])),
      ),
      section(
        'This instance',
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Up for'),
          h('dd', null, `${formatCount(Math.floor(summary.instance.uptimeSeconds / 60))} min`),
          h('dt', null, 'Memory'),
          h('dd', null, summary.instance.residentMemoryBytes === null ? '—' : `${formatCount(Math.round(summary.instance.residentMemoryBytes / 1048576))} MiB`),
          h('dt', null, 'Requests answered'),
          h('dd', null, `${formatCount(summary.requests.total)} (${Object.entries(/** @type {Record<string, number>} */ (summary.requests.byStatusClass)).map(([statusClass, count]) => `${statusClass}: ${formatCount(count)}`).join(', ')})`),
          h('dt', null, 'Authentications'),
          h('dd', null, `${formatCount(summary.authentications.ok)} ok, ${formatCount(summary.authentications.failed)} failed`),
          h('dt', null, 'Rate-limit refusals'),
          h('dd', null, formatCount(summary.rateLimitHits)),
        ),
        table('Credit operations', ['Operation', 'Count'], Object.entries(/** @type {Record<string, number>} */ (summary.creditOperations)).map(([operation, count]) => [humanise(operation), formatCount(count)]), { empty: 'No credit operations yet.' }),
        h('p', { class: 'hint' }, 'Counters of the instance that answered, since it started; Prometheus (GET /metrics) has all of them.'),
      ),
    ];
  });
}

function notFoundPage() {
  void page('Page not found', () => [h('p', null, 'There is no such page. ', h('a', { href: '/admin', 'data-route': true }, 'Go to the accounts'), '.')]);
}

const router = createRouter({
  before: async (path) => {
    if (path === '/admin/login') return true;
    if (session) return true;
    try {
      const answer = await api.get('/api/admin/session');
      if (!answer.session) throw new Error('no session');
      session = { csrfToken: answer.csrfToken, expiresAt: answer.session.expiresAt };
      renderNav();
      return true;
    } catch {
      session = null;
      renderNav();
      router.go('/admin/login', { replace: true });
      return false;
    }
  },
  routes: [
    { pattern: /^\/admin\/login$/, render: (_match, query) => loginPage(query) },
    { pattern: /^\/admin$/, render: (_match, query) => accountsPage(query) },
    { pattern: /^\/admin\/accounts\/([A-Za-z0-9_-]{1,128})$/, render: (match) => accountPage(match[1] ?? '') },
    { pattern: /^\/admin\/audit$/, render: (_match, query) => auditPage(query) },
    { pattern: /^\/admin\/reconciliation$/, render: (_match, query) => reconciliationPage(query) },
    { pattern: /^\/admin\/webhooks$/, render: (_match, query) => webhooksPage(query) },
    { pattern: /^\/admin\/endpoints$/, render: () => endpointsPage() },
    { pattern: /^\/admin\/endpoints\/([A-Za-z0-9_-]{1,128})$/, render: (match, query) => endpointPage(match[1] ?? '', query) },
    { pattern: /^\/admin\/health$/, render: () => healthPage() },
  ],
  notFound: notFoundPage,
});

renderNav();
void router.render();
