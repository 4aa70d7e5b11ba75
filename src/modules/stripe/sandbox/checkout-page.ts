import type Stripe from 'stripe';

/**
 * The sandbox's hosted checkout page: server-rendered HTML with a plain form, no script
 * and no inline style, so it works under the service's CSP (default-src 'self').
 */

export interface CheckoutView {
  readonly session: Stripe.Checkout.Session;
  readonly lineItems: ReadonlyArray<{ description: string | null; quantity: number | null; unitAmount: number; currency: string; interval: string | null }>;
  readonly trialDays: number | null;
  readonly amountDue: number;
  readonly needsCard: boolean;
}

const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** Integer minor units as a decimal string (1500 usd -> "15.00 USD"), without floating point. */
export function formatAmount(amount: number, currency: string): string {
  const code = currency.toUpperCase();
  if (ZERO_DECIMAL.has(currency.toLowerCase())) return `${amount} ${code}`;
  const sign = amount < 0 ? '-' : '';
  const magnitude = Math.abs(amount);
  return `${sign}${Math.floor(magnitude / 100)}.${String(magnitude % 100).padStart(2, '0')} ${code}`;
}

const CARDS: ReadonlyArray<[string, string]> = [
  ['4242 4242 4242 4242', 'succeeds'],
  ['4000 0000 0000 0002', 'is declined'],
  ['4000 0025 0000 3155', 'requires authentication'],
  ['4000 0000 0000 0341', 'is saved, but later charges fail'],
];

export function renderCheckoutPage(view: CheckoutView, message?: { kind: 'error' | 'info'; text: string }): string {
  const { session } = view;
  const id = escapeHtml(session.id);
  const items = view.lineItems
    .map((item) => {
      const every = item.interval ? ` / ${escapeHtml(item.interval)}` : '';
      return `<tr><td>${escapeHtml(item.description ?? 'Item')}</td><td>${item.quantity ?? 1}</td><td>${escapeHtml(formatAmount(item.unitAmount, item.currency))}${every}</td></tr>`;
    })
    .join('');
  const due = formatAmount(view.amountDue, session.currency ?? 'usd');
  const trial = view.trialDays ? `<p class="trial">${view.trialDays}-day free trial: nothing is charged today.</p>` : '';
  const notice = message ? `<p class="${message.kind}" role="alert">${escapeHtml(message.text)}</p>` : '';
  let body: string;
  if (session.status !== 'open') {
    body = `<p class="info">This checkout session is ${escapeHtml(session.status ?? 'closed')}.</p>`;
  } else {
    const email = session.customer_email ?? '';
    const promotion = session.allow_promotion_codes
      ? `<label>Promotion code <input name="promotionCode" autocomplete="off" maxlength="100"></label>`
      : '';
    const card = view.needsCard
      ? `<label>Card number <input name="card" inputmode="numeric" autocomplete="off" maxlength="23" required placeholder="4242 4242 4242 4242"></label>`
      : `<label>Card number (optional) <input name="card" inputmode="numeric" autocomplete="off" maxlength="23"></label>`;
    const cancel = session.cancel_url ? `<a class="cancel" href="${escapeHtml(session.cancel_url)}">Cancel</a>` : '';
    body = `<form method="post" action="/sandbox/checkout/${id}/pay">
<label>Email <input name="email" type="email" maxlength="254" value="${escapeHtml(email)}"></label>
<label>Name on card <input name="name" maxlength="200"></label>
${card}
${promotion}
<button type="submit">${view.amountDue > 0 ? `Pay ${escapeHtml(due)}` : 'Start trial'}</button>
${cancel}
</form>
<details><summary>Test cards</summary><ul>${CARDS.map(([number, what]) => `<li><code>${number}</code> ${what}</li>`).join('')}</ul></details>`;
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox checkout</title>
<link rel="stylesheet" href="/sandbox/assets/checkout.css">
</head>
<body>
<main>
<h1>Sandbox checkout</h1>
<p class="badge">Local Stripe sandbox: no real payment is made.</p>
<table><thead><tr><th>Item</th><th>Qty</th><th>Price</th></tr></thead><tbody>${items}</tbody></table>
${trial}
<p class="total">Due today: <strong>${escapeHtml(due)}</strong></p>
${notice}
${body}
</main>
</body>
</html>
`;
}

export const CHECKOUT_CSS = `body{font-family:system-ui,sans-serif;background:#f6f8fa;color:#1f2328;margin:0}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
h1{font-size:1.4rem;margin-top:0}.badge{background:#fff8c5;padding:.4rem .6rem;border-radius:4px;font-size:.85rem}
table{width:100%;border-collapse:collapse;margin:1rem 0}th,td{text-align:left;padding:.3rem 0;border-bottom:1px solid #eee}
label{display:block;margin:.8rem 0}input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.2rem;font-size:1rem}
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#635bff;color:#fff;border:0;border-radius:4px;cursor:pointer}
.cancel{margin-left:1rem}.error{color:#b3261e;font-weight:600}.info{color:#0a5}.total{font-size:1.1rem}code{font-size:.9rem}
`;
