// The job queue for admins: by state, with attempts, cancel and retry;
// followed (with each running job's progress) while any runs or is due.

import { api } from '../lib/api.js';
import { append, field, followWhile, h, notify, showError, table } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { go } from '../lib/router.js';
import { measure, progressView } from '../components/progress.js';

const JOB_STATES = ['queued', 'running', 'succeeded', 'dead', 'cancelled'];

export async function jobsView(main) {
  const params = new URLSearchParams(location.search);
  const current = JOB_STATES.includes(params.get('state')) ? params.get('state') : '';
  const filter = h('form', { id: 'jobs-filter', class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    field('jobs-state', 'State', { tag: 'select', options: [''].concat(JOB_STATES).map((s) => h('option', { value: s, selected: s === current }, s || 'any')) }),
    h('div', { class: 'filter-buttons' }, h('button', { type: 'submit' }, 'Show')));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    const s = document.getElementById('jobs-state').value;
    go(`/jobs${s ? `?state=${s}` : ''}`);
  });
  const results = h('div', { id: 'jobs-results', 'aria-live': 'polite' });
  const detail = h('div', { id: 'job-detail' });
  append(main, filter, results, detail);
  const change = async (job, verb) => {
    try {
      const changed = await api('POST', `/api/v1/jobs/${job.id}/${verb}`, {});
      notify(`Job ${job.id} is now ${changed.state}.`);
      await draw();
    } catch (e) { showError(e); }
  };
  const showAttempts = async (job) => {
    const full = await api('GET', `/api/v1/jobs/${job.id}`);
    detail.replaceChildren(h('h2', { id: 'job-detail-title', tabindex: '-1' }, `Attempts of job ${job.id} (${full.kind})`),
      table('job-attempts', null, ['Attempt', 'Worker', 'Started', 'Finished', 'Outcome', 'Error'],
        full.attempts_log.map((a) => h('tr', { 'data-attempt': a.attempt },
          h('th', { scope: 'row' }, String(a.attempt)), h('td', {}, a.worker), h('td', {}, formatTime(a.started_at)),
          h('td', {}, formatTime(a.finished_at)), h('td', { 'data-field': 'outcome' }, a.outcome || 'running'), h('td', {}, a.error || '—')))));
    document.getElementById('job-detail-title').focus();
  };
  const draw = async () => {
    const list = await api('GET', `/api/v1/jobs?limit=100${current ? `&state=${current}` : ''}`);
    if (!list.items.length) {
      results.replaceChildren(h('p', { id: 'jobs-empty', class: 'empty' }, current ? `No ${current} jobs.` : 'No jobs yet.'));
      return false;
    }
    const progress = (j) => {
      const m = j.state === 'running' ? measure(j.kind, j.progress) : null;
      return m ? [' ', progressView(`job-${j.id}`, `Job ${j.id} progress`, m)] : null;
    };
    results.replaceChildren(table('jobs-table', 'Jobs, newest first',
      ['Job', 'Kind', 'State', 'Attempts', 'Next run', 'Last error', 'Created', 'Actions'],
      list.items.map((j) => h('tr', { 'data-job-id': j.id },
        h('th', { scope: 'row' }, `#${j.id}`),
        h('td', {}, j.kind),
        h('td', { 'data-field': 'state', class: j.state === 'dead' ? 'outcome-failure' : null }, j.state, progress(j)),
        h('td', {}, `${j.attempts} of ${j.max_attempts}`),
        h('td', {}, j.state === 'queued' ? formatTime(j.run_at) : '—'),
        h('td', {}, j.last_error || '—'),
        h('td', {}, formatTime(j.created_at)),
        h('td', {},
          h('button', { type: 'button', class: 'link-button', 'data-action': 'attempts', onclick: () => showAttempts(j).catch(showError) }, `Attempts of job ${j.id}`),
          (j.state === 'queued' || j.state === 'running') ? h('button', { type: 'button', class: 'link-button', 'data-action': 'cancel', onclick: () => change(j, 'cancel') }, `Cancel job ${j.id}`) : null,
          (j.state === 'dead' || j.state === 'cancelled') ? h('button', { type: 'button', class: 'link-button', 'data-action': 'retry', onclick: () => change(j, 'retry') }, `Retry job ${j.id}`) : null)))));
    // Followed while a job runs or is about to (not for retries hours away).
    const soon = Date.now() + 60000;
    return list.items.some((j) => j.state === 'running' || (j.state === 'queued' && new Date(j.run_at).getTime() < soon));
  };
  followWhile(results, await draw(), draw);
}
