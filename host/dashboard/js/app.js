// Entry point: the layout's wiring (skip link, nav, sign-out) and the hash router.
//
// Routes: #/ fleet, #/pools/{pool_id}, #/endpoints/{endpoint_id}, #/plugins. Without a token
// in sessionStorage every route shows the sign-in page, and the route is kept for afterwards.

import { session, onUnauthorized } from '/js/api.js';
import { h, refreshTimes, errorRegion, showError } from '/js/ui.js';
import * as signin from '/js/pages/signin.js';
import * as fleet from '/js/pages/fleet.js';
import * as pool from '/js/pages/pool.js';
import * as endpoint from '/js/pages/endpoint.js';
import * as plugins from '/js/pages/plugins.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signOut = document.getElementById('sign-out');

const ROUTES = [
  { pattern: /^#?\/?$/, page: fleet, section: 'fleet' },
  { pattern: /^#\/pools\/([^/?#]+)$/, page: pool, section: 'fleet' },
  { pattern: /^#\/endpoints\/([^/?#]+)$/, page: endpoint, section: 'fleet' },
  { pattern: /^#\/plugins$/, page: plugins, section: 'plugins' },
];

const notFound = {
  render(ctx) {
    ctx.setTitle('Page not found');
    ctx.root.append(
      h('h1', {}, 'Page not found'),
      h('p', {}, 'Nothing lives at this address. ', h('a', { href: '#/' }, 'Go to the fleet'), '.'));
  },
};

let current = null;
let flash = null;
let firstRoute = true;

function teardown() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups.splice(0)) {
    try { fn(); } catch (err) { console.error(err); }
  }
  current = null;
}

function match(hash) {
  for (const { pattern, page, section } of ROUTES) {
    const m = hash.match(pattern);
    if (!m) continue;
    try {
      return { page, section, params: m.slice(1).map(decodeURIComponent) };
    } catch {
      return { page: notFound, section: null, params: [] };
    }
  }
  return { page: notFound, section: null, params: [] };
}

function markNav(section) {
  for (const link of nav.querySelectorAll('a[data-nav]')) {
    if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route() {
  teardown();
  const signedIn = Boolean(session.get());
  nav.hidden = !signedIn;
  const { page, section, params } = signedIn ? match(window.location.hash || '#/') : { page: signin, section: null, params: [] };
  markNav(section);

  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  const root = h('div', { class: 'page' });
  main.replaceChildren(root);
  const message = flash;
  flash = null;
  const ctx = {
    root,
    params,
    signal: controller.signal,
    flash: message,
    onCleanup: (fn) => cleanups.push(fn),
    setTitle: (text) => { document.title = `${text} · pacsync`; },
    navigate: (hash) => {
      if (window.location.hash === hash) route();
      else window.location.hash = hash;
    },
    signedIn: () => route(),
  };
  try {
    const pending = page.render(ctx);
    if (pending && typeof pending.catch === 'function') pending.catch((err) => pageError(root, err));
  } catch (err) {
    pageError(root, err);
  }
  // After navigating, focus the new page (unless it focused a field itself, like sign-in).
  if (!firstRoute && !main.contains(document.activeElement)) main.focus();
  firstRoute = false;
}

function pageError(root, err) {
  if (err && err.name === 'AbortError') return;
  console.error(err);
  const region = errorRegion('page-error');
  showError(region, err);
  root.prepend(region);
}

onUnauthorized((err) => {
  if (!session.get()) return;
  session.clear();
  flash = { kind: 'alert', text: `You were signed out: ${err.detail}${err.code ? ` (${err.code})` : ''}. Sign in again with a valid admin token.` };
  route();
});

signOut.addEventListener('click', () => {
  session.clear();
  flash = { kind: 'status', text: 'You signed out. The token was removed from this tab.' };
  route();
});

// The skip link targets #main, which the router would read as a route: focus main instead.
document.querySelector('.skip-link')?.addEventListener('click', (ev) => {
  ev.preventDefault();
  main.focus();
  main.scrollIntoView();
});

window.addEventListener('hashchange', route);
setInterval(() => refreshTimes(main), 30000);
route();
