// A small History API router shared by the portal and the dashboard: real links that
// work with a reload (the service serves the same page under every sub-path), focus
// moved to the new page's heading so keyboard and screen-reader users know it changed.

/**
 * @typedef {{pattern: RegExp, render: (match: RegExpMatchArray, query: URLSearchParams) => Promise<void> | void}} Route
 */

/**
 * @param {{routes: Route[], notFound: () => void, before?: (path: string) => Promise<boolean> | boolean}} options
 */
export function createRouter(options) {
  let current = 0;

  async function render() {
    const generation = ++current;
    const path = location.pathname.replace(/\/+$/, '') || '/';
    if (options.before && !(await options.before(path))) return;
    if (generation !== current) return;
    const query = new URLSearchParams(location.search);
    for (const route of options.routes) {
      const match = path.match(route.pattern);
      if (match) {
        await route.render(match, query);
        focusHeading();
        markCurrentLink(path);
        return;
      }
    }
    options.notFound();
    focusHeading();
  }

  /** @param {string} to @param {{replace?: boolean}} [navigation] */
  function go(to, navigation = {}) {
    if (navigation.replace) history.replaceState(null, '', to);
    else history.pushState(null, '', to);
    void render();
  }

  document.addEventListener('click', (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[data-route]') : null;
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(/** @type {HTMLAnchorElement} */ (link).getAttribute('href') ?? '/');
  });
  window.addEventListener('popstate', () => void render());
  return { render, go };
}

function focusHeading() {
  const heading = document.querySelector('main h1');
  if (heading instanceof HTMLElement) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
    document.title = `${heading.textContent ?? ''} · ${document.body.dataset.app ?? 'Bulwark'}`;
  }
}

/** @param {string} path */
function markCurrentLink(path) {
  for (const link of document.querySelectorAll('nav a[data-route]')) {
    const href = link.getAttribute('href') ?? '';
    const here = href === path || (href !== '/portal' && href !== '/admin' && path.startsWith(`${href}/`));
    if (here) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}
