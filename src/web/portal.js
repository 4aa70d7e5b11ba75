// The customer portal (UI-1): served at /portal by the service itself, talking to the
// JSON API with the session cookies and the CSRF token of the readable csrf_token cookie.
import { createClient, readCookie } from './lib/api.js';
import { barChart } from './lib/chart.js';
import {
  copyText,
  describeError,
  field,
  formatCount,
  formatDate,
  formatMoney,
  h,
  humanise,
  notify,
  replace,
  showFormSuccess,
  table,
} from './lib/dom.js';
import { actionForm, page, section } from './lib/page.js';
import { createRouter } from './lib/router.js';

const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));

/** @type {{user: {id: string, email: string | null, name: string | null, role: string}, account: {id: string, plan: string, status: string}} | null} */
let me = null;
/** @type {Promise<boolean> | null} */
let refreshing = null;

/** Renews the 15-minute access token with the refresh cookie (one attempt at a time). */
function refreshSession() {
  const csrf = readCookie('csrf_token');
  if (!csrf) return Promise.resolve(false);
  refreshing ??= fetch('/auth/refresh', { method: 'POST', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' })
    .then((response) => response.ok)
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

const api = createClient({
  csrfToken: () => readCookie('csrf_token'),
  refresh: refreshSession,
  onSignedOut: () => {
    me = null;
    renderNav();
    router.go('/portal/login?expired=1', { replace: true });
  },
});
/** Sign-up, login and password reset: a 401 there is an answer, not an expired session. */
const publicApi = createClient({ csrfToken: () => undefined });

const PUBLIC_PATHS = ['/portal/login', '/portal/signup', '/portal/reset', '/reset'];

/** @type {Promise<any> | null} */
let pricingRequest = null;
/** The public catalogue: plans, job costs and credit packs. */
function pricing() {
  pricingRequest ??= publicApi.get('/api/pricing').catch((error) => {
    pricingRequest = null;
    throw error;
  });
  return pricingRequest;
}

function renderNav() {
  if (me) {
    replace(
      nav,
      h(
        'ul',
        null,
        h('li', null, h('a', { href: '/portal', 'data-route': true }, 'Overview')),
        h('li', null, h('a', { href: '/portal/credits', 'data-route': true }, 'Credits')),
        h('li', null, h('a', { href: '/portal/plans', 'data-route': true }, 'Plans')),
        h('li', null, h('a', { href: '/portal/keys', 'data-route': true }, 'API keys')),
        h('li', null, h('a', { href: '/portal/account', 'data-route': true }, 'Account')),
        h('li', null, h('button', { type: 'button', class: 'link-button', onclick: logOut }, 'Log out')),
      ),
    );
  } else {
    replace(
      nav,
      h(
        'ul',
        null,
        h('li', null, h('a', { href: '/portal/login', 'data-route': true }, 'Log in')),
        h('li', null, h('a', { href: '/portal/signup', 'data-route': true }, 'Sign up')),
      ),
    );
  }
}

async function logOut() {
  try {
    await api.post('/auth/logout');
  } catch (error) {
    // An already-ended session is logged out all the same.
    if (/** @type {{status?: number}} */ (error).status !== 401) {
      notify(describeError(error).message);
      return;
    }
  }
  me = null;
  renderNav();
  router.go('/portal/login?loggedOut=1');
}

// --- Public pages --------------------------------------------------------------------

/** @param {URLSearchParams} query */
function loginPage(query) {
  const messages = {
    expired: 'Your session ended. Log in again.',
    loggedOut: 'You are logged out.',
    deleted: 'Your account is deleted. Thank you for having used it.',
    reset: 'Your password is changed. Log in with the new one.',
  };
  const shown = Object.entries(messages).find(([key]) => query.has(key));
  return page('Log in', () => [
    shown ? h('p', { class: 'notice-inline', role: 'status' }, shown[1]) : null,
    actionForm({
      label: 'Log in',
      fields: [
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'username' }),
        field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
      ],
      action: async (values) => {
        const signedIn = await publicApi.post('/auth/login', { email: values.email, password: values.password });
        me = { user: signedIn.user, account: signedIn.account };
        renderNav();
        router.go('/portal');
      },
    }),
    h('p', null, 'New here? ', h('a', { href: '/portal/signup', 'data-route': true }, 'Create an account'), '. ', h('a', { href: '/portal/reset', 'data-route': true }, 'Forgot your password?')),
  ]);
}

function signUpPage() {
  return page('Create an account', () => [
    actionForm({
      label: 'Sign up',
      fields: [
        field({ label: 'Name (optional)', name: 'name', autocomplete: 'name', maxlength: '200' }),
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'email' }),
        field({
          label: 'Password',
          name: 'password',
          type: 'password',
          required: true,
          autocomplete: 'new-password',
          minlength: '12',
          hint: 'At least 12 characters; a common password is refused.',
        }),
      ],
      action: async (values) => {
        const signedUp = await publicApi.post('/auth/signup', {
          email: values.email,
          password: values.password,
          ...(values.name ? { name: values.name } : {}),
        });
        me = { user: signedUp.user, account: signedUp.account };
        renderNav();
        router.go('/portal');
      },
    }),
    h('p', null, 'Already have an account? ', h('a', { href: '/portal/login', 'data-route': true }, 'Log in'), '.'),
  ]);
}

/** @param {URLSearchParams} query */
function resetPage(query) {
  const token = query.get('token');
  if (token) {
    return page('Choose a new password', () => [
      actionForm({
        label: 'Set the new password',
        fields: [field({ label: 'New password', name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: '12', hint: 'At least 12 characters.' })],
        action: async (values) => {
          try {
            await publicApi.post('/auth/password-reset/confirm', { token, password: values.password });
          } catch (error) {
            // The token is in the link, not in a field: say what to do about it.
            const details = /** @type {{details?: Array<{field: string}>}} */ (error).details ?? [];
            if (details.some((detail) => detail.field.replace(/^body\./, '') === 'token')) {
              throw new Error('This link is invalid, expired or already used. Ask for a new one below.');
            }
            throw error;
          }
          router.go('/portal/login?reset=1', { replace: true });
        },
      }),
      h('p', null, h('a', { href: '/portal/reset', 'data-route': true }, 'Ask for a new link'), '.'),
    ]);
  }
  return page('Reset your password', () => [
    h('p', null, 'We will email you a link to choose a new password. It works once, for 30 minutes.'),
    actionForm({
      label: 'Send the link',
      fields: [field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'email' })],
      action: async (values, form) => {
        await publicApi.post('/auth/password-reset', { email: values.email });
        showFormSuccess(form, 'If an account has this email, a link is on its way.');
      },
    }),
  ]);
}

// --- Overview --------------------------------------------------------------------------

/** @param {{kind: string, enabled?: boolean, limit?: number | null, period?: string}} feature */
function describeFeature(feature) {
  if (feature.kind === 'boolean') return feature.enabled ? 'Included' : 'Not included';
  const limit = feature.limit === null || feature.limit === undefined ? 'Unlimited' : formatCount(feature.limit);
  if (feature.kind === 'metered') return `${limit} a ${feature.period ?? 'period'}`;
  if (feature.kind === 'concurrency') return `${limit} at once`;
  return limit;
}

/** The account's plan from the catalogue (unknown plans read as FREE, TIER-2). */
async function currentPlan() {
  const [account, catalogue] = await Promise.all([api.get('/api/account'), pricing()]);
  const plans = /** @type {Array<any>} */ (catalogue.plans);
  const plan = plans.find((candidate) => candidate.id === account.account.plan) ?? plans.find((candidate) => candidate.id === 'FREE');
  return { account, catalogue, plan };
}

function overviewPage() {
  return page('Overview', async () => {
    const { account, plan } = await currentPlan();
    const [credits, daily] = await Promise.all([api.get('/api/credits'), api.get('/api/usage/daily?days=30')]);
    const features = Object.entries(/** @type {Record<string, any>} */ (plan?.features ?? {}));
    const counted = features.filter(([, feature]) => feature.kind !== 'boolean');
    const checks = await Promise.all(counted.map(([name]) => api.post('/api/entitlements/check', { feature: name })));

    const usageRows = checks.map((check) => {
      const limited = check.limit !== null && check.limit !== undefined;
      const label = `${humanise(check.feature)}: ${formatCount(check.used)} of ${limited ? formatCount(check.limit) : 'unlimited'}${check.resetsAt ? `, resets ${formatDate(check.resetsAt)}` : ''}`;
      const id = `usage-${check.feature}`;
      return h(
        'div',
        { class: 'usage-row' },
        h('span', { id }, label),
        limited && check.limit > 0
          ? h('meter', { min: '0', max: String(check.limit), value: String(Math.min(check.used, check.limit)), high: String(Math.ceil(check.limit * 0.8)), 'aria-labelledby': id })
          : null,
      );
    });
    const dailyFeatures = features.filter(([, feature]) => feature.kind === 'metered' && feature.period === 'day');
    const charts = dailyFeatures.map(([name, feature]) =>
      barChart({
        title: humanise(name),
        unit: 'calls',
        limit: feature.limit ?? null,
        points: daily.days.map((/** @type {any} */ day) => ({ day: day.day, value: day.counters[name] ?? 0 })),
      }),
    );
    charts.push(barChart({ title: 'Reported usage', unit: 'units', points: daily.days.map((/** @type {any} */ day) => ({ day: day.day, value: day.quantity })) }));

    const subscription = account.subscription;
    return [
      section(
        'Your plan',
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Plan'),
          h('dd', { 'data-testid': 'plan-name' }, plan ? `${plan.name} (${plan.id})` : account.account.plan),
          h('dt', null, 'Price'),
          h('dd', null, plan && plan.priceCents > 0 ? `${formatMoney(plan.priceCents, plan.currency)} a ${plan.interval}` : 'Free'),
          h('dt', null, 'Account status'),
          h('dd', null, humanise(account.account.status)),
          h('dt', null, 'Subscription'),
          h('dd', { 'data-testid': 'subscription' }, subscription ? subscriptionText(subscription) : 'None'),
        ),
        table('Features and limits of your plan', ['Feature', 'Your plan'], features.map(([name, feature]) => [humanise(name), describeFeature(feature)])),
        h('p', null, h('a', { href: '/portal/plans', 'data-route': true }, 'Change plan')),
      ),
      section('Usage against your limits', ...(usageRows.length > 0 ? usageRows : [h('p', { class: 'empty' }, 'Your plan has no counted features.')])),
      section('Usage over the last 30 days', ...charts),
      section(
        'Credits',
        h('p', null, 'Balance: ', h('strong', { 'data-testid': 'overview-balance' }, formatCount(credits.balance)), ` credits (${formatCount(credits.held)} held for running jobs).`),
        h('p', null, h('a', { href: '/portal/credits', 'data-route': true }, 'See the ledger or buy credits')),
      ),
    ];
  });
}

/** @param {{status: string, cancelAtPeriodEnd?: boolean, currentPeriodEnd?: string, plan?: string}} subscription */
function subscriptionText(subscription) {
  const plan = subscription.plan ? `${subscription.plan}, ` : '';
  if (subscription.cancelAtPeriodEnd) return `${plan}${humanise(subscription.status)}: ends on ${formatDate(subscription.currentPeriodEnd)}`;
  return `${plan}${humanise(subscription.status)}${subscription.currentPeriodEnd ? `, renews on ${formatDate(subscription.currentPeriodEnd)}` : ''}`;
}

// --- Checkout (credit packs and plans) --------------------------------------------------

const CHECKOUT_KEY = 'bulwark.checkout';

/**
 * Starts Stripe Checkout (the sandbox's hosted page in sandbox mode). What to look for on
 * return (the balance or the plan before) is kept in this tab's sessionStorage: no secret.
 * @param {{plan?: string, creditPack?: string}} body
 */
async function startCheckout(body) {
  const [credits, account] = await Promise.all([api.get('/api/credits'), api.get('/api/account')]);
  const session = await api.post('/api/billing/checkout', body);
  sessionStorage.setItem(
    CHECKOUT_KEY,
    JSON.stringify({ creditPack: body.creditPack ?? null, plan: body.plan ?? null, balanceBefore: credits.balance, planBefore: account.account.plan, sessionId: session.sessionId }),
  );
  location.assign(session.url);
}

/**
 * Back from checkout (Stripe's success URL is /portal?checkout=success): the result shows
 * once Stripe's webhook has landed (PAY-3: never from the return URL alone). Polls the
 * account for a bounded time, then says what it saw. @param {HTMLElement} status
 */
async function followCheckout(status) {
  /** @type {{creditPack: string | null, plan: string | null, balanceBefore: number, planBefore: string}} */
  const before = JSON.parse(sessionStorage.getItem(CHECKOUT_KEY) ?? 'null') ?? { creditPack: null, plan: null, balanceBefore: 0, planBefore: '' };
  for (let attempt = 0; attempt < 30; attempt += 1) {
    const [credits, account] = await Promise.all([api.get('/api/credits'), api.get('/api/account')]);
    if (before.creditPack && credits.balance > before.balanceBefore) {
      sessionStorage.removeItem(CHECKOUT_KEY);
      return `Payment confirmed: ${formatCount(credits.balance - before.balanceBefore)} credits added, your balance is now ${formatCount(credits.balance)} credits.`;
    }
    if (before.plan && account.account.plan === before.plan) {
      sessionStorage.removeItem(CHECKOUT_KEY);
      return `Payment confirmed: you are now on ${account.account.plan}.`;
    }
    if (!before.creditPack && !before.plan) return 'Payment received. It shows here once Stripe confirms it.';
    replace(status, `Waiting for the payment to be confirmed… (${attempt + 1})`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return 'The payment is not confirmed yet. It can take a minute; reload this page later.';
}

/** The overview with what checkout came back with. @param {URLSearchParams} query */
async function overviewAfterCheckout(query) {
  const outcome = query.get('checkout');
  // The return URL is not kept: a reload must not look like a second payment.
  history.replaceState(null, '', '/portal');
  if (outcome === 'canceled') {
    sessionStorage.removeItem(CHECKOUT_KEY);
    await overviewPage();
    notify('Checkout was canceled: nothing was charged.', 'info');
    return;
  }
  await page('Payment', () => [h('p', { role: 'status', 'aria-live': 'polite', 'data-testid': 'checkout-status' }, 'Waiting for the payment to be confirmed…')]);
  const status = /** @type {HTMLElement} */ (document.querySelector('[data-testid="checkout-status"]'));
  let message;
  try {
    message = await followCheckout(status);
  } catch (error) {
    message = describeError(error).message;
  }
  // Unless the person went elsewhere meanwhile.
  if (location.pathname !== '/portal') return;
  await overviewPage();
  notify(message, message.startsWith('Payment confirmed') ? 'success' : 'info');
}

// --- Credits ---------------------------------------------------------------------------

/** @param {{kind: string, amount: number, grantId: string | null, reservationId: string | null, createdAt: string}} entry */
function ledgerRow(entry) {
  return [formatDate(entry.createdAt), humanise(entry.kind), h('span', { class: entry.amount < 0 ? 'negative' : 'positive' }, `${entry.amount > 0 ? '+' : ''}${formatCount(entry.amount)}`), entry.reservationId ?? entry.grantId ?? ''];
}

function creditsPage() {
  return page('Credits', async () => {
    const [credits, ledger, catalogue] = await Promise.all([api.get('/api/credits'), api.get('/api/credits/ledger?limit=20'), pricing()]);
    const ledgerBody = h('div', null, ledgerTable(ledger.items));
    const more = h('div', null);
    /** @param {string | null} cursor */
    const moreButton = (cursor) =>
      cursor
        ? h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              onclick: async () => {
                try {
                  const next = await api.get(`/api/credits/ledger?limit=20&cursor=${encodeURIComponent(cursor)}`);
                  ledger.items.push(...next.items);
                  replace(ledgerBody, ledgerTable(ledger.items));
                  replace(more, moreButton(next.nextCursor));
                } catch (error) {
                  notify(describeError(error).message);
                }
              },
            },
            'Show older entries',
          )
        : null;
    replace(more, moreButton(ledger.nextCursor));
    const packs = /** @type {Array<any>} */ (catalogue.creditPacks);
    return [
      section(
        'Balance',
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Spendable now'),
          h('dd', { 'data-testid': 'balance' }, `${formatCount(credits.balance)} credits`),
          h('dt', null, 'Held for running jobs'),
          h('dd', { 'data-testid': 'held' }, `${formatCount(credits.held)} credits`),
        ),
        table(
          'Your credit grants',
          ['Source', 'Granted', 'Left', 'Expires'],
          credits.grants.map((/** @type {any} */ grant) => [humanise(grant.source), formatCount(grant.amount), formatCount(grant.remaining), grant.expiresAt ? formatDate(grant.expiresAt) : 'Never']),
          { empty: 'No credits yet.' },
        ),
      ),
      section(
        'Buy credits',
        packs.length === 0
          ? h('p', { class: 'empty' }, 'No credit packs are on sale.')
          : h(
              'ul',
              { class: 'choices' },
              packs.map((pack) =>
                h(
                  'li',
                  null,
                  actionForm({
                    label: `Buy ${pack.name}: ${formatCount(pack.credits)} credits for ${formatMoney(pack.priceCents, pack.currency)}`,
                    fields: [],
                    className: 'inline',
                    action: () => startCheckout({ creditPack: pack.id }),
                  }),
                ),
              ),
            ),
      ),
      section('Ledger', h('p', null, 'Every movement of your credits, newest first.'), ledgerBody, more),
    ];
  });
}

/** @param {Array<any>} items */
function ledgerTable(items) {
  return table('Credit ledger', ['When', 'What', 'Credits', 'Reference'], items.map(ledgerRow), { empty: 'No movements yet.' });
}

// --- Plans -----------------------------------------------------------------------------

const LIVE_SUBSCRIPTION = ['trialing', 'active', 'past_due', 'unpaid', 'paused'];

/**
 * The account's subscription (GET /api/billing/subscription, as stored from Stripe's
 * webhooks), or `known` when a change was just answered by Stripe and its webhook may not
 * have landed yet.
 * @param {any} [known]
 */
async function subscriptionOf(known) {
  if (known !== undefined) return known;
  return (await api.get('/api/billing/subscription')).subscription;
}

/** @param {{subscription?: any}} [after] what the last change answered */
function plansPage(after = {}) {
  return page('Plans', async () => {
    const [{ account, catalogue, plan }, subscription] = await Promise.all([currentPlan(), subscriptionOf(after.subscription)]);
    const live = subscription && LIVE_SUBSCRIPTION.includes(subscription.status);
    const owner = me?.user.role === 'owner';
    const plans = /** @type {Array<any>} */ (catalogue.plans).filter((candidate) => candidate.priceCents > 0 || candidate.id === 'FREE');
    const subscriptionSection = section(
      'Your subscription',
      h('p', { 'data-testid': 'subscription-status' }, subscription ? subscriptionText(subscription) : `No subscription: you are on ${plan?.name ?? account.account.plan}.`),
      subscription && subscription.trialEnd && subscription.status === 'trialing' ? h('p', null, `Free trial until ${formatDate(subscription.trialEnd)}.`) : null,
      !owner && live ? h('p', { class: 'hint' }, 'Only the account owner can change the subscription.') : null,
      owner && live && !subscription.cancelAtPeriodEnd
        ? actionForm({
            label: 'Cancel at the end of the period',
            fields: [],
            className: 'inline',
            action: async () => {
              if (!confirm('Cancel your subscription? You keep your plan until the end of the period you paid for.')) return;
              const answer = await api.post('/api/billing/cancel');
              await plansPage({ subscription: answer.subscription });
              notify(`Cancelled: you keep ${answer.subscription.plan ?? 'your plan'} until ${formatDate(answer.subscription.currentPeriodEnd)}, then move to Free.`, 'success');
            },
          })
        : null,
      owner && live && subscription.cancelAtPeriodEnd
        ? actionForm({
            label: 'Resume the subscription',
            fields: [],
            className: 'inline',
            action: async () => {
              const answer = await api.post('/api/billing/resume');
              await plansPage({ subscription: answer.subscription });
              notify(`Resumed: your subscription renews on ${formatDate(answer.subscription.currentPeriodEnd)}.`, 'success');
            },
          })
        : null,
    );
    /** @param {any} candidate */
    const action = (candidate) => {
      if (candidate.id === plan?.id) return h('p', { class: 'badge' }, 'Your plan');
      if (candidate.priceCents <= 0 || !owner) return null;
      if (live) {
        // A live subscription changes plan in place, prorated (PAY-5).
        return actionForm({
          label: `Switch to ${candidate.name}`,
          fields: [],
          className: 'inline',
          action: async () => {
            if (!confirm(`Switch to ${candidate.name}? The difference is prorated on your next invoice.`)) return;
            const answer = await api.post('/api/billing/change-plan', { plan: candidate.id });
            await plansPage({ subscription: answer.subscription });
            notify(`Switching to ${candidate.name}: your plan changes as soon as Stripe confirms it.`, 'success');
          },
        });
      }
      return actionForm({ label: `Upgrade to ${candidate.name}`, fields: [], className: 'inline', action: () => startCheckout({ plan: candidate.id }) });
    };
    return [
      subscriptionSection,
      section(
        'Choose a plan',
        h(
          'ul',
          { class: 'plan-grid' },
          plans.map((candidate) =>
            h(
              'li',
              { class: candidate.id === plan?.id ? 'plan current' : 'plan' },
              h('h3', null, candidate.name),
              h('p', { class: 'price' }, candidate.priceCents > 0 ? `${formatMoney(candidate.priceCents, candidate.currency)} a ${candidate.interval}` : 'Free'),
              h(
                'ul',
                { class: 'plan-features' },
                Object.entries(/** @type {Record<string, any>} */ (candidate.features)).map(([name, feature]) => h('li', null, `${humanise(name)}: ${describeFeature(feature)}`)),
              ),
              action(candidate),
            ),
          ),
        ),
      ),
    ];
  });
}

// --- API keys --------------------------------------------------------------------------

function keysPage() {
  return page('API keys', async () => {
    const list = h('div', null);
    const secretPanel = h('div', { 'aria-live': 'polite' });
    async function refreshList() {
      const keys = await api.get('/api/keys');
      replace(
        list,
        table(
          'Your API keys',
          ['Label', 'Prefix', 'Created', 'Last used', 'State', ''],
          keys.items.map((/** @type {any} */ key) => [
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
                      if (!confirm(`Revoke the key ${key.label ?? key.prefix}? Programs using it stop working within a second.`)) return;
                      try {
                        await api.delete(`/api/keys/${encodeURIComponent(key.id)}`);
                        await refreshList();
                        notify(`The key ${key.label ?? key.prefix} is revoked.`, 'success');
                      } catch (error) {
                        notify(describeError(error).message);
                      }
                    },
                  },
                  'Revoke',
                ),
          ]),
          { empty: 'No keys yet.' },
        ),
      );
    }
    await refreshList();
    return [
      section(
        'Create a key',
        h('p', null, 'Keys let your programs call the API as your account (header X-API-Key).'),
        actionForm({
          label: 'Create the key',
          fields: [field({ label: 'Label', name: 'label', maxlength: '100', hint: 'What the key is for, e.g. "build server".' })],
          action: async (values, form) => {
            const issued = await api.post('/api/keys', values.label ? { label: values.label } : {});
            form.reset();
            const secret = h('code', { class: 'secret', 'data-testid': 'new-secret' }, issued.secret);
            const copied = h('span', { role: 'status', class: 'copy-status' });
            replace(
              secretPanel,
              h(
                'div',
                { class: 'secret-panel' },
                h('p', null, h('strong', null, 'Copy this key now: it is shown only once.')),
                secret,
                h(
                  'button',
                  {
                    type: 'button',
                    onclick: async () => replace(copied, (await copyText(issued.secret)) ? 'Copied.' : 'Could not copy: select the key and copy it by hand.'),
                  },
                  'Copy the key',
                ),
                copied,
              ),
            );
            await refreshList();
          },
        }),
        secretPanel,
      ),
      section('Your keys', list),
    ];
  });
}

// --- Account: export and delete ----------------------------------------------------------

function accountPage() {
  return page('Account', () => [
    section(
      'You',
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Email'),
        h('dd', null, me?.user.email ?? '—'),
        h('dt', null, 'Role'),
        h('dd', null, humanise(me?.user.role ?? '')),
        h('dt', null, 'Account id'),
        h('dd', null, h('code', null, me?.account.id ?? '')),
      ),
    ),
    section(
      'Export your data',
      h('p', null, 'Everything we hold about you and your account, as one JSON file.'),
      actionForm({
        label: 'Download my data',
        fields: [],
        className: 'inline',
        action: async (_values, form) => {
          const response = await api.getRaw('/api/account/export');
          const blob = await response.blob();
          const name = /filename="?([^";]+)"?/.exec(response.headers.get('Content-Disposition') ?? '')?.[1] ?? `account-export-${me?.account.id ?? 'account'}.json`;
          const link = h('a', { href: URL.createObjectURL(blob), download: name, class: 'visually-hidden' }, 'download');
          document.body.append(link);
          /** @type {HTMLAnchorElement} */ (link).click();
          link.remove();
          showFormSuccess(form, `Downloaded ${name}.`);
        },
      }),
    ),
    section(
      'Delete your account',
      h('p', null, 'This ends every session and key, deletes your personal data and cannot be undone. Records the law requires us to keep are kept without your name or email.'),
      actionForm({
        label: 'Delete my account',
        className: 'stack danger-zone',
        fields: [field({ label: 'Your password, to confirm', name: 'password', type: 'password', required: true, autocomplete: 'current-password' })],
        action: async (values) => {
          if (!confirm('Delete your account for good?')) return;
          await api.post('/api/account/delete', { password: values.password });
          me = null;
          renderNav();
          router.go('/portal/login?deleted=1', { replace: true });
        },
      }),
    ),
  ]);
}

function notFoundPage() {
  void page('Page not found', () => [h('p', null, 'There is no such page. ', h('a', { href: '/portal', 'data-route': true }, 'Go to the overview'), '.')]);
}

const router = createRouter({
  before: async (path) => {
    if (PUBLIC_PATHS.includes(path)) return true;
    if (me) return true;
    try {
      if (!readCookie('csrf_token')) throw new Error('not signed in');
      me = await api.get('/auth/me');
      renderNav();
      return true;
    } catch {
      me = null;
      renderNav();
      router.go('/portal/login', { replace: true });
      return false;
    }
  },
  routes: [
    { pattern: /^\/portal\/login$/, render: (_match, query) => loginPage(query) },
    { pattern: /^\/portal\/signup$/, render: () => signUpPage() },
    { pattern: /^\/(portal\/)?reset$/, render: (_match, query) => resetPage(query) },
    { pattern: /^\/portal$/, render: (_match, query) => (query.has('checkout') ? overviewAfterCheckout(query) : overviewPage()) },
    { pattern: /^\/portal\/credits$/, render: () => creditsPage() },
    { pattern: /^\/portal\/plans$/, render: () => plansPage() },
    { pattern: /^\/portal\/keys$/, render: () => keysPage() },
    { pattern: /^\/portal\/account$/, render: () => accountPage() },
    { pattern: /^\/portal\/checkout\/return$/, render: (_match, query) => overviewAfterCheckout(new URLSearchParams({ checkout: query.get('checkout') ?? 'success' })) },
  ],
  notFound: notFoundPage,
});

renderNav();
void router.render();
