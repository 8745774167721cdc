// Exports: one's own (admins: everyone's), followed while any is running.

import { api } from '../lib/api.js';
import { append, followWhile, h, notify, showError, table } from '../lib/dom.js';
import { formatBytes, formatTime } from '../lib/format.js';
import { measure, progressView } from '../components/progress.js';

export async function exportsView(main) {
  const params = new URLSearchParams(location.search);
  append(main, h('p', { class: 'hint' },
    'Exports started from a collection\'s records page with "Export in the background". ',
    'A ready file can be downloaded until it expires; each download link works for 15 minutes.'));
  const results = h('div', { id: 'exports-results', 'aria-live': 'polite' });
  append(main, results);
  const draw = async () => {
    const list = await api('GET', '/api/v1/exports?limit=100');
    if (!list.items.length) {
      results.replaceChildren(h('p', { id: 'exports-empty', class: 'empty' }, 'No exports yet. Start one from a collection\'s records page.'));
      return false;
    }
    const rows = list.items.map((e) => {
      const m = e.state === 'running' ? measure('export', e.progress) : null;
      const progress = m ? progressView(`export-${e.id}`, `Export ${e.id} progress`, m) : null;
      const actions = h('td', {},
        e.download_url ? h('a', { href: e.download_url, download: '', class: 'button-link', 'data-action': 'download' }, `Download export ${e.id}`) : null,
        h('button', { type: 'button', class: 'link-button', 'data-action': 'delete', onclick: async () => {
          try { await api('DELETE', `/api/v1/exports/${e.id}`); notify(`Export ${e.id} deleted.`); await draw(); } catch (err) { showError(err); }
        } }, `Delete export ${e.id}`));
      return h('tr', { 'data-export-id': e.id, class: params.get('started') === String(e.id) ? 'highlight' : null },
        h('th', { scope: 'row' }, `#${e.id}`),
        h('td', {}, e.collection),
        h('td', { 'data-field': 'state' }, e.state, progress ? ' ' : null, progress, e.error ? h('span', { class: 'field-error' }, ` ${e.error}`) : null),
        h('td', { 'data-field': 'rows' }, e.rows === null || e.rows === undefined ? '—' : String(e.rows)),
        h('td', {}, formatBytes(e.bytes)),
        h('td', {}, h('code', { class: 'details' }, [e.request.filter ? `filter ${e.request.filter}` : 'every record', e.request.sort ? ` · sort ${e.request.sort}` : ''].join(''))),
        h('td', {}, formatTime(e.created_at)),
        h('td', {}, formatTime(e.expires_at)),
        actions);
    });
    results.replaceChildren(table('exports-table', 'Exports, newest first',
      ['Export', 'Collection', 'State', 'Rows', 'Size', 'Records', 'Started', 'Expires', 'Actions'], rows));
    return list.items.some((e) => e.state === 'queued' || e.state === 'running');
  };
  // Follow running exports until they finish or the page is left.
  followWhile(results, await draw(), draw);
}
