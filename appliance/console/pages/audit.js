// The audit log: filters in the address bar, newest first, older pages on
// demand.

import { api } from '../lib/api.js';
import { append, field, h, showError } from '../lib/dom.js';
import { formatTime, toLocalInput } from '../lib/format.js';
import { go } from '../lib/router.js';

const AUDIT_ACTIONS = ['auth.login', 'auth.logout', 'auth.logout_everywhere', 'auth.unlock', 'auth.password_reset', 'setup.complete', 'setup.token_issue',
  'account.password_change', 'account.reauthenticate', 'account.mfa_enable', 'account.mfa_disable', 'token.create', 'token.revoke',
  'user.create', 'user.update', 'user.password_reset', 'user.password_reset_link', 'user.sessions_revoke', 'user.mfa_reset', 'settings.update',
  'collection.create', 'collection.delete', 'field.add', 'field.update', 'field.hide', 'field.purge',
  'record.create', 'record.update', 'record.delete', 'record.export', 'record.export.done',
  'export.create', 'export.ready', 'export.download', 'export.delete', 'job.cancel', 'job.retry',
  'import.create', 'import.done', 'webhook.create', 'webhook.update', 'webhook.delete', 'webhook.rotate_secret', 'webhook.redeliver', 'webhook.disable'];

export async function auditView(main) {
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
  const entries = h('table', { id: 'audit-table' },
    h('caption', {}, 'Audit entries, newest first'),
    h('thead', {}, h('tr', {}, ['#', 'Time', 'Actor', 'Action', 'Target', 'Outcome', 'Address', 'Request id', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  results.replaceChildren(entries);
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
