// Signing in, the first admin's setup and a password reset link: the pages
// someone sees before they have a session.

import { api, loadMe, state } from '../lib/api.js';
import { append, busy, clearErrors, field, h, notify, setFieldError, showError } from '../lib/dom.js';
import { go, render } from '../lib/router.js';

export async function setupView(main) {
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
export async function resetPasswordView(main) {
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

export async function loginView(main) {
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
