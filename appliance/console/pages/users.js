// Users: the list, and for admins creating accounts, roles, disabling,
// signing out everywhere, resetting two-factor, e-mail and passwords.

import { api, can } from '../lib/api.js';
import { append, busy, clearErrors, field, h, notify, showError, table } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';

const ROLES = ['admin', 'editor', 'viewer', 'auditor'];

export async function usersView(main) {
  const manage = can('users:manage');
  const list = h('div', { id: 'users-list' });
  const load = async () => {
    const users = (await api('GET', '/api/v1/users')).items;
    if (users.length === 0) { list.replaceChildren(h('p', { id: 'users-empty' }, 'No users yet.')); return; }
    list.replaceChildren(table('users-table', `${users.length} user${users.length === 1 ? '' : 's'}`,
      ['Username', 'Name', 'E-mail', 'Role', 'Status', 'Two-factor', 'Created', manage ? 'Actions' : null], users.map((u) => userRow(u, manage, load))));
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
