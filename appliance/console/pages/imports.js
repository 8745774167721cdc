// Imports: the upload form a records page shows, and the list of one's own
// (admins: everyone's) imports, followed while any is running.

import { api, request } from '../lib/api.js';
import { append, busy, clearErrors, field, followWhile, h, setFieldError, showError, table } from '../lib/dom.js';
import { formatBytes, formatTime } from '../lib/format.js';
import { go } from '../lib/router.js';
import { measure, progressView } from '../components/progress.js';

// A file upload that becomes an import job of this collection.
export function importForm(name) {
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
      const created = await busy(form, () => request('POST', `/api/v1/collections/${name}/imports?format=${format}&mode=${mode}`, {
        body: file,
        headers: { 'Content-Type': format === 'csv' ? 'text/csv' : 'application/x-ndjson' },
      }));
      go(`/imports?started=${created.id}`);
    } catch (e) { showError(e, { file: 'import-file', format: 'import-file', mode: 'import-mode' }); }
  });
  return h('details', { id: 'records-import', class: 'import' }, h('summary', {}, 'Import records from a file'), form);
}

// Imports: one's own (admins: everyone's), followed while any is running.
export async function importsView(main) {
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
      const m = i.state === 'running' ? measure('import', i.progress) : null;
      const progress = m ? progressView(`import-${i.id}`, `Import ${i.id} progress`, m) : null;
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
    results.replaceChildren(table('imports-table', 'Imports, newest first',
      ['Import', 'Collection', 'File', 'State', 'Rows', 'Size', 'Started', 'Invalid rows'], rows));
    return list.items.some((i) => i.state === 'queued' || i.state === 'running');
  };
  followWhile(results, await draw(), draw);
}
