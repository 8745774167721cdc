// Live progress of an export, import or other job: a bar, what is done of
// what there is, the recent rate and the time left; the page's polling
// redraws it.

import { h } from '../lib/dom.js';
import { formatDuration, RateMeter, secondsLeft } from '../lib/rate.js';

const meter = new RateMeter();

// A job's progress as the API reports it (`progress` of a job, an export
// or an import) in the terms shown: the bar's done and total, the rows
// done and whether the total is an estimate. Null: nothing to show.
export function measure(kind, p) {
  if (!p) return null;
  if (kind === 'export') return { done: p.rows || 0, total: Math.max(p.estimate || 0, p.rows || 0), rows: p.rows || 0, estimate: true };
  if (kind === 'import') return { done: p.bytes || 0, total: p.of_bytes || 0, rows: p.rows || 0, estimate: false };
  return null;
}

// `key` names the job across redraws (its rate is measured between them).
export function progressView(key, label, m) {
  const now = performance.now();
  const rowRate = meter.sample(`${key}:rows`, m.rows, now);
  const barRate = meter.sample(`${key}:bar`, m.done, now);
  const left = secondsLeft(m.done, m.total, barRate);
  const percent = m.total > 0 ? Math.min(100, Math.floor((m.done * 100) / m.total)) : null;
  const parts = [
    `${m.rows.toLocaleString()} rows`,
    percent === null ? null : `${m.estimate ? 'about ' : ''}${percent} %`,
    rowRate === null ? null : `${Math.round(rowRate).toLocaleString()} rows/s`,
    left === null ? null : `about ${formatDuration(left)} left`,
  ].filter(Boolean);
  return h('span', { class: 'progress', 'data-role': 'progress' },
    h('progress', { max: String(Math.max(m.total, m.done, 1)), value: String(m.done), 'aria-label': label }),
    ` ${parts.join(', ')}`);
}
