// Webhooks for admins: subscriptions, secret rotation, delivery log,
// redelivery.

import { api, can } from '../lib/api.js';
import { append, busy, clearErrors, field, h, notify, setFieldError, showError, table } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';

const WEBHOOK_EVENTS = ['record.created', 'record.updated', 'record.deleted', 'export.completed', 'import.completed'];

export async function webhooksView(main) {
  const params = new URLSearchParams(location.search);
  append(main, h('p', { class: 'hint' },
    'A webhook POSTs a signed JSON event to a URL when records change or an export is ready. ',
    'Failed deliveries are retried for hours, then listed as failed here for redelivery. ',
    'Receivers verify the webhook-signature header with the secret shown when the webhook is created.'));
  const collections = can('records:read') ? (await api('GET', '/api/v1/collections')).items.map((c) => c.name) : [];
  const ids = { url: 'webhook-url', description: 'webhook-description', collection: 'webhook-collection', events: 'webhook-events' };
  const secretBox = h('div', { id: 'webhook-created', 'aria-live': 'polite' });
  const showSecret = (title, secret) => secretBox.replaceChildren(h('div', { class: 'secret-box' },
    h('p', {}, `${title} Copy the secret now. It is shown only this once:`),
    h('code', { id: 'webhook-secret' }, secret)));
  const form = h('form', { id: 'webhook-create-form', novalidate: true },
    h('h2', {}, 'Add a webhook'),
    field('webhook-url', 'URL', { type: 'url', autocomplete: 'off', required: true, spellcheck: 'false' },
      'http:// or https://, no user name or password in it.'),
    field('webhook-description', 'Description (optional)', { autocomplete: 'off', maxlength: 200 }),
    field('webhook-collection', 'Collection', { tag: 'select', options: [h('option', { value: '' }, 'every collection')].concat(collections.map((c) => h('option', { value: c }, c))) }),
    h('fieldset', { id: 'webhook-events', 'aria-describedby': 'webhook-events-error' }, h('legend', {}, 'Events'),
      WEBHOOK_EVENTS.map((e) => h('div', { class: 'check' },
        h('input', { type: 'checkbox', name: 'event', value: e, id: `event-${e.replace('.', '-')}` }),
        h('label', { for: `event-${e.replace('.', '-')}` }, e))),
      h('p', { class: 'field-error', id: 'webhook-events-error' })),
    h('button', { type: 'submit' }, 'Add webhook'));
  const list = h('div', { id: 'webhooks-results', 'aria-live': 'polite' });
  const log = h('div', { id: 'webhook-log' });
  append(main, list, log, form, secretBox);

  const showLog = async (webhook) => {
    const detail = h('div', { id: 'delivery-detail' });
    const drawLog = async () => {
      const page = await api('GET', `/api/v1/webhooks/${webhook.id}/deliveries?limit=50`);
      const table = page.items.length === 0
        ? h('p', { id: 'deliveries-empty', class: 'empty' }, 'No deliveries yet.')
        : h('table', { id: 'deliveries-table' },
          h('caption', {}, `Deliveries to ${webhook.url}, newest first`),
          h('thead', {}, h('tr', {}, ['Delivery', 'Event', 'State', 'Attempts', 'Last status', 'Last error', 'Created', 'Next attempt', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, page.items.map((d) => h('tr', { 'data-delivery-id': d.id },
            h('th', { scope: 'row' }, `#${d.id}`),
            h('td', {}, d.event),
            h('td', { 'data-field': 'state', class: d.state === 'failed' ? 'outcome-failure' : null }, d.state),
            h('td', {}, String(d.attempts)),
            h('td', { 'data-field': 'status' }, d.last_status === null ? '—' : String(d.last_status)),
            h('td', {}, d.last_error || '—'),
            h('td', {}, formatTime(d.created_at)),
            h('td', {}, d.next_attempt_at ? formatTime(d.next_attempt_at) : '—'),
            h('td', {},
              h('button', { type: 'button', class: 'link-button', 'data-action': 'attempts', onclick: () => showAttempts(d).catch(showError) }, `Attempts of delivery ${d.id}`),
              webhook.enabled ? h('button', { type: 'button', class: 'link-button', 'data-action': 'redeliver', onclick: () => redeliver(d) }, `Redeliver delivery ${d.id}`) : null)))));
      log.replaceChildren(h('h2', { id: 'webhook-log-title', tabindex: '-1' }, `Delivery log of webhook ${webhook.id}`), table, detail);
      return page.items.some((d) => d.state === 'pending');
    };
    const showAttempts = async (d) => {
      const full = await api('GET', `/api/v1/webhooks/${webhook.id}/deliveries/${d.id}`);
      detail.replaceChildren(h('h3', { id: 'delivery-detail-title', tabindex: '-1' }, `Attempts of delivery ${d.id} (${full.event}, event ${full.event_id})`),
        full.attempts_log.length === 0 ? h('p', { class: 'empty' }, 'No attempt yet.') : h('table', { id: 'delivery-attempts' },
          h('thead', {}, h('tr', {}, ['Attempt', 'At', 'URL', 'Address', 'Status', 'Latency', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, full.attempts_log.map((a) => h('tr', { 'data-attempt': a.attempt },
            h('th', { scope: 'row' }, String(a.attempt)), h('td', {}, formatTime(a.at)), h('td', {}, h('code', {}, a.url)),
            h('td', {}, a.address || '—'), h('td', { 'data-field': 'status' }, a.status === null ? 'no response' : String(a.status)),
            h('td', {}, `${a.latency_ms} ms`), h('td', {}, a.error || '—'))))),
        h('h4', {}, 'Payload'),
        h('pre', { id: 'delivery-payload', class: 'details' }, JSON.stringify(full.payload, null, 2)));
      document.getElementById('delivery-detail-title').focus();
    };
    const redeliver = async (d) => {
      try {
        const again = await api('POST', `/api/v1/webhooks/${webhook.id}/deliveries/${d.id}/redeliver`, {});
        notify(`Delivery ${d.id} queued again as delivery ${again.id}.`);
        follow(await drawLog());
      } catch (e) { showError(e); }
    };
    // Follows pending deliveries until they settle or the log is replaced.
    let following = false;
    const follow = async (pending) => {
      if (following || !pending) return;
      following = true;
      const mine = log.firstChild;
      while (pending && log.firstChild === mine) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (log.firstChild !== mine) break;
        try { pending = await drawLog(); } catch (e) { showError(e); break; }
      }
      following = false;
    };
    const pending = await drawLog();
    document.getElementById('webhook-log-title').focus();
    follow(pending);
  };

  const change = async (webhook, body, message) => {
    try {
      await api('PATCH', `/api/v1/webhooks/${webhook.id}`, body);
      notify(message);
      await draw();
    } catch (e) { showError(e); }
  };
  const row = (w) => {
    const actions = h('td', { class: 'actions' });
    const remove = h('button', { type: 'button', class: 'link-button', 'data-action': 'delete' }, `Delete webhook ${w.id}`);
    remove.addEventListener('click', () => {
      const confirm = h('button', { type: 'button', class: 'danger', 'data-action': 'confirm-delete' }, `Really delete webhook ${w.id} and its log`);
      const keep = h('button', { type: 'button', 'data-action': 'cancel' }, 'Keep it');
      keep.addEventListener('click', () => { draw().catch(showError); });
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try { await api('DELETE', `/api/v1/webhooks/${w.id}`); notify(`Webhook ${w.id} deleted.`); log.replaceChildren(); await draw(); } catch (e) { showError(e); confirm.disabled = false; }
      });
      actions.replaceChildren(confirm, keep);
      confirm.focus();
    });
    append(actions,
      h('button', { type: 'button', class: 'link-button', 'data-action': 'deliveries', onclick: () => { history.replaceState(null, '', `/webhooks?webhook=${w.id}`); showLog(w).catch(showError); } }, `Deliveries of webhook ${w.id}`),
      w.enabled
        ? h('button', { type: 'button', class: 'link-button', 'data-action': 'disable', onclick: () => change(w, { enabled: false }, `Webhook ${w.id} disabled.`) }, `Disable webhook ${w.id}`)
        : h('button', { type: 'button', class: 'link-button', 'data-action': 'enable', onclick: () => change(w, { enabled: true }, `Webhook ${w.id} enabled.`) }, `Enable webhook ${w.id}`),
      h('button', { type: 'button', class: 'link-button', 'data-action': 'rotate', onclick: async () => {
        try { const r = await api('POST', `/api/v1/webhooks/${w.id}/rotate-secret`, {}); showSecret(`Webhook ${w.id} has a new secret; the previous one also signs for 24 hours.`, r.secret); await draw(); } catch (e) { showError(e); }
      } }, `Rotate secret of webhook ${w.id}`),
      remove);
    return h('tr', { 'data-webhook-id': w.id },
      h('th', { scope: 'row' }, h('code', {}, w.url), w.description ? h('span', { class: 'hint' }, ` ${w.description}`) : null),
      h('td', {}, w.collection || 'every collection'),
      h('td', {}, w.events.join(', ')),
      h('td', { 'data-field': 'state', class: w.enabled ? null : 'outcome-failure' }, w.enabled ? 'enabled' : `disabled: ${w.disabled_reason || ''}`),
      h('td', {}, w.consecutive_failures ? `${w.consecutive_failures} failed in a row since ${formatTime(w.failing_since)}` : 'none'),
      actions);
  };
  let webhooks = [];
  const draw = async () => {
    webhooks = (await api('GET', '/api/v1/webhooks')).items;
    list.replaceChildren(webhooks.length === 0
      ? h('p', { id: 'webhooks-empty', class: 'empty' }, 'No webhooks yet. Add one below.')
      : table('webhooks-table', 'Webhooks', ['URL', 'Collection', 'Events', 'State', 'Recent failures', 'Actions'], webhooks.map(row)));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const url = document.getElementById('webhook-url').value.trim();
    const events = [...form.querySelectorAll('input[name="event"]:checked')].map((b) => b.value);
    if (!url) return setFieldError('webhook-url', 'Enter the URL to deliver to.');
    if (events.length === 0) return setFieldError('webhook-events', 'Pick at least one event.');
    const collection = document.getElementById('webhook-collection').value || null;
    const description = document.getElementById('webhook-description').value.trim();
    try {
      const made = await busy(form, () => api('POST', '/api/v1/webhooks', { url, description, collection, events }));
      form.reset();
      showSecret(`Webhook ${made.id} added.`, made.secret);
      await draw();
    } catch (e) { showError(e, ids); }
  });
  await draw();
  const open = webhooks.find((w) => String(w.id) === params.get('webhook'));
  if (open) await showLog(open);
}
