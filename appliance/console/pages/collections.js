// Collections: the list, and for admins creating one.

import { api, can } from '../lib/api.js';
import { append, busy, clearErrors, field, h, showError, table } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { go } from '../lib/router.js';

export async function collectionsView(main) {
  const list = h('div', { id: 'collections-list' });
  const load = async () => {
    const items = (await api('GET', '/api/v1/collections')).items;
    if (items.length === 0) {
      list.replaceChildren(h('p', { id: 'collections-empty', class: 'empty' },
        can('collections:manage') ? 'No collections yet. Create the first one above.' : 'No collections yet. An administrator creates them.'));
      return;
    }
    list.replaceChildren(table('collections-table', `${items.length} collection${items.length === 1 ? '' : 's'}`,
      ['Name', 'Title', 'Fields', 'Created'],
      items.map((c) => h('tr', { 'data-collection': c.name },
        h('th', { scope: 'row' }, h('a', { href: `/collections/${c.name}`, 'data-link': true }, c.name)),
        h('td', {}, c.title || '—'),
        h('td', {}, c.fields.map((f) => `${f.name} (${f.type})`).join(', ') || '—'),
        h('td', {}, formatTime(c.created_at))))));
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
