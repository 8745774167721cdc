// My account: profile, password, two-factor authentication, API tokens and
// signing out everywhere.

import { api, loadMe, state } from '../lib/api.js';
import { append, busy, clearErrors, field, h, notify, setFieldError, showError, table } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { renderNav, signedOut } from '../lib/router.js';

export async function accountView(main) {
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
    list.replaceChildren(table('tokens-table', 'Your tokens',
      ['Name', 'Starts with', 'Permissions', 'Created', 'Expires', 'Last used', 'Status', 'Actions'], tokens.map((t) => tokenRow(t, load))));
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
      signedOut();
    } catch (e) { showError(e); button.disabled = false; }
  });
  return h('section', { 'aria-labelledby': 'sessions-heading' },
    h('h2', { id: 'sessions-heading' }, 'Sessions'),
    h('p', {}, 'Ends every session of your account, on every device, including this one.'),
    button);
}
