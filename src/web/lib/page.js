// Page building blocks shared by the portal and the dashboard.
import { clearFormError, clearNotice, describeError, formStatus, formValues, h, replace, showFormError } from './dom.js';

/**
 * Renders a page into <main>: its heading and a loading line at once, then what `build`
 * returns, or the error it threw as a readable message (never a blank page).
 * @param {string} title @param {() => Promise<Array<Node | null>> | Array<Node | null>} build
 */
export async function page(title, build) {
  const main = /** @type {HTMLElement} */ (document.getElementById('main'));
  clearNotice();
  replace(main, h('h1', null, title), h('p', { class: 'loading' }, 'Loading…'));
  try {
    const content = await build();
    replace(main, h('h1', null, title), ...content);
  } catch (error) {
    replace(main, h('h1', null, title), h('p', { class: 'error-text' }, describeError(error).message));
  }
}

/** A titled card, labelled by its heading. @param {string} title @param {...(Node | string | null | false | undefined | Array<Node | string | null>)} content */
export function section(title, ...content) {
  const id = `section-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h2', { id }, title), ...content);
}

/**
 * A form whose submit runs `action`; its button is busy meanwhile and errors show in it.
 * @param {{label: string, fields: Node[], action: (values: Record<string, string>, form: HTMLFormElement) => Promise<void>, className?: string}} options
 */
export function actionForm(options) {
  const button = h('button', { type: 'submit' }, options.label);
  const form = /** @type {HTMLFormElement} */ (h('form', { class: options.className ?? 'stack', novalidate: true }, ...options.fields, button, formStatus()));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    // The page's last notice speaks of an earlier action: it goes as this one starts.
    clearNotice();
    clearFormError(form);
    button.setAttribute('disabled', '');
    button.setAttribute('aria-busy', 'true');
    try {
      await options.action(formValues(form), form);
    } catch (error) {
      showFormError(form, error);
    } finally {
      button.removeAttribute('disabled');
      button.removeAttribute('aria-busy');
    }
  });
  return form;
}
