// A collection's records: the filter builder, a sortable page of records
// with cursors, the record panel, CSV export (now or as a job) and import.

import { api, can } from '../lib/api.js';
import { append, h, showError } from '../lib/dom.js';
import { go } from '../lib/router.js';
import { filterBuilder } from '../components/filter-builder.js';
import { showRecord as openRecord } from '../components/record-form.js';
import { fieldType, showValue } from '../fields/index.js';
import { importForm } from './imports.js';

export async function recordsView(main, name) {
  const collection = await api('GET', `/api/v1/collections/${name}`);
  const fields = collection.fields;
  const params = new URLSearchParams(location.search);
  const sort = params.get('sort') || '';
  const writable = can('records:write');
  append(main,
    h('p', {}, collection.title || '', ' ',
      can('collections:manage') ? h('a', { href: `/collections/${name}/schema`, 'data-link': true, id: 'schema-link' }, 'Edit the schema') : null));
  append(main, filterBuilder(name, fields, params, sort));

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
  // How many records match: counted with the first page (exactly up to
  // 10,000, then "more than"), kept while paging.
  let matching = null;
  const countText = (count) => {
    const n = count.value.toLocaleString();
    const what = params.get('filter') ? 'matching records' : 'records';
    return count.more ? `More than ${n} ${what}` : `${n} ${count.value === 1 ? what.replace(/s$/, '') : what}`;
  };
  const loadPage = async (cursor) => {
    const q = new URLSearchParams();
    if (params.get('filter')) q.set('filter', params.get('filter'));
    if (sort) q.set('sort', sort);
    q.set('limit', '25');
    if (!cursor) q.set('count', 'bounded');
    if (cursor) q.set('cursor', cursor);
    results.setAttribute('aria-busy', 'true');
    const page = await api('GET', `/api/v1/collections/${name}/records?${q}`);
    if (page.count) matching = page.count;
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
      h('thead', {}, h('tr', {}, header('id', 'id'), fields.map((f) => (fieldType(f.type).sortable ? header(f.name, f.name) : h('th', { scope: 'col' }, f.name))), h('th', { scope: 'col' }, 'Version'))),
      h('tbody', {}, page.items.map((r) => h('tr', { 'data-record-id': r.id },
        h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link-button', 'data-action': 'open', onclick: () => showRecord(r.id) }, `#${r.id}`)),
        fields.map((f) => h('td', { 'data-field': f.name }, showValue(f, r.data[f.name]))),
        h('td', {}, String(r.version))))));
    const nav = h('div', { class: 'pager' },
      cursors.length ? h('button', { type: 'button', id: 'records-prev', onclick: () => { cursors.pop(); loadPage(cursors[cursors.length - 1]); } }, 'Previous page') : null,
      page.next_cursor ? h('button', { type: 'button', id: 'records-next', onclick: () => { cursors.push(page.next_cursor); loadPage(page.next_cursor); } }, 'Next page') : null);
    const counted = matching ? [h('p', { id: 'records-count' }, countText(matching))] : [];
    results.replaceChildren(...counted, table, nav);
  };

  const showRecord = (id) => openRecord(panel, { name, fields, writable, reload: () => loadPage(cursors[cursors.length - 1]) }, id);

  await loadPage(null);
}
