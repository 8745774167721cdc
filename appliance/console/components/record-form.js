// One record in the records page's panel: its form (new or existing, saved
// with If-Match), deletion with a confirmation, and its audit history.

import { api, can, withIfMatch } from '../lib/api.js';
import { busy, clearErrors, h, notify, setFieldError, showError } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { parseValue, typeHint, valueControl } from '../fields/index.js';

// Shows record `id` (null: a new one) of collection `name` in `panel`;
// `reload` redraws the list after a change.
export async function showRecord(panel, { name, fields, writable, reload }, id) {
  const record = id ? await api('GET', `/api/v1/collections/${name}/records/${id}`) : null;
  const fieldIds = {};
  const controls = fields.map((f) => {
    const cid = `rec-${f.name}`;
    fieldIds[f.name] = cid;
    const control = valueControl(cid, f, record ? record.data[f.name] : (f.default === null ? '' : f.default));
    if (!writable) control.setAttribute('disabled', '');
    return h('div', { class: 'field' },
      h('label', { for: cid }, `${f.name}${f.required ? ' (required)' : ''}`),
      h('p', { class: 'hint' }, typeHint(f)),
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
      const value = parseValue(f.type, raw);
      if (value === undefined) { setFieldError(fieldIds[f.name], 'This is not valid JSON.'); bad = true; continue; }
      if (record || value !== null) data[f.name] = value;
    }
    if (bad) return;
    try {
      if (record) {
        await busy(form, () => withIfMatch(`/api/v1/collections/${name}/records/${record.id}`, record.version, { data }));
        notify(`Record #${record.id} saved.`);
      } else {
        const created = await busy(form, () => api('POST', `/api/v1/collections/${name}/records`, { data }));
        notify(`Record #${created.id} created.`);
      }
      panel.replaceChildren();
      await reload();
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
          await withIfMatch(`/api/v1/collections/${name}/records/${record.id}`, record.version, null);
          notify(`Record #${record.id} deleted.`);
          panel.replaceChildren();
          await reload();
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
}
