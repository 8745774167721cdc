// Mogothrow77 web console. Plain ES module, no dependencies, no inline
// script or style (the server's CSP forbids both). It uses the same
// /api/v1 endpoints and authorization as any integrator. Data is only ever
// put into the page as text (textContent), never as HTML.

const state = { me: null, csrf: null };

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = body && body.code;
    this.details = body && body.details;
    this.requestId = body && body.request_id;
  }
}

// `anonymous`: without the session cookie (a public operation that must
// not depend on whoever is signed in in this browser).
async function api(method, path, body, { anonymous = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.csrf && method !== 'GET' && !anonymous) headers['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: anonymous ? 'omit' : 'same-origin',
    });
  } catch (e) {
    throw new ApiError(0, { message: 'The server cannot be reached. Check the network and try again.' });
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (e) { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ---- DOM helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'for') {
      el.htmlFor = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function can(permission) {
  return !!(state.me && state.me.permissions.includes(permission));
}

function formatTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toLocaleString();
}

// A labelled input with a hint and an error slot wired to aria-describedby.
function field(id, label, attrs, hint) {
  const describedBy = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
  const input = attrs && attrs.tag === 'select'
    ? h('select', { id, name: id, 'aria-describedby': describedBy }, attrs.options)
    : h('input', Object.assign({ id, name: id, 'aria-describedby': describedBy }, attrs));
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    input,
    h('p', { class: 'field-error', id: `${id}-error` }));
}

function setFieldError(id, message) {
  const input = document.getElementById(id);
  const slot = document.getElementById(`${id}-error`);
  if (input) input.setAttribute('aria-invalid', message ? 'true' : 'false');
  if (slot) slot.textContent = message || '';
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll('.field-error')) slot.textContent = '';
  for (const input of form.querySelectorAll('[aria-invalid]')) input.setAttribute('aria-invalid', 'false');
}

// Shows an API error: next to the fields it names, and in the page's alert.
function showError(error, fieldIds) {
  let placed = false;
  const fields = (error.details && error.details.fields) || [];
  for (const f of fields) {
    const id = fieldIds && fieldIds[f.field];
    if (id) { setFieldError(id, f.message); placed = true; }
  }
  const notice = document.getElementById('notice');
  if (notice) { notice.hidden = true; notice.textContent = ''; }
  const alert = document.getElementById('alert');
  if (alert) {
    const ref = error.requestId ? ` (request id ${error.requestId})` : '';
    alert.textContent = `${error.message}${ref}`;
    alert.hidden = false;
  }
  if (placed) {
    const first = document.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  }
}

function notify(message) {
  const alert = document.getElementById('alert');
  if (alert) { alert.hidden = true; alert.textContent = ''; }
  const notice = document.getElementById('notice');
  if (notice) { notice.textContent = message; notice.hidden = false; }
}

// Disables a form's controls while a request runs.
async function busy(form, work) {
  const controls = form.querySelectorAll('button, input, select');
  for (const c of controls) c.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try { return await work(); } finally {
    for (const c of controls) c.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

function page(title, ...content) {
  return [
    h('h1', { tabindex: '-1', id: 'page-title' }, title),
    h('div', { id: 'alert', class: 'alert', role: 'alert', hidden: true }),
    h('div', { id: 'notice', class: 'notice', role: 'status', hidden: true }),
    content,
  ];
}

// ---- navigation --------------------------------------------------------

const views = {
  '/': ['system', 'System', systemView],
  '/system': ['system', 'System', systemView],
  '/login': ['login', 'Sign in', loginView],
  '/setup': ['setup', 'Create the first admin', setupView],
  '/reset-password': ['reset-password', 'Set a new password', resetPasswordView],
  '/users': ['users', 'Users', usersView],
  '/account': ['account', 'My account', accountView],
  '/audit': ['audit', 'Audit log', auditView],
  '/collections': ['collections', 'Collections', collectionsView],
  '/exports': ['exports', 'Exports', exportsView],
  '/jobs': ['jobs', 'Jobs', jobsView],
  '/webhooks': ['webhooks', 'Webhooks', webhooksView],
  '/imports': ['imports', 'Imports', importsView],
};

// Pages with a collection name in the path.
function route(path) {
  if (views[path]) return views[path];
  const m = /^\/collections\/([a-z][a-z0-9_]{0,62})(\/schema)?$/.exec(path);
  if (m && m[2]) return ['schema', `Schema of ${m[1]}`, (main) => schemaView(main, m[1])];
  if (m) return ['records', m[1], (main) => recordsView(main, m[1])];
  return ['not-found', 'Not found', notFoundView];
}

function go(path) {
  history.pushState(null, '', path);
  render();
}

async function loadMe() {
  const me = await api('GET', '/api/v1/me');
  state.me = me;
  if (me.csrf_token) state.csrf = me.csrf_token;
  return me;
}

function renderNav() {
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

async function signOut() {
  try { await api('POST', '/api/v1/auth/logout', {}); } catch (e) { /* the session may already be gone */ }
  state.me = null;
  state.csrf = null;
  go('/login');
}

async function render() {
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

// ---- views -------------------------------------------------------------

function notFoundView(main) {
  append(main, h('p', {}, 'There is no such page. ', h('a', { href: '/system', 'data-link': true }, 'Go to the system page'), '.'));
}

async function setupView(main) {
  const status = await api('GET', '/api/v1/setup');
  if (!status.setup_required) {
    append(main, h('p', {}, 'The first admin exists already. ', h('a', { href: '/login', 'data-link': true }, 'Sign in'), '.'));
    return;
  }
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (!token) {
    append(main, h('p', {}, 'Open the one-time setup link the server logged when it first started (in its terminal, or ',
      h('code', {}, 'journalctl -u mogothrow77'), '). For a new link, run ',
      h('code', {}, 'mogothrow77 admin setup-token'), ' on the server.'));
    return;
  }
  const ids = { username: 'setup-username', display_name: 'setup-display-name', password: 'setup-password' };
  const form = h('form', { id: 'setup-form', novalidate: true },
    h('p', {}, 'This account can manage users, roles and settings. Nobody else can sign up: you will create the other accounts.'),
    field('setup-username', 'Username', { autocomplete: 'username', required: true }, 'Lowercase letters, digits, ".", "_" or "-".'),
    field('setup-display-name', 'Display name (optional)', { autocomplete: 'name' }),
    field('setup-password', 'Password', { type: 'password', autocomplete: 'new-password', required: true }, 'At least 12 characters. A passphrase of several unrelated words works well.'),
    field('setup-password-confirm', 'Repeat the password', { type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit' }, 'Create the admin account'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const v = (id) => document.getElementById(id).value;
    if (!v('setup-username').trim()) return setFieldError('setup-username', 'Enter a username.');
    if (v('setup-password') !== v('setup-password-confirm')) {
      setFieldError('setup-password-confirm', 'The two passwords differ.');
      document.getElementById('setup-password-confirm').focus();
      return;
    }
    try {
      const result = await busy(form, () => api('POST', '/api/v1/setup', {
        token, username: v('setup-username').trim(), display_name: v('setup-display-name').trim(), password: v('setup-password'),
      }));
      state.csrf = result.csrf_token;
      history.replaceState(null, '', '/system');
      await loadMe();
      render();
    } catch (e) { showError(e, ids); }
  });
  append(main, form);
}

// A one-time link from `mogothrow77 admin reset-password NAME`.
async function resetPasswordView(main) {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (!token) {
    append(main, h('p', {}, 'Open the one-time link an administrator gave you. An administrator makes one with ',
      h('code', {}, 'mogothrow77 admin reset-password NAME'), ' on the server, or sets your password in the console (Users).'));
    return;
  }
  const ids = { password: 'reset-new-password' };
  const form = h('form', { id: 'reset-form', novalidate: true },
    field('reset-new-password', 'New password', { type: 'password', autocomplete: 'new-password', required: true }, 'At least 12 characters. A passphrase of several unrelated words works well.'),
    field('reset-new-password-confirm', 'Repeat the password', { type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit' }, 'Set the new password'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const v = (id) => document.getElementById(id).value;
    if (v('reset-new-password') !== v('reset-new-password-confirm')) {
      setFieldError('reset-new-password-confirm', 'The two passwords differ.');
      document.getElementById('reset-new-password-confirm').focus();
      return;
    }
    try {
      await busy(form, () => api('POST', '/api/v1/auth/password-reset', { token, password: v('reset-new-password') }, { anonymous: true }));
      // The token is spent: drop it from the address bar and history.
      history.replaceState(null, '', '/reset-password');
      form.replaceWith(h('p', { id: 'reset-done' }, 'Your password is set, and every session of your account was ended. ',
        h('a', { href: '/login', 'data-link': true }, 'Sign in'), ' with it.'));
      notify('Password set.');
    } catch (e) { showError(e, ids); }
  });
  append(main, form);
}

async function loginView(main) {
  if (state.me) { go('/system'); return; }
  let mfa = null; // null, 'totp' or 'recovery'
  const ids = { username: 'login-username', password: 'login-password' };
  const mfaStep = h('div', { id: 'mfa-step', hidden: true });
  const form = h('form', { id: 'login-form', novalidate: true },
    field('login-username', 'Username', { autocomplete: 'username', required: true }),
    field('login-password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
    mfaStep,
    h('button', { type: 'submit' }, 'Sign in'));
  const showMfa = (kind) => {
    mfa = kind;
    const totp = kind === 'totp';
    mfaStep.replaceChildren(
      totp
        ? field('login-totp', 'Code from your authenticator app', { autocomplete: 'one-time-code', inputmode: 'numeric', required: true }, 'The 6 digits shown in the app.')
        : field('login-recovery', 'Recovery code', { autocomplete: 'off', required: true }, 'One of the codes you saved when you set up two-factor authentication. Each works once.'),
      h('button', { type: 'button', class: 'link-button', id: 'mfa-switch', onclick: () => { showMfa(totp ? 'recovery' : 'totp'); } },
        totp ? 'Use a recovery code instead' : 'Use the authenticator app instead'));
    mfaStep.hidden = false;
    document.getElementById(totp ? 'login-totp' : 'login-recovery').focus();
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      username: document.getElementById('login-username').value.trim(),
      password: document.getElementById('login-password').value,
    };
    if (!body.username) return setFieldError('login-username', 'Enter your username.');
    if (!body.password) return setFieldError('login-password', 'Enter your password.');
    if (mfa === 'totp') body.totp_code = document.getElementById('login-totp').value;
    if (mfa === 'recovery') body.recovery_code = document.getElementById('login-recovery').value;
    try {
      const result = await busy(form, () => api('POST', '/api/v1/auth/login', body));
      state.csrf = result.csrf_token;
      await loadMe();
      const next = new URLSearchParams(location.search).get('next');
      go(next && next.startsWith('/') && !next.startsWith('//') ? next : '/system');
    } catch (e) {
      if (e.code === 'mfa_required') {
        showMfa('totp');
        const notice = document.getElementById('notice');
        notice.textContent = 'Your password is right. Now enter the code from your authenticator app.';
        notice.hidden = false;
        return;
      }
      showError(e, ids);
      if (e.code === 'invalid_mfa_code') setFieldError(mfa === 'totp' ? 'login-totp' : 'login-recovery', e.message);
    }
  });
  append(main, form);
}

async function systemView(main) {
  const system = await api('GET', '/api/v1/system');
  const row = (id, term, value) => [h('dt', {}, term), h('dd', { id }, value)];
  const schema = system.schema;
  append(main, h('section', { 'aria-labelledby': 'system-heading' },
    h('h2', { id: 'system-heading' }, 'This installation'),
    h('dl', { class: 'facts' },
      row('system-version', 'Version', `${system.version} (commit ${system.commit})`),
      row('system-schema', 'Database schema', `level ${schema.applied_level} applied; this binary knows level ${schema.binary_level}; ${schema.compatible ? 'compatible' : `not compatible: ${schema.message}`}`),
      row('system-database', 'PostgreSQL', `${system.database.reachable ? 'reachable' : 'unreachable'}, version ${system.database.postgresql_version}`),
      row('system-instance', 'Instance id', system.instance_id))));
  // Backups: what an auditor asks first (docs/operations.md#backups).
  const backups = system.backups || { schedule: null, drill_schedule: null, last: null, drill: null };
  const when = (stamp) => new Date(stamp).toLocaleString();
  const size = (bytes) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${bytes} bytes`);
  append(main, h('section', { 'aria-labelledby': 'backups-heading', id: 'backups' },
    h('h2', { id: 'backups-heading' }, 'Backups'),
    h('dl', { class: 'facts' },
      row('backup-schedule', 'Schedule', backups.schedule || 'none: backups are taken only by hand (backup.schedule)'),
      row('backup-last', 'Newest backup', backups.last
        ? `${when(backups.last.finished_at)}: ${backups.last.archive}, ${size(backups.last.bytes)}${backups.last.scheduled ? ', scheduled' : ''}`
        : 'none recorded'),
      row('backup-drill', 'Restore drill', backups.drill
        ? `${backups.drill.ok ? 'passed' : 'FAILED'} ${when(backups.drill.drilled_at)}: ${backups.drill.archive} restored, ${backups.drill.collections} collection(s), ${backups.drill.records} records`
        : 'never run (mogothrow77 backup drill)'),
      row('backup-drill-schedule', 'Drill schedule', backups.drill_schedule || 'none: drills run only when started (backup.drill_schedule)'))));
  // The running release's notes (CHANGELOG.md, compiled in).
  const notes = system.release_notes;
  append(main, h('section', { 'aria-labelledby': 'release-notes-heading', id: 'release-notes' },
    h('h2', { id: 'release-notes-heading' }, notes ? `Release notes: ${notes.version} (${notes.date})` : 'Release notes'),
    ...(notes
      ? notes.sections.map((section) => h('div', { class: 'release-section' },
        h('h3', {}, section.title),
        h('ul', {}, ...section.items.map((item) => h('li', {}, item)))))
      : [h('p', {}, `This build (${system.version}) carries no release notes.`)])));
  // The documentation this binary carries (also on air-gapped sites).
  const doc = (href, text) => h('li', {}, h('a', { href }, text));
  append(main, h('section', { 'aria-labelledby': 'system-docs-heading', id: 'system-docs' },
    h('h2', { id: 'system-docs-heading' }, 'Operating this installation'),
    h('ul', {},
      doc('/docs/observability.md', 'Monitoring: metrics, scraping with Prometheus'),
      doc('/docs/operations.md', 'Operations: health checks, logs, backups, jobs'),
      doc('/docs/runbooks/database-unreachable.md', 'Runbook: the database is unreachable'),
      doc('/docs/', 'All documentation'))));
  if (can('settings:manage')) {
    const settings = await api('GET', '/api/v1/settings/security');
    const checkbox = h('input', { type: 'checkbox', id: 'require-mfa', checked: settings.require_mfa });
    const form = h('form', { id: 'security-form' },
      h('h2', {}, 'Security settings'),
      h('div', { class: 'check' }, checkbox,
        h('label', { for: 'require-mfa' }, 'Require two-factor authentication for every account')),
      h('p', { class: 'hint' }, 'People without it must set it up the next time they sign in before they can do anything else.'),
      h('button', { type: 'submit' }, 'Save security settings'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const saved = await busy(form, () => api('PATCH', '/api/v1/settings/security', { require_mfa: checkbox.checked }));
        checkbox.checked = saved.require_mfa;
        notify(saved.require_mfa ? 'Two-factor authentication is now required for everyone.' : 'Two-factor authentication is now optional.');
      } catch (e) { showError(e); }
    });
    append(main, form);
  }
}

const ROLES = ['admin', 'editor', 'viewer', 'auditor'];

async function usersView(main) {
  const manage = can('users:manage');
  const list = h('div', { id: 'users-list' });
  const load = async () => {
    const users = (await api('GET', '/api/v1/users')).items;
    if (users.length === 0) { list.replaceChildren(h('p', { id: 'users-empty' }, 'No users yet.')); return; }
    list.replaceChildren(h('table', { id: 'users-table' },
      h('caption', {}, `${users.length} user${users.length === 1 ? '' : 's'}`),
      h('thead', {}, h('tr', {}, ['Username', 'Name', 'E-mail', 'Role', 'Status', 'Two-factor', 'Created', manage ? 'Actions' : null].filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, users.map((u) => userRow(u, manage, load)))));
  };
  if (manage) append(main, createUserForm(load));
  append(main, h('h2', {}, 'All users'), list);
  await load();
}

function userRow(user, manage, reload) {
  const act = async (button, work, message) => {
    button.disabled = true;
    try { await work(); notify(message); await reload(); } catch (e) { showError(e); button.disabled = false; }
  };
  const actions = [];
  if (manage) {
    const roleId = `role-${user.id}`;
    const select = h('select', { id: roleId }, ROLES.map((r) => h('option', { value: r, selected: r === user.role }, r)));
    const save = h('button', { type: 'button', 'data-action': 'set-role' }, 'Change role');
    save.addEventListener('click', () => act(save, () => api('PATCH', `/api/v1/users/${user.id}`, { role: select.value }), `${user.username} is now ${select.value}; their sessions ended.`));
    const toggle = h('button', { type: 'button', 'data-action': user.disabled ? 'enable' : 'disable' }, user.disabled ? 'Enable' : 'Disable');
    toggle.addEventListener('click', () => act(toggle, () => api('PATCH', `/api/v1/users/${user.id}`, { disabled: !user.disabled }), `${user.username} is ${user.disabled ? 'enabled' : 'disabled'}.`));
    const sessions = h('button', { type: 'button', 'data-action': 'revoke-sessions' }, 'Sign out everywhere');
    sessions.addEventListener('click', () => act(sessions, () => api('DELETE', `/api/v1/users/${user.id}/sessions`), `${user.username} was signed out everywhere.`));
    const resetMfa = user.mfa_enabled ? h('button', { type: 'button', 'data-action': 'reset-mfa' }, 'Reset two-factor') : null;
    if (resetMfa) resetMfa.addEventListener('click', () => act(resetMfa, () => api('DELETE', `/api/v1/users/${user.id}/mfa`), `Two-factor authentication was reset for ${user.username}.`));
    const emailId = `email-${user.id}`;
    const emailForm = h('form', { class: 'inline-form', 'data-action': 'set-email' },
      h('label', { for: emailId, class: 'visually-hidden' }, `E-mail address of ${user.username}`),
      h('input', { id: emailId, type: 'email', autocomplete: 'off', placeholder: 'E-mail address', value: user.email || '' }),
      h('button', { type: 'submit' }, 'Set e-mail'));
    emailForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const email = document.getElementById(emailId).value.trim();
      try {
        await busy(emailForm, () => api('PATCH', `/api/v1/users/${user.id}`, { email: email || null }));
        notify(email ? `${user.username} is notified at ${email}.` : `${user.username} has no e-mail address now.`);
        await reload();
      } catch (e) { showError(e); }
    });
    const pwId = `password-${user.id}`;
    const pwForm = h('form', { class: 'inline-form', 'data-action': 'reset-password' },
      h('label', { for: pwId, class: 'visually-hidden' }, `New password for ${user.username}`),
      h('input', { id: pwId, type: 'password', autocomplete: 'new-password', placeholder: 'New password' }),
      h('button', { type: 'submit' }, 'Set password'));
    pwForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await busy(pwForm, () => api('POST', `/api/v1/users/${user.id}/password`, { password: document.getElementById(pwId).value }));
        notify(`The password of ${user.username} was reset; their sessions ended.`);
        document.getElementById(pwId).value = '';
      } catch (e) { showError(e); }
    });
    actions.push(h('td', { class: 'actions' },
      h('label', { for: roleId, class: 'visually-hidden' }, `Role for ${user.username}`), select, save, toggle, sessions, resetMfa, emailForm, pwForm));
  }
  return h('tr', { 'data-username': user.username },
    h('th', { scope: 'row' }, user.username),
    h('td', {}, user.display_name || '—'),
    h('td', { 'data-field': 'email' }, user.email || '—'),
    h('td', { 'data-field': 'role' }, user.role),
    h('td', { 'data-field': 'status' }, user.disabled ? 'disabled' : 'active'),
    h('td', {}, user.mfa_enabled ? 'on' : 'off'),
    h('td', {}, formatTime(user.created_at)),
    actions);
}

function createUserForm(reload) {
  const ids = { username: 'new-username', display_name: 'new-display-name', role: 'new-role', password: 'new-password', email: 'new-email' };
  const form = h('form', { id: 'user-create-form', novalidate: true },
    h('h2', {}, 'Create a user'),
    h('div', { class: 'grid' },
      field('new-username', 'Username', { autocomplete: 'off', required: true }, 'Lowercase letters, digits, ".", "_" or "-".'),
      field('new-display-name', 'Display name (optional)', { autocomplete: 'off' }),
      field('new-email', 'E-mail (optional)', { type: 'email', autocomplete: 'off' }, 'Where notifications go, e.g. when an export is ready.'),
      field('new-role', 'Role', { tag: 'select', options: ROLES.map((r) => h('option', { value: r, selected: r === 'viewer' }, r)) }),
      field('new-password', 'Initial password', { type: 'password', autocomplete: 'new-password', required: true }, 'Give it to the person; they can change it under My account.')),
    h('button', { type: 'submit' }, 'Create user'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const v = (id) => document.getElementById(id).value;
    try {
      const user = await busy(form, () => api('POST', '/api/v1/users', {
        username: v('new-username').trim(), display_name: v('new-display-name').trim(), role: v('new-role'), password: v('new-password'),
        email: v('new-email').trim() || null,
      }));
      form.reset();
      notify(`Created ${user.username} (${user.role}).`);
      await reload();
    } catch (e) { showError(e, ids); }
  });
  return form;
}

async function accountView(main) {
  const me = await loadMe();
  renderNav();
  append(main,
    h('section', { 'aria-labelledby': 'profile-heading' },
      h('h2', { id: 'profile-heading' }, 'Profile'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Username'), h('dd', { id: 'account-username' }, me.user.username),
        h('dt', {}, 'Role'), h('dd', {}, me.user.role),
        h('dt', {}, 'Permissions'), h('dd', {}, me.permissions.join(', ')))),
    passwordSection(),
    mfaSection(me),
    await tokensSection(me),
    sessionsSection());
}

function passwordSection() {
  const ids = { current_password: 'current-password', new_password: 'new-password' };
  const form = h('form', { id: 'password-form', novalidate: true, 'aria-labelledby': 'password-heading' },
    h('h2', { id: 'password-heading' }, 'Change password'),
    field('current-password', 'Current password', { type: 'password', autocomplete: 'current-password', required: true }),
    field('new-password', 'New password', { type: 'password', autocomplete: 'new-password', required: true }, 'At least 12 characters; not a common password; not your username.'),
    field('new-password-confirm', 'Repeat the new password', { type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit' }, 'Change password'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const v = (id) => document.getElementById(id).value;
    if (v('new-password') !== v('new-password-confirm')) return setFieldError('new-password-confirm', 'The two passwords differ.');
    try {
      const result = await busy(form, () => api('POST', '/api/v1/me/password', { current_password: v('current-password'), new_password: v('new-password') }));
      state.csrf = result.csrf_token;
      form.reset();
      notify('Your password was changed. Your other sessions were signed out.');
    } catch (e) { showError(e, ids); }
  });
  return form;
}

function mfaSection(me) {
  const section = h('section', { id: 'mfa-section', 'aria-labelledby': 'mfa-heading' }, h('h2', { id: 'mfa-heading' }, 'Two-factor authentication'));
  const body = h('div', {});
  append(section, body);
  const showOff = () => {
    const start = h('button', { type: 'button', id: 'mfa-start' }, 'Set up two-factor authentication');
    start.addEventListener('click', async () => {
      try {
        start.disabled = true;
        const enrol = await api('POST', '/api/v1/me/mfa/totp', {});
        showEnrol(enrol);
      } catch (e) { showError(e); start.disabled = false; }
    });
    body.replaceChildren(h('p', { id: 'mfa-status' }, 'Off. Signing in needs only your password.'), start);
  };
  const showEnrol = (enrol) => {
    const form = h('form', { id: 'mfa-confirm-form', novalidate: true },
      field('mfa-code', 'Code from the app', { autocomplete: 'one-time-code', inputmode: 'numeric', required: true }, 'Enter the 6 digits the app shows to finish.'),
      h('button', { type: 'submit' }, 'Turn on two-factor authentication'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      try {
        const result = await busy(form, () => api('POST', '/api/v1/me/mfa/totp/confirm', { code: document.getElementById('mfa-code').value }));
        state.csrf = result.csrf_token;
        await loadMe();
        renderNav();
        showCodes(result.recovery_codes);
      } catch (e) { showError(e, { code: 'mfa-code' }); }
    });
    body.replaceChildren(
      h('ol', {},
        h('li', {}, 'Scan this QR code with an authenticator app, or type the key below.'),
        h('li', {}, 'Enter the code the app shows.')),
      h('img', { id: 'mfa-qr', class: 'qr', alt: 'QR code for your authenticator app', width: 200, height: 200, src: `data:image/svg+xml;base64,${btoa(enrol.qr_svg)}` }),
      h('p', {}, 'Key: ', h('code', { id: 'mfa-secret' }, enrol.secret)),
      form);
    document.getElementById('mfa-code').focus();
  };
  const showCodes = (codes) => {
    body.replaceChildren(
      h('p', { id: 'mfa-status' }, 'On. Signing in needs your password and a code from the app.'),
      h('h3', {}, 'Recovery codes'),
      h('p', {}, 'Save these now; they are shown only once. Each one signs you in once if you lose your device.'),
      h('ul', { id: 'recovery-codes', class: 'codes' }, codes.map((c) => h('li', {}, h('code', {}, c)))));
    notify('Two-factor authentication is on.');
  };
  const showOn = () => {
    const ids = { current_password: 'mfa-disable-password' };
    const form = h('form', { id: 'mfa-disable-form', novalidate: true },
      field('mfa-disable-password', 'Current password', { type: 'password', autocomplete: 'current-password', required: true }),
      h('button', { type: 'submit' }, 'Turn off two-factor authentication'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      try {
        await busy(form, () => api('DELETE', '/api/v1/me/mfa/totp', { current_password: document.getElementById('mfa-disable-password').value }));
        notify('Two-factor authentication is off.');
        showOff();
      } catch (e) { showError(e, ids); }
    });
    body.replaceChildren(h('p', { id: 'mfa-status' }, 'On. Signing in needs your password and a code from the app.'), form);
  };
  if (me.user.mfa_enabled) showOn(); else showOff();
  return section;
}

async function tokensSection(me) {
  const section = h('section', { id: 'tokens-section', 'aria-labelledby': 'tokens-heading' },
    h('h2', { id: 'tokens-heading' }, 'API tokens'),
    h('p', {}, 'Tokens let scripts call the API as you, with only the permissions you pick. They never have more than your role.'));
  const created = h('div', { id: 'token-created', 'aria-live': 'polite' });
  const list = h('div', { id: 'tokens-list' });
  const load = async () => {
    const tokens = (await api('GET', '/api/v1/me/tokens')).items;
    if (tokens.length === 0) { list.replaceChildren(h('p', { id: 'tokens-empty' }, 'You have no API tokens.')); return; }
    list.replaceChildren(h('table', { id: 'tokens-table' },
      h('caption', {}, 'Your tokens'),
      h('thead', {}, h('tr', {}, ['Name', 'Starts with', 'Permissions', 'Created', 'Expires', 'Last used', 'Status', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, tokens.map((t) => tokenRow(t, load)))));
  };
  const ids = { name: 'token-name', permissions: 'token-permissions', expires_in_days: 'token-expiry' };
  const boxes = me.permissions.map((p) => h('div', { class: 'check' },
    h('input', { type: 'checkbox', name: 'permission', value: p, id: `perm-${p.replace(':', '-')}` }),
    h('label', { for: `perm-${p.replace(':', '-')}` }, p)));
  const form = h('form', { id: 'token-create-form', novalidate: true },
    h('h3', {}, 'Create a token'),
    field('token-name', 'Name', { autocomplete: 'off', required: true }, 'What it is for, e.g. "SIEM export".'),
    h('fieldset', { id: 'token-permissions', 'aria-describedby': 'token-permissions-error' }, h('legend', {}, 'Permissions'), boxes,
      h('p', { class: 'field-error', id: 'token-permissions-error' })),
    field('token-expiry', 'Expires after (days, optional)', { type: 'number', min: 1, max: 3650, inputmode: 'numeric' }, 'Leave empty for a token that does not expire.'),
    h('button', { type: 'submit' }, 'Create token'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const permissions = [...form.querySelectorAll('input[name="permission"]:checked')].map((b) => b.value);
    const name = document.getElementById('token-name').value.trim();
    if (!name) return setFieldError('token-name', 'Give the token a name.');
    if (permissions.length === 0) return setFieldError('token-permissions', 'Pick at least one permission.');
    const days = document.getElementById('token-expiry').value;
    try {
      const token = await busy(form, () => api('POST', '/api/v1/me/tokens', { name, permissions, expires_in_days: days ? Number(days) : null }));
      form.reset();
      created.replaceChildren(h('div', { class: 'secret-box' },
        h('p', {}, 'Copy the token now. It is shown only this once:'),
        h('code', { id: 'token-secret' }, token.token)));
      await load();
    } catch (e) { showError(e, ids); }
  });
  append(section, form, created, list);
  await load();
  return section;
}

function tokenRow(token, reload) {
  const status = token.revoked_at ? 'revoked' : (token.expires_at && new Date(token.expires_at) < new Date() ? 'expired' : 'active');
  const cell = h('td', { class: 'actions' });
  if (status === 'active') {
    const revoke = h('button', { type: 'button', 'data-action': 'revoke' }, 'Revoke');
    revoke.addEventListener('click', () => {
      const confirm = h('button', { type: 'button', 'data-action': 'confirm-revoke', class: 'danger' }, `Really revoke "${token.name}"`);
      const cancel = h('button', { type: 'button', 'data-action': 'cancel' }, 'Keep it');
      cancel.addEventListener('click', () => { cell.replaceChildren(revoke); revoke.focus(); });
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try { await api('DELETE', `/api/v1/me/tokens/${token.id}`); notify(`Token "${token.name}" was revoked.`); await reload(); } catch (e) { showError(e); confirm.disabled = false; }
      });
      cell.replaceChildren(confirm, cancel);
      confirm.focus();
    });
    cell.append(revoke);
  }
  return h('tr', { 'data-token-id': token.id },
    h('th', { scope: 'row' }, token.name),
    h('td', {}, h('code', {}, `${token.prefix}…`)),
    h('td', {}, token.permissions.join(', ')),
    h('td', {}, formatTime(token.created_at)),
    h('td', {}, token.expires_at ? formatTime(token.expires_at) : 'never'),
    h('td', {}, token.last_used_at ? formatTime(token.last_used_at) : 'never'),
    h('td', { 'data-field': 'status' }, status),
    cell);
}

function sessionsSection() {
  const button = h('button', { type: 'button', id: 'signout-everywhere' }, 'Sign out everywhere');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await api('POST', '/api/v1/auth/logout-everywhere', {});
      state.me = null;
      state.csrf = null;
      go('/login');
    } catch (e) { showError(e); button.disabled = false; }
  });
  return h('section', { 'aria-labelledby': 'sessions-heading' },
    h('h2', { id: 'sessions-heading' }, 'Sessions'),
    h('p', {}, 'Ends every session of your account, on every device, including this one.'),
    button);
}

const AUDIT_ACTIONS = ['auth.login', 'auth.logout', 'auth.logout_everywhere', 'auth.unlock', 'auth.password_reset', 'setup.complete', 'setup.token_issue',
  'account.password_change', 'account.reauthenticate', 'account.mfa_enable', 'account.mfa_disable', 'token.create', 'token.revoke',
  'user.create', 'user.update', 'user.password_reset', 'user.password_reset_link', 'user.sessions_revoke', 'user.mfa_reset', 'settings.update',
  'collection.create', 'collection.delete', 'field.add', 'field.update', 'field.hide', 'field.purge',
  'record.create', 'record.update', 'record.delete', 'record.export', 'record.export.done',
  'export.create', 'export.ready', 'export.download', 'export.delete', 'job.cancel', 'job.retry',
  'import.create', 'import.done', 'webhook.create', 'webhook.update', 'webhook.delete', 'webhook.rotate_secret', 'webhook.redeliver', 'webhook.disable'];

function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function auditView(main) {
  const params = new URLSearchParams(location.search);
  const filters = h('form', { id: 'audit-filters', class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    field('filter-actor', 'Actor', { value: params.get('actor') || '', autocomplete: 'off' }),
    field('filter-action', 'Action', { value: params.get('action') || '', list: 'audit-actions', autocomplete: 'off' }),
    h('datalist', { id: 'audit-actions' }, AUDIT_ACTIONS.map((a) => h('option', { value: a }))),
    field('filter-outcome', 'Outcome', { tag: 'select', options: ['', 'success', 'failure', 'denied'].map((o) => h('option', { value: o, selected: (params.get('outcome') || '') === o }, o || 'any')) }),
    field('filter-since', 'From', { type: 'datetime-local', value: toLocalInput(params.get('since')) }),
    field('filter-until', 'Until', { type: 'datetime-local', value: toLocalInput(params.get('until')) }),
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'button', id: 'audit-reset', onclick: () => go('/audit') }, 'Clear')));
  const results = h('div', { id: 'audit-results', 'aria-live': 'polite' });
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    const v = (id) => document.getElementById(id).value.trim();
    if (v('filter-actor')) q.set('actor', v('filter-actor'));
    if (v('filter-action')) q.set('action', v('filter-action'));
    if (v('filter-outcome')) q.set('outcome', v('filter-outcome'));
    if (v('filter-since')) q.set('since', new Date(v('filter-since')).toISOString());
    if (v('filter-until')) q.set('until', new Date(v('filter-until')).toISOString());
    go(`/audit${q.toString() ? `?${q}` : ''}`);
  });
  append(main, filters, results);

  const query = new URLSearchParams();
  for (const key of ['actor', 'action', 'outcome', 'since', 'until']) if (params.get(key)) query.set(key, params.get(key));
  query.set('limit', '50');
  const tbody = h('tbody', {});
  let shown = 0;
  const loadPage = async (cursor) => {
    const q = new URLSearchParams(query);
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', `/api/v1/audit?${q}`);
    for (const e of page.items) {
      tbody.append(h('tr', { 'data-seq': e.seq },
        h('td', {}, String(e.seq)),
        h('td', {}, formatTime(e.occurred_at)),
        h('td', { 'data-field': 'actor' }, e.actor),
        h('th', { scope: 'row', 'data-field': 'action' }, e.action),
        h('td', {}, e.target || '—'),
        h('td', { 'data-field': 'outcome', class: `outcome-${e.outcome}` }, e.outcome),
        h('td', {}, e.client_addr || '—'),
        h('td', {}, h('code', {}, e.request_id || '—')),
        h('td', {}, h('code', { class: 'details' }, Object.keys(e.details || {}).length ? JSON.stringify(e.details) : '—'))));
    }
    shown += page.items.length;
    return page.next_cursor;
  };
  const next = await loadPage(null);
  if (shown === 0) {
    results.replaceChildren(h('p', { id: 'audit-empty', class: 'empty' }, 'No audit entries match these filters.'));
    return;
  }
  const table = h('table', { id: 'audit-table' },
    h('caption', {}, 'Audit entries, newest first'),
    h('thead', {}, h('tr', {}, ['#', 'Time', 'Actor', 'Action', 'Target', 'Outcome', 'Address', 'Request id', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  results.replaceChildren(table);
  if (next) {
    let cursor = next;
    const more = h('button', { type: 'button', id: 'audit-more' }, 'Load older entries');
    more.addEventListener('click', async () => {
      more.disabled = true;
      more.textContent = 'Loading…';
      try {
        cursor = await loadPage(cursor);
        if (cursor) { more.disabled = false; more.textContent = 'Load older entries'; } else { more.remove(); }
      } catch (e) { showError(e); more.disabled = false; more.textContent = 'Load older entries'; }
    });
    results.append(more);
  }
}

// ---- exports and jobs ---------------------------------------------------

function formatBytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// Exports: one's own (admins: everyone's), refreshed while any is running.
async function exportsView(main) {
  const params = new URLSearchParams(location.search);
  append(main, h('p', { class: 'hint' },
    'Exports started from a collection\'s records page with "Export in the background". ',
    'A ready file can be downloaded until it expires; each download link works for 15 minutes.'));
  const results = h('div', { id: 'exports-results', 'aria-live': 'polite' });
  append(main, results);
  const draw = async () => {
    const list = await api('GET', '/api/v1/exports?limit=100');
    if (!list.items.length) {
      results.replaceChildren(h('p', { id: 'exports-empty', class: 'empty' }, 'No exports yet. Start one from a collection\'s records page.'));
      return false;
    }
    const rows = list.items.map((e) => {
      const progress = e.progress && e.state === 'running'
        ? h('span', {}, h('progress', { max: String(Math.max(e.progress.estimate || 0, e.progress.rows || 0, 1)), value: String(e.progress.rows || 0), 'aria-label': `Export ${e.id} progress` }),
          ` ${e.progress.rows} of about ${e.progress.estimate} rows`)
        : null;
      const actions = h('td', {},
        e.download_url ? h('a', { href: e.download_url, download: '', class: 'button-link', 'data-action': 'download' }, `Download export ${e.id}`) : null,
        h('button', { type: 'button', class: 'link-button', 'data-action': 'delete', onclick: async () => {
          try { await api('DELETE', `/api/v1/exports/${e.id}`); notify(`Export ${e.id} deleted.`); await draw(); } catch (err) { showError(err); }
        } }, `Delete export ${e.id}`));
      return h('tr', { 'data-export-id': e.id, class: params.get('started') === String(e.id) ? 'highlight' : null },
        h('th', { scope: 'row' }, `#${e.id}`),
        h('td', {}, e.collection),
        h('td', { 'data-field': 'state' }, e.state, progress ? ' ' : null, progress, e.error ? h('span', { class: 'field-error' }, ` ${e.error}`) : null),
        h('td', { 'data-field': 'rows' }, e.rows === null || e.rows === undefined ? '—' : String(e.rows)),
        h('td', {}, formatBytes(e.bytes)),
        h('td', {}, h('code', { class: 'details' }, [e.request.filter ? `filter ${e.request.filter}` : 'every record', e.request.sort ? ` · sort ${e.request.sort}` : ''].join(''))),
        h('td', {}, formatTime(e.created_at)),
        h('td', {}, formatTime(e.expires_at)),
        actions);
    });
    results.replaceChildren(h('table', { id: 'exports-table' },
      h('caption', {}, 'Exports, newest first'),
      h('thead', {}, h('tr', {}, ['Export', 'Collection', 'State', 'Rows', 'Size', 'Records', 'Started', 'Expires', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
    return list.items.some((e) => e.state === 'queued' || e.state === 'running');
  };
  let pending = await draw();
  // Follow running exports until they finish or the page is left.
  const follow = async () => {
    while (pending && document.getElementById('exports-results') === results) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (document.getElementById('exports-results') !== results) return;
      try { pending = await draw(); } catch (e) { showError(e); return; }
    }
  };
  follow();
}

const JOB_STATES = ['queued', 'running', 'succeeded', 'dead', 'cancelled'];

// The job queue for admins: by state, with attempts, cancel and retry.
async function jobsView(main) {
  const params = new URLSearchParams(location.search);
  const current = JOB_STATES.includes(params.get('state')) ? params.get('state') : '';
  const filter = h('form', { id: 'jobs-filter', class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    field('jobs-state', 'State', { tag: 'select', options: [''].concat(JOB_STATES).map((s) => h('option', { value: s, selected: s === current }, s || 'any')) }),
    h('div', { class: 'filter-buttons' }, h('button', { type: 'submit' }, 'Show')));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    const s = document.getElementById('jobs-state').value;
    go(`/jobs${s ? `?state=${s}` : ''}`);
  });
  const results = h('div', { id: 'jobs-results', 'aria-live': 'polite' });
  const detail = h('div', { id: 'job-detail' });
  append(main, filter, results, detail);
  const change = async (job, verb) => {
    try {
      const changed = await api('POST', `/api/v1/jobs/${job.id}/${verb}`, {});
      notify(`Job ${job.id} is now ${changed.state}.`);
      await draw();
    } catch (e) { showError(e); }
  };
  const showAttempts = async (job) => {
    const full = await api('GET', `/api/v1/jobs/${job.id}`);
    detail.replaceChildren(h('h2', { id: 'job-detail-title', tabindex: '-1' }, `Attempts of job ${job.id} (${full.kind})`),
      h('table', { id: 'job-attempts' },
        h('thead', {}, h('tr', {}, ['Attempt', 'Worker', 'Started', 'Finished', 'Outcome', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, full.attempts_log.map((a) => h('tr', { 'data-attempt': a.attempt },
          h('th', { scope: 'row' }, String(a.attempt)), h('td', {}, a.worker), h('td', {}, formatTime(a.started_at)),
          h('td', {}, formatTime(a.finished_at)), h('td', { 'data-field': 'outcome' }, a.outcome || 'running'), h('td', {}, a.error || '—'))))));
    document.getElementById('job-detail-title').focus();
  };
  const draw = async () => {
    const list = await api('GET', `/api/v1/jobs?limit=100${current ? `&state=${current}` : ''}`);
    if (!list.items.length) {
      results.replaceChildren(h('p', { id: 'jobs-empty', class: 'empty' }, current ? `No ${current} jobs.` : 'No jobs yet.'));
      return;
    }
    results.replaceChildren(h('table', { id: 'jobs-table' },
      h('caption', {}, 'Jobs, newest first'),
      h('thead', {}, h('tr', {}, ['Job', 'Kind', 'State', 'Attempts', 'Next run', 'Last error', 'Created', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.items.map((j) => h('tr', { 'data-job-id': j.id },
        h('th', { scope: 'row' }, `#${j.id}`),
        h('td', {}, j.kind),
        h('td', { 'data-field': 'state', class: j.state === 'dead' ? 'outcome-failure' : null }, j.state),
        h('td', {}, `${j.attempts} of ${j.max_attempts}`),
        h('td', {}, j.state === 'queued' ? formatTime(j.run_at) : '—'),
        h('td', {}, j.last_error || '—'),
        h('td', {}, formatTime(j.created_at)),
        h('td', {},
          h('button', { type: 'button', class: 'link-button', 'data-action': 'attempts', onclick: () => showAttempts(j).catch(showError) }, `Attempts of job ${j.id}`),
          (j.state === 'queued' || j.state === 'running') ? h('button', { type: 'button', class: 'link-button', 'data-action': 'cancel', onclick: () => change(j, 'cancel') }, `Cancel job ${j.id}`) : null,
          (j.state === 'dead' || j.state === 'cancelled') ? h('button', { type: 'button', class: 'link-button', 'data-action': 'retry', onclick: () => change(j, 'retry') }, `Retry job ${j.id}`) : null))))));
  };
  await draw();
}

const WEBHOOK_EVENTS = ['record.created', 'record.updated', 'record.deleted', 'export.completed', 'import.completed'];

// Webhooks for admins: subscriptions, secret rotation, delivery log, redelivery.
async function webhooksView(main) {
  const params = new URLSearchParams(location.search);
  append(main, h('p', { class: 'hint' },
    'A webhook POSTs a signed JSON event to a URL when records change or an export is ready. ',
    'Failed deliveries are retried for hours, then listed as failed here for redelivery. ',
    'Receivers verify the webhook-signature header with the secret shown when the webhook is created.'));
  const collections = can('records:read') ? (await api('GET', '/api/v1/collections')).items.map((c) => c.name) : [];
  const ids = { url: 'webhook-url', description: 'webhook-description', collection: 'webhook-collection', events: 'webhook-events' };
  const secretBox = h('div', { id: 'webhook-created', 'aria-live': 'polite' });
  const showSecret = (title, secret) => secretBox.replaceChildren(h('div', { class: 'secret-box' },
    h('p', {}, `${title} Copy the secret now. It is shown only this once:`),
    h('code', { id: 'webhook-secret' }, secret)));
  const form = h('form', { id: 'webhook-create-form', novalidate: true },
    h('h2', {}, 'Add a webhook'),
    field('webhook-url', 'URL', { type: 'url', autocomplete: 'off', required: true, spellcheck: 'false' },
      'http:// or https://, no user name or password in it.'),
    field('webhook-description', 'Description (optional)', { autocomplete: 'off', maxlength: 200 }),
    field('webhook-collection', 'Collection', { tag: 'select', options: [h('option', { value: '' }, 'every collection')].concat(collections.map((c) => h('option', { value: c }, c))) }),
    h('fieldset', { id: 'webhook-events', 'aria-describedby': 'webhook-events-error' }, h('legend', {}, 'Events'),
      WEBHOOK_EVENTS.map((e) => h('div', { class: 'check' },
        h('input', { type: 'checkbox', name: 'event', value: e, id: `event-${e.replace('.', '-')}` }),
        h('label', { for: `event-${e.replace('.', '-')}` }, e))),
      h('p', { class: 'field-error', id: 'webhook-events-error' })),
    h('button', { type: 'submit' }, 'Add webhook'));
  const list = h('div', { id: 'webhooks-results', 'aria-live': 'polite' });
  const log = h('div', { id: 'webhook-log' });
  append(main, list, log, form, secretBox);

  const showLog = async (webhook) => {
    const detail = h('div', { id: 'delivery-detail' });
    const drawLog = async () => {
      const page = await api('GET', `/api/v1/webhooks/${webhook.id}/deliveries?limit=50`);
      const table = page.items.length === 0
        ? h('p', { id: 'deliveries-empty', class: 'empty' }, 'No deliveries yet.')
        : h('table', { id: 'deliveries-table' },
          h('caption', {}, `Deliveries to ${webhook.url}, newest first`),
          h('thead', {}, h('tr', {}, ['Delivery', 'Event', 'State', 'Attempts', 'Last status', 'Last error', 'Created', 'Next attempt', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, page.items.map((d) => h('tr', { 'data-delivery-id': d.id },
            h('th', { scope: 'row' }, `#${d.id}`),
            h('td', {}, d.event),
            h('td', { 'data-field': 'state', class: d.state === 'failed' ? 'outcome-failure' : null }, d.state),
            h('td', {}, String(d.attempts)),
            h('td', { 'data-field': 'status' }, d.last_status === null ? '—' : String(d.last_status)),
            h('td', {}, d.last_error || '—'),
            h('td', {}, formatTime(d.created_at)),
            h('td', {}, d.next_attempt_at ? formatTime(d.next_attempt_at) : '—'),
            h('td', {},
              h('button', { type: 'button', class: 'link-button', 'data-action': 'attempts', onclick: () => showAttempts(d).catch(showError) }, `Attempts of delivery ${d.id}`),
              webhook.enabled ? h('button', { type: 'button', class: 'link-button', 'data-action': 'redeliver', onclick: () => redeliver(d) }, `Redeliver delivery ${d.id}`) : null)))));
      log.replaceChildren(h('h2', { id: 'webhook-log-title', tabindex: '-1' }, `Delivery log of webhook ${webhook.id}`), table, detail);
      return page.items.some((d) => d.state === 'pending');
    };
    const showAttempts = async (d) => {
      const full = await api('GET', `/api/v1/webhooks/${webhook.id}/deliveries/${d.id}`);
      detail.replaceChildren(h('h3', { id: 'delivery-detail-title', tabindex: '-1' }, `Attempts of delivery ${d.id} (${full.event}, event ${full.event_id})`),
        full.attempts_log.length === 0 ? h('p', { class: 'empty' }, 'No attempt yet.') : h('table', { id: 'delivery-attempts' },
          h('thead', {}, h('tr', {}, ['Attempt', 'At', 'URL', 'Address', 'Status', 'Latency', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, full.attempts_log.map((a) => h('tr', { 'data-attempt': a.attempt },
            h('th', { scope: 'row' }, String(a.attempt)), h('td', {}, formatTime(a.at)), h('td', {}, h('code', {}, a.url)),
            h('td', {}, a.address || '—'), h('td', { 'data-field': 'status' }, a.status === null ? 'no response' : String(a.status)),
            h('td', {}, `${a.latency_ms} ms`), h('td', {}, a.error || '—'))))),
        h('h4', {}, 'Payload'),
        h('pre', { id: 'delivery-payload', class: 'details' }, JSON.stringify(full.payload, null, 2)));
      document.getElementById('delivery-detail-title').focus();
    };
    const redeliver = async (d) => {
      try {
        const again = await api('POST', `/api/v1/webhooks/${webhook.id}/deliveries/${d.id}/redeliver`, {});
        notify(`Delivery ${d.id} queued again as delivery ${again.id}.`);
        follow(await drawLog());
      } catch (e) { showError(e); }
    };
    // Follows pending deliveries until they settle or the log is replaced.
    let following = false;
    const follow = async (pending) => {
      if (following || !pending) return;
      following = true;
      const mine = log.firstChild;
      while (pending && log.firstChild === mine) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (log.firstChild !== mine) break;
        try { pending = await drawLog(); } catch (e) { showError(e); break; }
      }
      following = false;
    };
    const pending = await drawLog();
    document.getElementById('webhook-log-title').focus();
    follow(pending);
  };

  const change = async (webhook, body, message) => {
    try {
      await api('PATCH', `/api/v1/webhooks/${webhook.id}`, body);
      notify(message);
      await draw();
    } catch (e) { showError(e); }
  };
  const row = (w) => {
    const actions = h('td', { class: 'actions' });
    const remove = h('button', { type: 'button', class: 'link-button', 'data-action': 'delete' }, `Delete webhook ${w.id}`);
    remove.addEventListener('click', () => {
      const confirm = h('button', { type: 'button', class: 'danger', 'data-action': 'confirm-delete' }, `Really delete webhook ${w.id} and its log`);
      const keep = h('button', { type: 'button', 'data-action': 'cancel' }, 'Keep it');
      keep.addEventListener('click', () => { draw().catch(showError); });
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try { await api('DELETE', `/api/v1/webhooks/${w.id}`); notify(`Webhook ${w.id} deleted.`); log.replaceChildren(); await draw(); } catch (e) { showError(e); confirm.disabled = false; }
      });
      actions.replaceChildren(confirm, keep);
      confirm.focus();
    });
    append(actions,
      h('button', { type: 'button', class: 'link-button', 'data-action': 'deliveries', onclick: () => { history.replaceState(null, '', `/webhooks?webhook=${w.id}`); showLog(w).catch(showError); } }, `Deliveries of webhook ${w.id}`),
      w.enabled
        ? h('button', { type: 'button', class: 'link-button', 'data-action': 'disable', onclick: () => change(w, { enabled: false }, `Webhook ${w.id} disabled.`) }, `Disable webhook ${w.id}`)
        : h('button', { type: 'button', class: 'link-button', 'data-action': 'enable', onclick: () => change(w, { enabled: true }, `Webhook ${w.id} enabled.`) }, `Enable webhook ${w.id}`),
      h('button', { type: 'button', class: 'link-button', 'data-action': 'rotate', onclick: async () => {
        try { const r = await api('POST', `/api/v1/webhooks/${w.id}/rotate-secret`, {}); showSecret(`Webhook ${w.id} has a new secret; the previous one also signs for 24 hours.`, r.secret); await draw(); } catch (e) { showError(e); }
      } }, `Rotate secret of webhook ${w.id}`),
      remove);
    return h('tr', { 'data-webhook-id': w.id },
      h('th', { scope: 'row' }, h('code', {}, w.url), w.description ? h('span', { class: 'hint' }, ` ${w.description}`) : null),
      h('td', {}, w.collection || 'every collection'),
      h('td', {}, w.events.join(', ')),
      h('td', { 'data-field': 'state', class: w.enabled ? null : 'outcome-failure' }, w.enabled ? 'enabled' : `disabled: ${w.disabled_reason || ''}`),
      h('td', {}, w.consecutive_failures ? `${w.consecutive_failures} failed in a row since ${formatTime(w.failing_since)}` : 'none'),
      actions);
  };
  let webhooks = [];
  const draw = async () => {
    webhooks = (await api('GET', '/api/v1/webhooks')).items;
    list.replaceChildren(webhooks.length === 0
      ? h('p', { id: 'webhooks-empty', class: 'empty' }, 'No webhooks yet. Add one below.')
      : h('table', { id: 'webhooks-table' },
        h('caption', {}, 'Webhooks'),
        h('thead', {}, h('tr', {}, ['URL', 'Collection', 'Events', 'State', 'Recent failures', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, webhooks.map(row))));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const url = document.getElementById('webhook-url').value.trim();
    const events = [...form.querySelectorAll('input[name="event"]:checked')].map((b) => b.value);
    if (!url) return setFieldError('webhook-url', 'Enter the URL to deliver to.');
    if (events.length === 0) return setFieldError('webhook-events', 'Pick at least one event.');
    const collection = document.getElementById('webhook-collection').value || null;
    const description = document.getElementById('webhook-description').value.trim();
    try {
      const made = await busy(form, () => api('POST', '/api/v1/webhooks', { url, description, collection, events }));
      form.reset();
      showSecret(`Webhook ${made.id} added.`, made.secret);
      await draw();
    } catch (e) { showError(e, ids); }
  });
  await draw();
  const open = webhooks.find((w) => String(w.id) === params.get('webhook'));
  if (open) await showLog(open);
}

// A file upload that becomes an import job of this collection.
function importForm(name) {
  const form = h('form', { id: 'import-form', novalidate: true },
    field('import-file', 'File (CSV with a header of field names, or NDJSON)', { type: 'file', accept: '.csv,.ndjson,.jsonl,text/csv,application/x-ndjson' },
      'CSV as the exports write it: an empty value is empty, "" is an empty text. NDJSON: one JSON object per line.'),
    field('import-mode', 'If some rows are invalid', { tag: 'select', options: [
      h('option', { value: 'all_or_nothing' }, 'import nothing (report every invalid row)'),
      h('option', { value: 'skip_invalid' }, 'import the valid rows, report the others')] }),
    h('button', { type: 'submit', id: 'import-submit' }, 'Import'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const file = document.getElementById('import-file').files[0];
    if (!file) return setFieldError('import-file', 'Choose a file to import.');
    const lower = file.name.toLowerCase();
    const format = lower.endsWith('.csv') ? 'csv' : (lower.endsWith('.ndjson') || lower.endsWith('.jsonl')) ? 'ndjson' : null;
    if (!format) return setFieldError('import-file', 'Choose a .csv, .ndjson or .jsonl file.');
    const mode = document.getElementById('import-mode').value;
    try {
      const created = await busy(form, async () => {
        const res = await fetch(`/api/v1/collections/${name}/imports?format=${format}&mode=${mode}`, {
          method: 'POST',
          headers: { Accept: 'application/json', 'Content-Type': format === 'csv' ? 'text/csv' : 'application/x-ndjson', 'X-CSRF-Token': state.csrf || '' },
          body: file,
          credentials: 'same-origin',
        }).catch(() => { throw new ApiError(0, { message: 'The server cannot be reached. Check the network and try again.' }); });
        const data = await res.json().catch(() => null);
        if (!res.ok) throw new ApiError(res.status, data);
        return data;
      });
      go(`/imports?started=${created.id}`);
    } catch (e) { showError(e, { file: 'import-file', format: 'import-file', mode: 'import-mode' }); }
  });
  return h('details', { id: 'records-import', class: 'import' }, h('summary', {}, 'Import records from a file'), form);
}

// Imports: one's own (admins: everyone's), followed while any is running.
async function importsView(main) {
  const params = new URLSearchParams(location.search);
  append(main, h('p', { class: 'hint' },
    'Imports started from a collection\'s records page with "Import records from a file". ',
    'Rows that are not valid are listed in the import\'s error report, with the line they start on.'));
  const results = h('div', { id: 'imports-results', 'aria-live': 'polite' });
  append(main, results);
  const draw = async () => {
    const list = await api('GET', '/api/v1/imports?limit=100');
    if (!list.items.length) {
      results.replaceChildren(h('p', { id: 'imports-empty', class: 'empty' }, 'No imports yet. Start one from a collection\'s records page.'));
      return false;
    }
    const rows = list.items.map((i) => {
      const p = i.progress;
      const progress = p && i.state === 'running'
        ? h('span', {}, h('progress', { max: String(Math.max(p.of_bytes || 0, 1)), value: String(p.bytes || 0), 'aria-label': `Import ${i.id} progress` }),
          ` ${p.rows} rows read`)
        : null;
      const counts = i.rows_total === null || i.rows_total === undefined ? '—'
        : `${i.rows_imported} of ${i.rows_total} imported, ${i.rows_failed} invalid`;
      return h('tr', { 'data-import-id': i.id, class: params.get('started') === String(i.id) ? 'highlight' : null },
        h('th', { scope: 'row' }, `#${i.id}`),
        h('td', {}, i.collection),
        h('td', {}, `${i.format}, ${i.mode === 'skip_invalid' ? 'skip invalid rows' : 'all or nothing'}`),
        h('td', { 'data-field': 'state', class: (i.state === 'rejected' || i.state === 'failed') ? 'outcome-failure' : null },
          i.state, progress ? ' ' : null, progress, i.error ? h('span', { class: 'field-error' }, ` ${i.error}`) : null),
        h('td', { 'data-field': 'rows' }, counts),
        h('td', {}, formatBytes(i.bytes)),
        h('td', {}, formatTime(i.created_at)),
        h('td', {}, i.errors_url ? h('a', { href: i.errors_url, download: '', class: 'button-link', 'data-action': 'errors' }, `Error report of import ${i.id}`) : '—'));
    });
    results.replaceChildren(h('table', { id: 'imports-table' },
      h('caption', {}, 'Imports, newest first'),
      h('thead', {}, h('tr', {}, ['Import', 'Collection', 'File', 'State', 'Rows', 'Size', 'Started', 'Invalid rows'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
    return list.items.some((i) => i.state === 'queued' || i.state === 'running');
  };
  let pending = await draw();
  const follow = async () => {
    while (pending && document.getElementById('imports-results') === results) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (document.getElementById('imports-results') !== results) return;
      try { pending = await draw(); } catch (e) { showError(e); return; }
    }
  };
  follow();
}

// ---- collections and records ------------------------------------------

const FIELD_TYPES = ['text', 'integer', 'decimal', 'boolean', 'date', 'timestamp', 'enum', 'json'];
const OPS_BY_TYPE = {
  text: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'contains', 'prefix', 'is_null'],
  integer: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  decimal: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  date: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  timestamp: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  boolean: ['eq', 'ne', 'is_null'],
  enum: ['eq', 'ne', 'in', 'is_null'],
  json: ['eq', 'contains', 'is_null'],
};
const OP_LABELS = {
  eq: 'is', ne: 'is not', lt: 'less than', lte: 'at most', gt: 'greater than', gte: 'at least',
  in: 'is one of (comma-separated)', contains: 'contains', prefix: 'starts with', is_null: 'is empty',
};

async function collectionsView(main) {
  const list = h('div', { id: 'collections-list' });
  const load = async () => {
    const items = (await api('GET', '/api/v1/collections')).items;
    if (items.length === 0) {
      list.replaceChildren(h('p', { id: 'collections-empty', class: 'empty' },
        can('collections:manage') ? 'No collections yet. Create the first one above.' : 'No collections yet. An administrator creates them.'));
      return;
    }
    list.replaceChildren(h('table', { id: 'collections-table' },
      h('caption', {}, `${items.length} collection${items.length === 1 ? '' : 's'}`),
      h('thead', {}, h('tr', {}, ['Name', 'Title', 'Fields', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, items.map((c) => h('tr', { 'data-collection': c.name },
        h('th', { scope: 'row' }, h('a', { href: `/collections/${c.name}`, 'data-link': true }, c.name)),
        h('td', {}, c.title || '—'),
        h('td', {}, c.fields.map((f) => `${f.name} (${f.type})`).join(', ') || '—'),
        h('td', {}, formatTime(c.created_at)))))));
  };
  if (can('collections:manage')) {
    const ids = { name: 'collection-name', title: 'collection-title' };
    const form = h('form', { id: 'collection-create-form', novalidate: true },
      h('h2', {}, 'Create a collection'),
      h('div', { class: 'grid' },
        field('collection-name', 'Name', { autocomplete: 'off', required: true }, 'Lowercase letters, digits and "_", starting with a letter. Used in the API path.'),
        field('collection-title', 'Title (optional)', { autocomplete: 'off' })),
      h('button', { type: 'submit' }, 'Create collection'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const name = document.getElementById('collection-name').value.trim();
      try {
        await busy(form, () => api('POST', '/api/v1/collections', { name, title: document.getElementById('collection-title').value.trim(), fields: [] }));
        go(`/collections/${name}/schema`);
      } catch (e) { showError(e, ids); }
    });
    append(main, form);
  }
  append(main, h('h2', {}, 'All collections'), list);
  await load();
}

// A JSON value typed into a form control for a field of `type`.
function inputValue(type, raw) {
  if (raw === '') return null;
  if (type === 'integer') return /^-?\d+$/.test(raw) ? Number(raw) : raw;
  if (type === 'boolean') return raw === 'true';
  if (type === 'timestamp') { const d = new Date(raw); return Number.isNaN(d.getTime()) ? raw : d.toISOString(); }
  if (type === 'json') { try { return JSON.parse(raw); } catch (e) { return undefined; } }
  return raw;
}

function valueControl(id, f, value) {
  const text = value === null || value === undefined ? '' : (f.type === 'json' ? JSON.stringify(value) : String(value));
  if (f.type === 'boolean') {
    return h('select', { id, name: id }, ['', 'true', 'false'].map((v) => h('option', { value: v, selected: v === text }, v || '(empty)')));
  }
  if (f.type === 'enum') {
    return h('select', { id, name: id }, [''].concat(f.enum_values).map((v) => h('option', { value: v, selected: v === text }, v || '(empty)')));
  }
  if (f.type === 'json') return h('textarea', { id, name: id, rows: 3 }, text);
  const type = { integer: 'number', date: 'date', timestamp: 'datetime-local' }[f.type] || 'text';
  return h('input', { id, name: id, type, value: f.type === 'timestamp' ? toLocalInput(text) : text, autocomplete: 'off' });
}

// The filter from the URL as builder groups: all groups must match, and a
// group matches when any of its conditions does; a condition may be negated.
// That covers a leaf, {not: leaf}, {or: [...]} and {and: [...]} of those;
// other shapes (deeper nesting, built through the API) are kept as they are.
function isCondition(node) {
  const leaf = node && node.not ? node.not : node;
  return !!(leaf && leaf.field && leaf.op);
}

function filterGroups(filter) {
  if (!filter) return [];
  const groups = filter.and ? filter.and : [filter];
  const out = [];
  for (const g of groups) {
    const alternatives = g.or ? g.or : [g];
    if (!alternatives.length || !alternatives.every(isCondition)) return null;
    out.push(alternatives);
  }
  return out;
}

async function recordsView(main, name) {
  const collection = await api('GET', `/api/v1/collections/${name}`);
  const fields = collection.fields;
  const params = new URLSearchParams(location.search);
  let filter = null;
  try { filter = params.get('filter') ? JSON.parse(params.get('filter')) : null; } catch (e) { filter = null; }
  const sort = params.get('sort') || '';
  const writable = can('records:write');
  append(main,
    h('p', {}, collection.title || '', ' ',
      can('collections:manage') ? h('a', { href: `/collections/${name}/schema`, 'data-link': true, id: 'schema-link' }, 'Edit the schema') : null));

  // Filter builder: groups joined by AND, conditions in a group by OR.
  const groupsBox = h('div', { id: 'filter-rows' });
  let rowCount = 0;
  let groupCount = 0;
  const addRow = (group, node) => {
    const n = rowCount++;
    let leaf = node && node.not ? node.not : node;
    const notBox = h('input', { type: 'checkbox', id: `cond-not-${n}`, 'data-role': 'not', checked: !!(node && node.not) });
    const fieldSel = h('select', { id: `cond-field-${n}`, 'data-role': 'field' }, fields.map((f) => h('option', { value: f.name, selected: leaf && leaf.field === f.name }, f.name)));
    const opSel = h('select', { id: `cond-op-${n}`, 'data-role': 'op' });
    const valueSlot = h('span', {});
    const fillOps = () => {
      const f = fields.find((x) => x.name === fieldSel.value);
      opSel.replaceChildren(...OPS_BY_TYPE[f.type].map((o) => h('option', { value: o, selected: leaf && leaf.op === o }, OP_LABELS[o])));
      fillValue();
    };
    const fillValue = () => {
      const f = fields.find((x) => x.name === fieldSel.value);
      const id = `cond-value-${n}`;
      let v = leaf && leaf.field === f.name && leaf.op === opSel.value ? leaf.value : '';
      let control;
      if (opSel.value === 'is_null') {
        control = h('select', { id, 'data-role': 'value' }, h('option', { value: 'true', selected: v !== false }, 'yes'), h('option', { value: 'false', selected: v === false }, 'no'));
      } else if (opSel.value === 'in') {
        control = h('input', { id, 'data-role': 'value', value: Array.isArray(v) ? v.join(', ') : '', autocomplete: 'off' });
      } else {
        control = valueControl(id, f, v);
        control.dataset.role = 'value';
      }
      valueSlot.replaceChildren(h('label', { for: id, class: 'visually-hidden' }, `Value for condition ${n + 1}`), control);
    };
    fieldSel.addEventListener('change', () => { leaf = null; fillOps(); });
    opSel.addEventListener('change', fillValue);
    const remove = h('button', { type: 'button', class: 'link-button', onclick: () => {
      row.remove();
      if (!group.querySelector('.condition')) group.remove();
    } }, `Remove condition ${n + 1}`);
    const row = h('div', { class: 'condition', 'data-condition': n },
      h('span', { class: 'condition-join', 'aria-hidden': 'true' }, 'or'),
      notBox, h('label', { for: `cond-not-${n}` }, 'not'),
      h('label', { for: `cond-field-${n}`, class: 'visually-hidden' }, `Field for condition ${n + 1}`), fieldSel,
      h('label', { for: `cond-op-${n}`, class: 'visually-hidden' }, `Operator for condition ${n + 1}`), opSel,
      valueSlot, remove);
    group.querySelector('.group-conditions').append(row);
    fillOps();
  };
  const addGroup = (alternatives) => {
    const g = groupCount++;
    const group = h('fieldset', { class: 'filter-group', id: `filter-group-${g}`, 'data-group': g },
      h('legend', {}, `Group ${g + 1}: any of these`),
      h('div', { class: 'group-conditions' }),
      h('button', { type: 'button', id: `add-alternative-${g}`, onclick: () => addRow(group, null) }, `Add an alternative (or) to group ${g + 1}`));
    groupsBox.append(group);
    (alternatives.length ? alternatives : [null]).forEach((node) => addRow(group, node));
  };
  const initial = filterGroups(filter);
  (initial || []).forEach(addGroup);
  const filterForm = h('form', { id: 'records-filter', class: 'filters', role: 'search', 'aria-label': 'Filter records' },
    h('fieldset', {}, h('legend', {}, 'Conditions (every group must match; within a group, any condition)'), groupsBox,
      h('button', { type: 'button', id: 'add-condition', onclick: () => addGroup([]) }, 'Add a condition (and)')),
    initial === null ? h('p', { class: 'hint' }, 'This view uses a filter built through the API; it stays applied until you apply new conditions.') : null,
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit' }, 'Apply'),
      h('button', { type: 'button', id: 'records-clear', onclick: () => go(`/collections/${name}`) }, 'Clear')));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const groups = [];
    for (const group of groupsBox.querySelectorAll('.filter-group')) {
      const alternatives = [];
      for (const row of group.querySelectorAll('.condition')) {
        const fieldName = row.querySelector('[data-role=field]').value;
        const op = row.querySelector('[data-role=op]').value;
        const raw = row.querySelector('[data-role=value]').value;
        const f = fields.find((x) => x.name === fieldName);
        let value;
        if (op === 'is_null') value = raw === 'true';
        else if (op === 'in') value = raw.split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => inputValue(f.type, x));
        else if (op === 'contains' && f.type === 'json') value = inputValue('json', raw);
        else value = inputValue(f.type, raw);
        const leaf = { field: fieldName, op, value };
        alternatives.push(row.querySelector('[data-role=not]').checked ? { not: leaf } : leaf);
      }
      if (alternatives.length) groups.push(alternatives.length === 1 ? alternatives[0] : { or: alternatives });
    }
    const q = new URLSearchParams();
    if (groups.length === 1) q.set('filter', JSON.stringify(groups[0]));
    if (groups.length > 1) q.set('filter', JSON.stringify({ and: groups }));
    if (!groups.length && initial === null && params.get('filter')) q.set('filter', params.get('filter'));
    if (sort) q.set('sort', sort);
    go(`/collections/${name}${q.toString() ? `?${q}` : ''}`);
  });
  append(main, filterForm);

  const panel = h('div', { id: 'record-panel' });
  const results = h('div', { id: 'records-results', 'aria-live': 'polite' });
  const actions = h('div', { class: 'records-actions' });
  if (writable) {
    append(actions, h('button', { type: 'button', id: 'new-record', onclick: () => showRecord(null) }, 'New record'));
  }
  if (can('records:export')) {
    // The same filter and sort as the view, every matching record.
    const q = new URLSearchParams();
    if (params.get('filter')) q.set('filter', params.get('filter'));
    if (sort) q.set('sort', sort);
    append(actions, h('a', { id: 'records-export', class: 'button-link', download: '', href: `/api/v1/collections/${name}/export.csv${q.toString() ? `?${q}` : ''}` }, 'Export to CSV'));
    // The same export as a background job: for large views, or to fetch later.
    append(actions, h('button', { type: 'button', id: 'records-export-job', class: 'secondary', onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const body = {};
        if (params.get('filter')) body.filter = params.get('filter');
        if (sort) body.sort = sort;
        const created = await api('POST', `/api/v1/collections/${name}/exports`, body);
        go(`/exports?started=${created.id}`);
      } catch (e) { showError(e); button.disabled = false; }
    } }, 'Export in the background'));
  }
  append(main, actions);
  if (writable) append(main, importForm(name));
  append(main, panel, results);

  const sortKeys = sort ? sort.split(',') : [];
  const sortState = (fname) => {
    if (sortKeys[0] === fname) return 'ascending';
    if (sortKeys[0] === `-${fname}`) return 'descending';
    return null;
  };
  const sortLink = (fname) => {
    const next = sortState(fname) === 'ascending' ? `-${fname}` : fname;
    const q = new URLSearchParams(location.search);
    q.set('sort', next);
    return `/collections/${name}?${q}`;
  };
  const cursors = [];
  const loadPage = async (cursor) => {
    const q = new URLSearchParams();
    if (params.get('filter')) q.set('filter', params.get('filter'));
    if (sort) q.set('sort', sort);
    q.set('limit', '25');
    if (cursor) q.set('cursor', cursor);
    results.setAttribute('aria-busy', 'true');
    const page = await api('GET', `/api/v1/collections/${name}/records?${q}`);
    results.removeAttribute('aria-busy');
    if (page.items.length === 0) {
      results.replaceChildren(h('p', { id: 'records-empty', class: 'empty' }, params.get('filter') ? 'No records match these conditions.' : 'This collection has no records yet.'));
      return;
    }
    const header = (label, key) => {
      const state = sortState(key);
      return h('th', { scope: 'col', 'aria-sort': state || 'none' },
        h('a', { href: sortLink(key), 'data-link': true, 'data-sort': key }, label, state ? (state === 'ascending' ? ' ▲' : ' ▼') : ''));
    };
    const table = h('table', { id: 'records-table' },
      h('caption', {}, 'Records (choose a column heading to sort)'),
      h('thead', {}, h('tr', {}, header('id', 'id'), fields.map((f) => (f.type === 'json' ? h('th', { scope: 'col' }, f.name) : header(f.name, f.name))), h('th', { scope: 'col' }, 'Version'))),
      h('tbody', {}, page.items.map((r) => h('tr', { 'data-record-id': r.id },
        h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link-button', 'data-action': 'open', onclick: () => showRecord(r.id) }, `#${r.id}`)),
        fields.map((f) => h('td', { 'data-field': f.name }, r.data[f.name] === null || r.data[f.name] === undefined ? '—' : (f.type === 'json' ? JSON.stringify(r.data[f.name]) : String(r.data[f.name])))),
        h('td', {}, String(r.version))))));
    const nav = h('div', { class: 'pager' },
      cursors.length ? h('button', { type: 'button', id: 'records-prev', onclick: () => { cursors.pop(); loadPage(cursors[cursors.length - 1]); } }, 'Previous page') : null,
      page.next_cursor ? h('button', { type: 'button', id: 'records-next', onclick: () => { cursors.push(page.next_cursor); loadPage(page.next_cursor); } }, 'Next page') : null);
    results.replaceChildren(table, nav);
  };

  const showRecord = async (id) => {
    const record = id ? await api('GET', `/api/v1/collections/${name}/records/${id}`) : null;
    const fieldIds = {};
    const controls = fields.map((f) => {
      const cid = `rec-${f.name}`;
      fieldIds[f.name] = cid;
      const control = valueControl(cid, f, record ? record.data[f.name] : (f.default === null ? '' : f.default));
      if (!writable) control.setAttribute('disabled', '');
      return h('div', { class: 'field' },
        h('label', { for: cid }, `${f.name}${f.required ? ' (required)' : ''}`),
        h('p', { class: 'hint' }, f.type === 'enum' ? `one of ${f.enum_values.join(', ')}` : f.type),
        control,
        h('p', { class: 'field-error', id: `${cid}-error` }));
    });
    for (const c of controls) {
      const input = c.querySelector('input, select, textarea');
      input.setAttribute('aria-describedby', `${input.id}-error`);
    }
    const form = h('form', { id: 'record-form', novalidate: true, 'aria-labelledby': 'record-heading' },
      h('h2', { id: 'record-heading', tabindex: '-1' }, record ? `Record #${record.id} (version ${record.version})` : 'New record'),
      h('div', { class: 'grid' }, controls),
      writable ? h('button', { type: 'submit' }, record ? 'Save changes' : 'Create record') : null,
      h('button', { type: 'button', onclick: () => panel.replaceChildren() }, 'Close'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const data = {};
      let bad = false;
      for (const f of fields) {
        const raw = document.getElementById(fieldIds[f.name]).value;
        const value = inputValue(f.type, raw);
        if (value === undefined) { setFieldError(fieldIds[f.name], 'This is not valid JSON.'); bad = true; continue; }
        if (record || value !== null) data[f.name] = value;
      }
      if (bad) return;
      try {
        if (record) {
          await busy(form, () => fetchWithIfMatch(`/api/v1/collections/${name}/records/${record.id}`, record.version, { data }));
          notify(`Record #${record.id} saved.`);
        } else {
          const created = await busy(form, () => api('POST', `/api/v1/collections/${name}/records`, { data }));
          notify(`Record #${created.id} created.`);
        }
        panel.replaceChildren();
        await loadPage(cursors[cursors.length - 1]);
      } catch (e) {
        showError(e, fieldIds);
      }
    });
    const extras = [];
    if (record && writable) {
      const del = h('button', { type: 'button', 'data-action': 'delete-record', class: 'danger' }, 'Delete record');
      del.addEventListener('click', () => {
        const confirm = h('button', { type: 'button', 'data-action': 'confirm-delete', class: 'danger' }, `Really delete #${record.id}`);
        confirm.addEventListener('click', async () => {
          try {
            await fetchWithIfMatch(`/api/v1/collections/${name}/records/${record.id}`, record.version, null);
            notify(`Record #${record.id} deleted.`);
            panel.replaceChildren();
            await loadPage(cursors[cursors.length - 1]);
          } catch (e) { showError(e); }
        });
        del.replaceWith(confirm);
        confirm.focus();
      });
      extras.push(del);
    }
    if (record && can('audit:read')) {
      const history = await api('GET', `/api/v1/audit?target=${encodeURIComponent(`collection:${name}/record:${record.id}`)}&limit=20`);
      extras.push(h('section', { id: 'record-history', 'aria-labelledby': 'history-heading' },
        h('h3', { id: 'history-heading' }, 'History'),
        history.items.length === 0 ? h('p', { class: 'empty' }, 'No audit entries for this record.') :
          h('ul', {}, history.items.map((e) => h('li', { 'data-action': e.action },
            `${formatTime(e.occurred_at)}: ${e.action} by ${e.actor}`,
            e.details && e.details.changed ? ` (changed: ${e.details.changed.join(', ') || 'nothing'})` : '')))));
    }
    panel.replaceChildren(form, ...extras);
    document.getElementById('record-heading').focus();
  };

  await loadPage(null);
}

// PATCH or DELETE with If-Match, so a concurrent change is never overwritten.
async function fetchWithIfMatch(path, version, body) {
  const headers = { Accept: 'application/json', 'If-Match': `"${version}"` };
  if (state.csrf) headers['X-CSRF-Token'] = state.csrf;
  if (body) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method: body ? 'PATCH' : 'DELETE', headers, body: body ? JSON.stringify(body) : undefined, credentials: 'same-origin' });
  let data = null;
  if (res.status !== 204) { try { data = await res.json(); } catch (e) { data = null; } }
  if (!res.ok) {
    const error = new ApiError(res.status, data);
    if (res.status === 412) error.message = 'Someone changed this record since you opened it. Close it and open it again to see their change.';
    throw error;
  }
  return data;
}

async function schemaView(main, name) {
  const collection = await api('GET', `/api/v1/collections/${name}`);
  append(main, h('p', {}, h('a', { href: `/collections/${name}`, 'data-link': true }, `Back to the records of ${name}`)));
  const manage = can('collections:manage');
  const fieldsTable = h('table', { id: 'fields-table' },
    h('caption', {}, `${collection.fields.length} field${collection.fields.length === 1 ? '' : 's'}`),
    h('thead', {}, h('tr', {}, ['Name', 'Type', 'Required', 'Unique', 'Indexed', 'Sensitive', 'Default', manage ? 'Change' : null].filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, collection.fields.map((f) => {
      const change = async (button, body, message) => {
        button.disabled = true;
        try { await api('PATCH', `/api/v1/collections/${name}/fields/${f.name}`, body); notify(message); render(); } catch (e) { showError(e); button.disabled = false; }
      };
      const toggle = (key, label) => {
        const b = h('button', { type: 'button', 'data-action': `toggle-${key}` }, `${f[key] ? 'Remove' : 'Make'} ${label}`);
        b.addEventListener('click', () => change(b, { [key]: !f[key] }, `${f.name}: ${label} ${f[key] ? 'off' : 'on'}.`));
        return b;
      };
      const cells = [];
      if (manage) {
        const renameId = `rename-${f.name}`;
        const renameForm = h('form', { class: 'inline-form', 'data-action': 'rename' },
          h('label', { for: renameId, class: 'visually-hidden' }, `New name for ${f.name}`),
          h('input', { id: renameId, placeholder: 'new name', autocomplete: 'off' }),
          h('button', { type: 'submit' }, 'Rename'));
        renameForm.addEventListener('submit', (event) => {
          event.preventDefault();
          change(renameForm.querySelector('button'), { name: document.getElementById(renameId).value.trim() }, `${f.name} renamed.`);
        });
        const hide = h('button', { type: 'button', 'data-action': 'hide', class: 'danger' }, 'Remove field');
        hide.addEventListener('click', async () => {
          hide.disabled = true;
          try { await api('DELETE', `/api/v1/collections/${name}/fields/${f.name}`); notify(`${f.name} removed from the API; its data stays until hidden fields are purged.`); render(); } catch (e) { showError(e); hide.disabled = false; }
        });
        cells.push(h('td', { class: 'actions' }, renameForm, toggle('required', 'required'),
          f.type === 'json' ? null : toggle('unique', 'unique'), f.type === 'json' ? null : toggle('indexed', 'indexed'),
          toggle('sensitive', 'sensitive'), hide));
      }
      return h('tr', { 'data-field': f.name },
        h('th', { scope: 'row' }, f.name),
        h('td', {}, f.type === 'enum' ? `enum (${f.enum_values.join(', ')})` : f.type),
        h('td', {}, f.required ? 'yes' : 'no'), h('td', {}, f.unique ? 'yes' : 'no'),
        h('td', {}, f.indexed ? 'yes' : 'no'), h('td', {}, f.sensitive ? 'yes' : 'no'),
        h('td', {}, f.default === null ? '—' : JSON.stringify(f.default)), cells);
    })));
  append(main, h('h2', {}, 'Fields'), collection.fields.length ? fieldsTable : h('p', { class: 'empty', id: 'fields-empty' }, 'No fields yet.'));
  if (!manage) return;

  const ids = { 'field.name': 'field-name', 'field.type': 'field-type', 'field.enum_values': 'field-enum', 'field.default': 'field-default' };
  const form = h('form', { id: 'field-add-form', novalidate: true },
    h('h2', {}, 'Add a field'),
    h('div', { class: 'grid' },
      field('field-name', 'Name', { autocomplete: 'off', required: true }, 'Lowercase letters, digits and "_".'),
      field('field-type', 'Type', { tag: 'select', options: FIELD_TYPES.map((t) => h('option', { value: t }, t)) }),
      field('field-enum', 'Enum values (comma-separated)', { autocomplete: 'off' }, 'Only for enum fields.'),
      field('field-default', 'Default (optional)', { autocomplete: 'off' }, 'Needed to add a required field to a collection that has records.')),
    h('fieldset', {}, h('legend', {}, 'Options'),
      ['required', 'unique', 'indexed', 'sensitive'].map((o) => h('div', { class: 'check' },
        h('input', { type: 'checkbox', id: `field-${o}` }), h('label', { for: `field-${o}` }, o)))),
    h('button', { type: 'submit' }, 'Add field'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const type = document.getElementById('field-type').value;
    const enumRaw = document.getElementById('field-enum').value.trim();
    const defaultRaw = document.getElementById('field-default').value;
    const body = {
      name: document.getElementById('field-name').value.trim(),
      type,
      required: document.getElementById('field-required').checked,
      unique: document.getElementById('field-unique').checked,
      indexed: document.getElementById('field-indexed').checked,
      sensitive: document.getElementById('field-sensitive').checked,
      enum_values: type === 'enum' ? enumRaw.split(',').map((x) => x.trim()).filter(Boolean) : [],
    };
    if (defaultRaw !== '') {
      const value = inputValue(type, defaultRaw);
      if (value === undefined) return setFieldError('field-default', 'This is not valid JSON.');
      body.default = value;
    }
    try {
      await busy(form, () => api('POST', `/api/v1/collections/${name}/fields`, body));
      notify(`Field ${body.name} added.`);
      render();
    } catch (e) { showError(e, ids); }
  });
  const purge = h('button', { type: 'button', id: 'purge-hidden' }, 'Purge removed fields');
  purge.addEventListener('click', async () => {
    purge.disabled = true;
    try { const r = await api('POST', `/api/v1/collections/${name}/purge-hidden-fields`, {}); notify(r.purged.length ? `Purged: ${r.purged.join(', ')}.` : 'There were no removed fields to purge.'); } catch (e) { showError(e); }
    purge.disabled = false;
  });
  const delForm = h('form', { id: 'collection-delete-form', novalidate: true },
    h('h2', {}, 'Delete this collection'),
    field('delete-confirm', `Type ${name} to confirm`, { autocomplete: 'off' }, 'Deletes the collection and all its records.'),
    h('button', { type: 'submit', class: 'danger' }, 'Delete collection'));
  delForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const confirm = document.getElementById('delete-confirm').value.trim();
    try {
      await busy(delForm, () => api('DELETE', `/api/v1/collections/${name}?confirm=${encodeURIComponent(confirm)}`));
      go('/collections');
    } catch (e) { showError(e, { confirm: 'delete-confirm' }); }
  });
  append(main, form, h('h2', {}, 'Removed fields'),
    h('p', {}, 'Removed fields disappear from the API at once; their data stays until purged.'), purge, delForm);
}

render();
