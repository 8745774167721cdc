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

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.csrf && method !== 'GET') headers['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
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
  '/users': ['users', 'Users', usersView],
  '/account': ['account', 'My account', accountView],
  '/audit': ['audit', 'Audit log', auditView],
};

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
    can('users:read') ? h('li', {}, link('/users', 'Users')) : null,
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
  const [name, title, view] = views[path] || ['not-found', 'Not found', notFoundView];
  main.dataset.ready = 'false';
  main.dataset.page = name;
  main.setAttribute('aria-busy', 'true');
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  if (!state.me && name !== 'login' && name !== 'setup') {
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
// A setup link pasted into a tab already on /setup changes only the hash.
window.addEventListener('hashchange', () => { if (location.pathname === '/setup') render(); });

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
      h('thead', {}, h('tr', {}, ['Username', 'Name', 'Role', 'Status', 'Two-factor', 'Created', manage ? 'Actions' : null].filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
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
      h('label', { for: roleId, class: 'visually-hidden' }, `Role for ${user.username}`), select, save, toggle, sessions, resetMfa, pwForm));
  }
  return h('tr', { 'data-username': user.username },
    h('th', { scope: 'row' }, user.username),
    h('td', {}, user.display_name || '—'),
    h('td', { 'data-field': 'role' }, user.role),
    h('td', { 'data-field': 'status' }, user.disabled ? 'disabled' : 'active'),
    h('td', {}, user.mfa_enabled ? 'on' : 'off'),
    h('td', {}, formatTime(user.created_at)),
    actions);
}

function createUserForm(reload) {
  const ids = { username: 'new-username', display_name: 'new-display-name', role: 'new-role', password: 'new-password' };
  const form = h('form', { id: 'user-create-form', novalidate: true },
    h('h2', {}, 'Create a user'),
    h('div', { class: 'grid' },
      field('new-username', 'Username', { autocomplete: 'off', required: true }, 'Lowercase letters, digits, ".", "_" or "-".'),
      field('new-display-name', 'Display name (optional)', { autocomplete: 'off' }),
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

const AUDIT_ACTIONS = ['auth.login', 'auth.logout', 'auth.logout_everywhere', 'setup.complete', 'setup.token_issue',
  'account.password_change', 'account.reauthenticate', 'account.mfa_enable', 'account.mfa_disable', 'token.create', 'token.revoke',
  'user.create', 'user.update', 'user.password_reset', 'user.sessions_revoke', 'user.mfa_reset', 'settings.update'];

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

render();
