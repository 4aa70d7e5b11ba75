// DOM helpers for the portal and the dashboard. Text always goes in as text nodes
// (never innerHTML), so nothing the API answers can become markup or script.

/**
 * Builds an element: h('p', {class: 'note'}, 'text', child). Attributes whose value is
 * null, undefined or false are left out; `on<event>` attributes become listeners.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attributes]
 * @param {...(Node | string | number | null | undefined | false | Array<Node | string | number | null | undefined | false>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), /** @type {EventListener} */ (value));
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

/** @param {Element} parent @param {unknown[]} children */
function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. @param {Element} element @param {...unknown} children */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A whole number with thousands separators (credits, counts). @param {number} value */
export function formatCount(value) {
  return new Intl.NumberFormat('en-US').format(value);
}

/**
 * Money from an integer of the smallest unit, without binary floating point:
 * 1999 usd -> "19.99 USD" (currencies with two decimals, as the catalogue's are).
 * @param {number} cents @param {string} currency
 */
export function formatMoney(cents, currency) {
  const sign = cents < 0 ? '-' : '';
  const absolute = Math.abs(cents);
  const units = Math.trunc(absolute / 100);
  const rest = String(absolute % 100).padStart(2, '0');
  return `${sign}${formatCount(units)}.${rest} ${currency.toUpperCase()}`;
}

/**
 * "12.5" or "12.50" (units of a two-decimal currency) -> 1250 cents, by text, never through
 * binary floating point; anything else (a third decimal, a sign, "1e3") is null.
 * @param {string} text
 */
export function parseMoneyToCents(text) {
  const match = /^(\d{1,9})(?:[.,](\d{1,2}))?$/.exec(text.trim());
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/** A timestamp in the reader's locale, or a dash. @param {string | null | undefined} iso */
export function formatDate(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' }) + ' UTC';
}

/** A day (YYYY-MM-DD) as "12 May". @param {string} day */
export function formatDay(day) {
  const date = new Date(`${day}T00:00:00Z`);
  return date.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' });
}

/** feature_names_like_this -> "Feature names like this". @param {string} name */
export function humanise(name) {
  const text = name
    .replace(/[_.]+/g, ' ')
    .trim()
    .replace(/\b(api|sso|ip|id)\b/gi, (word) => word.toUpperCase());
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * A table with a caption; rows of cells (text or nodes). Wrapped so that a wide table
 * scrolls inside itself on a phone rather than the whole page.
 * @param {string} caption @param {string[]} headings @param {Array<Array<unknown>>} rows
 * @param {{empty?: string}} [options]
 */
export function table(caption, headings, rows, options = {}) {
  if (rows.length === 0) return h('p', { class: 'empty' }, options.empty ?? 'Nothing yet.');
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h(
      'table',
      null,
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, headings.map((heading) => h('th', { scope: 'col' }, heading)))),
      h('tbody', null, rows.map((cells) => h('tr', null, cells.map((cell) => h('td', null, /** @type {Node | string} */ (cell)))))),
    ),
  );
}

/** A labelled form field; `hint` is read out with the field. @param {{label: string, name: string, type?: string, required?: boolean, autocomplete?: string, hint?: string, value?: string, min?: string, max?: string, inputmode?: string, minlength?: string, maxlength?: string}} options */
export function field(options) {
  const id = `field-${options.name}-${Math.random().toString(36).slice(2, 8)}`;
  const hintId = options.hint ? `${id}-hint` : null;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, options.label),
    options.hint ? h('p', { class: 'hint', id: hintId }, options.hint) : null,
    h('input', {
      id,
      name: options.name,
      type: options.type ?? 'text',
      required: options.required ?? false,
      autocomplete: options.autocomplete ?? 'off',
      'aria-describedby': hintId,
      value: options.value,
      min: options.min,
      max: options.max,
      minlength: options.minlength,
      maxlength: options.maxlength,
      inputmode: options.inputmode,
    }),
  );
}

/** A labelled select. @param {{label: string, name: string, options: Array<[string, string]>, value?: string}} options */
export function select(options) {
  const id = `field-${options.name}-${Math.random().toString(36).slice(2, 8)}`;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, options.label),
    h('select', { id, name: options.name }, options.options.map(([value, text]) => h('option', { value, selected: value === options.value }, text))),
  );
}

/** The named values of a form as strings. @param {HTMLFormElement} form @returns {Record<string, string>} */
export function formValues(form) {
  /** @type {Record<string, string>} */
  const values = {};
  for (const [name, value] of new FormData(form).entries()) values[name] = typeof value === 'string' ? value : '';
  return values;
}

/** The field an API detail names, without its part of the request: `body.amount` -> `amount`. @param {string} field */
function fieldName(field) {
  return field.replace(/^(body|query|params)\./, '');
}

/** A sentence's first letter in capitals. @param {string} text */
function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** One field detail where no input shows it: "amount must be integer". @param {{field: string, message: string}} detail */
function detailSentence(detail) {
  return capitalise(`${fieldName(detail.field)} ${detail.message}`);
}

/** An input's label without its parenthesis: "Amount (empty: everything left)" -> "Amount". @param {HTMLInputElement} input */
function shortLabel(input) {
  const text = input.labels?.[0]?.textContent ?? input.name;
  return text.replace(/\s*\(.*\)\s*$/, '').trim() || input.name;
}

/**
 * Shows an API error in a form, each thing said once: a field-level detail beside its
 * input (aria-invalid + aria-describedby, the first such input focused), and in the
 * form's alert region which fields to correct; a detail with no input in the form, or an
 * error without details, in the alert region.
 * @param {HTMLFormElement} form @param {unknown} error
 */
export function showFormError(form, error) {
  clearFormError(form);
  const status = form.querySelector('.form-status');
  const { message, details } = describeError(error);
  /** @type {HTMLInputElement[]} */
  const marked = [];
  /** @type {string[]} */
  const elsewhere = [];
  for (const [index, detail] of details.entries()) {
    const name = fieldName(detail.field).split(/[.[]/)[0] ?? '';
    const input = /** @type {HTMLInputElement | null} */ (form.querySelector(`[name="${CSS.escape(name)}"]`));
    if (!input) {
      elsewhere.push(detailSentence(detail));
      continue;
    }
    input.setAttribute('aria-invalid', 'true');
    const note = h('p', { class: 'field-error', id: `${input.id}-error-${index}` }, capitalise(detail.message));
    // After the input and any note it already has.
    let last = /** @type {Element} */ (input);
    while (last.nextElementSibling?.classList.contains('field-error')) last = last.nextElementSibling;
    last.insertAdjacentElement('afterend', note);
    input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), note.id].filter(Boolean).join(' '));
    if (!marked.includes(input)) marked.push(input);
  }
  if (status) {
    const labels = marked.map(shortLabel);
    const pointer = labels.length === 0 ? '' : `Correct the marked field${labels.length > 1 ? 's' : ''}: ${labels.join(', ')}.`;
    status.className = 'form-status error';
    replace(status, details.length === 0 ? message : [...elsewhere.map((sentence) => `${sentence}.`), pointer].filter(Boolean).join(' '));
  }
  marked[0]?.focus();
}

/** @param {HTMLFormElement} form */
export function clearFormError(form) {
  const notes = new Set([...form.querySelectorAll('.field-error')].map((note) => note.id));
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    const rest = (input.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && !notes.has(id));
    if (rest.length > 0) input.setAttribute('aria-describedby', rest.join(' '));
    else input.removeAttribute('aria-describedby');
  }
  for (const note of form.querySelectorAll('.field-error')) note.remove();
  const status = form.querySelector('.form-status');
  if (status) {
    status.className = 'form-status';
    replace(status);
  }
}

/** @param {HTMLFormElement} form @param {string} message */
export function showFormSuccess(form, message) {
  clearFormError(form);
  const status = form.querySelector('.form-status');
  if (status) {
    status.className = 'form-status success';
    replace(status, message);
  }
}

/** The live region every form reports into. */
export function formStatus() {
  return h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
}

/**
 * A readable message and field details for anything thrown by the API client or the network.
 * @param {unknown} error
 * @returns {{message: string, details: Array<{field: string, message: string}>}}
 */
export function describeError(error) {
  const value = /** @type {{name?: string, message?: string, status?: number, code?: string, details?: Array<{field: string, message: string}>, requestId?: string, retryAfterSeconds?: number | null}} */ (error);
  if (value && value.name === 'ApiError') {
    const details = value.details ?? [];
    // The service's message of a validation error restates its first detail
    // ("amount: must be integer"): with details, the details alone, each said once.
    let message = details.length > 0 ? `${details.map(detailSentence).join('; ')}.` : (value.message ?? 'The request failed.');
    if (value.code === 'RATE_LIMITED' && value.retryAfterSeconds) message = `Too many requests: try again in ${value.retryAfterSeconds} s.`;
    if (value.code === 'NOT_FOUND' && (value.message ?? '').startsWith('No route ')) {
      message = `This server does not offer that yet (${value.message}).`;
    }
    if (value.status && value.status >= 500) message = `${message} (request ${value.requestId ?? 'unknown'})`;
    return { message, details };
  }
  if (value && value.name === 'NetworkError') return { message: 'The service could not be reached. Check your connection and try again.', details: [] };
  return { message: value?.message ?? 'Something went wrong.', details: [] };
}

/** A notice in the page's alert region, replacing the previous one. @param {string} message @param {'error' | 'success' | 'info'} [kind] */
export function notify(message, kind = 'error') {
  const region = document.getElementById('notice');
  if (!region) return;
  region.className = `notice ${kind}`;
  replace(region, message);
}

export function clearNotice() {
  const region = document.getElementById('notice');
  if (!region) return;
  region.className = 'notice';
  replace(region);
}

/** Copies text with the Clipboard API; says whether it worked. @param {string} text */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
