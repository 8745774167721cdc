// Client-side navigation: a path → its page (the table comes from app.js),
// the navigation bar, sign-in redirects, and the page's ready state that
// screen readers and the browser tests follow.

import { api, can, loadMe, state } from './api.js';
import { append, h, page, showError } from './dom.js';

let resolve = () => ['not-found', 'Not found', notFound];

function notFound(main) {
  append(main, h('p', {}, 'There is no such page. ', h('a', { href: '/system', 'data-link': true }, 'Go to the system page'), '.'));
}

// The page for a path: [name, title, view(main)].
function route(path) {
  return resolve(path) || ['not-found', 'Not found', notFound];
}

export function go(path) {
  history.pushState(null, '', path);
  render();
}

export function renderNav() {
  const nav = document.getElementById('nav');
  if (!nav) return;
  if (!state.me) { nav.replaceChildren(); return; }
  const here = location.pathname;
  const link = (href, text) => h('a', { href, 'data-link': true, 'aria-current': (here === href || (href === '/system' && here === '/')) ? 'page' : null }, text);
  nav.replaceChildren(h('ul', {},
    h('li', {}, link('/system', 'System')),
    can('records:read') ? h('li', {}, link('/collections', 'Collections')) : null,
    can('users:read') ? h('li', {}, link('/users', 'Users')) : null,
    can('records:export') ? h('li', {}, link('/exports', 'Exports')) : null,
    can('records:write') ? h('li', {}, link('/imports', 'Imports')) : null,
    can('jobs:manage') ? h('li', {}, link('/jobs', 'Jobs')) : null,
    can('webhooks:manage') ? h('li', {}, link('/webhooks', 'Webhooks')) : null,
    can('audit:read') ? h('li', {}, link('/audit', 'Audit log')) : null,
    h('li', {}, link('/account', 'My account')),
    h('li', { class: 'who' }, `${state.me.user.username} (${state.me.user.role})`),
    h('li', {}, h('button', { type: 'button', id: 'signout', class: 'link-button', onclick: signOut }, 'Sign out'))));
}

// Forgets the session in this tab and shows the sign-in page.
export function signedOut() {
  state.me = null;
  state.csrf = null;
  go('/login');
}

async function signOut() {
  try { await api('POST', '/api/v1/auth/logout', {}); } catch (e) { /* the session may already be gone */ }
  signedOut();
}

export async function render() {
  const main = document.getElementById('main');
  const path = location.pathname;
  const [name, title, view] = route(path);
  main.dataset.ready = 'false';
  main.dataset.page = name;
  main.setAttribute('aria-busy', 'true');
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  if (!state.me && name !== 'login' && name !== 'setup' && name !== 'reset-password') {
    try {
      await loadMe();
    } catch (e) {
      if (e.status === 401) {
        const setup = await api('GET', '/api/v1/setup').catch(() => ({ setup_required: false }));
        const target = setup.setup_required ? '/setup' : `/login?next=${encodeURIComponent(path + location.search)}`;
        history.replaceState(null, '', target);
        return render();
      }
      main.replaceChildren(...page('The console cannot load'));
      showError(e);
      finish(main, 'error', 'Error');
      return;
    }
  }
  renderNav();
  const content = [];
  if (state.me && state.me.mfa_enrolment_required && name !== 'account') {
    content.push(h('p', { class: 'banner', role: 'note' },
      'An administrator requires two-factor authentication for every account. ',
      h('a', { href: '/account', 'data-link': true }, 'Set it up under My account'),
      ' to continue.'));
  }
  main.replaceChildren(...content, ...page(title));
  try {
    await view(main);
  } catch (e) {
    if (e.status === 401 && name !== 'login') {
      state.me = null;
      history.replaceState(null, '', `/login?next=${encodeURIComponent(path)}`);
      return render();
    }
    showError(e);
  }
  finish(main, name, title);
}

function finish(main, name, title) {
  document.title = `${title} · Mogothrow77`;
  main.dataset.page = name;
  main.setAttribute('aria-busy', 'false');
  main.dataset.ready = 'true';
  const heading = document.getElementById('page-title');
  if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
}

// Starts the console: `pages(path)` names the page of a path (or nothing).
export function start(pages) {
  resolve = pages;
  document.addEventListener('click', (event) => {
    const a = event.target.closest('a[data-link]');
    if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    go(a.getAttribute('href'));
    const heading = document.getElementById('page-title');
    if (heading) heading.focus({ preventScroll: true });
  });
  window.addEventListener('popstate', render);
  // A setup or reset link pasted into a tab already on its page changes only the hash.
  window.addEventListener('hashchange', () => {
    if (location.pathname === '/setup' || location.pathname === '/reset-password') render();
  });
  render();
}
