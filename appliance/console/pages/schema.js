// A collection's schema: its fields with their options and, for admins,
// renaming, options, removing and adding fields, purging removed fields'
// data and deleting the collection.

import { api, can } from '../lib/api.js';
import { append, busy, clearErrors, field, h, notify, setFieldError, showError } from '../lib/dom.js';
import { go, render } from '../lib/router.js';
import { describeType, FIELD_TYPES, fieldType, parseValue } from '../fields/index.js';

export async function schemaView(main, name) {
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
      const indexable = fieldType(f.type).indexable !== false;
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
          indexable ? toggle('unique', 'unique') : null, indexable ? toggle('indexed', 'indexed') : null,
          toggle('sensitive', 'sensitive'), hide));
      }
      return h('tr', { 'data-field': f.name },
        h('th', { scope: 'row' }, f.name),
        h('td', {}, describeType(f)),
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
      const value = parseValue(type, defaultRaw);
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
