// The system page: this installation, its backups, the running release's
// notes, the documentation it carries and (admins) security settings.

import { api, can } from '../lib/api.js';
import { append, busy, h, notify, showError } from '../lib/dom.js';

export async function systemView(main) {
  const system = await api('GET', '/api/v1/system');
  const row = (id, term, value) => [h('dt', {}, term), h('dd', { id }, value)];
  const schema = system.schema;
  append(main, h('section', { 'aria-labelledby': 'system-heading' },
    h('h2', { id: 'system-heading' }, 'This installation'),
    h('dl', { class: 'facts' },
      row('system-version', 'Version', `${system.version} (commit ${system.commit})`),
      row('system-schema', 'Database schema', `level ${schema.applied_level} applied; this binary knows level ${schema.binary_level}; ${schema.compatible ? 'compatible' : `not compatible: ${schema.message}`}`),
      row('system-database', 'PostgreSQL', `${system.database.reachable ? 'reachable' : 'unreachable'}, version ${system.database.postgresql_version}`),
      row('system-instance', 'Instance id', system.instance_id))));
  // Backups: what an auditor asks first (docs/operations.md#backups).
  const backups = system.backups || { schedule: null, drill_schedule: null, last: null, drill: null };
  const when = (stamp) => new Date(stamp).toLocaleString();
  const size = (bytes) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${bytes} bytes`);
  append(main, h('section', { 'aria-labelledby': 'backups-heading', id: 'backups' },
    h('h2', { id: 'backups-heading' }, 'Backups'),
    h('dl', { class: 'facts' },
      row('backup-schedule', 'Schedule', backups.schedule || 'none: backups are taken only by hand (backup.schedule)'),
      row('backup-last', 'Newest backup', backups.last
        ? `${when(backups.last.finished_at)}: ${backups.last.archive}, ${size(backups.last.bytes)}${backups.last.scheduled ? ', scheduled' : ''}`
        : 'none recorded'),
      row('backup-drill', 'Restore drill', backups.drill
        ? `${backups.drill.ok ? 'passed' : 'FAILED'} ${when(backups.drill.drilled_at)}: ${backups.drill.archive} restored, ${backups.drill.collections} collection(s), ${backups.drill.records} records`
        : 'never run (mogothrow77 backup drill)'),
      row('backup-drill-schedule', 'Drill schedule', backups.drill_schedule || 'none: drills run only when started (backup.drill_schedule)'))));
  // The running release's notes (CHANGELOG.md, compiled in).
  const notes = system.release_notes;
  append(main, h('section', { 'aria-labelledby': 'release-notes-heading', id: 'release-notes' },
    h('h2', { id: 'release-notes-heading' }, notes ? `Release notes: ${notes.version} (${notes.date})` : 'Release notes'),
    ...(notes
      ? notes.sections.map((section) => h('div', { class: 'release-section' },
        h('h3', {}, section.title),
        h('ul', {}, ...section.items.map((item) => h('li', {}, item)))))
      : [h('p', {}, `This build (${system.version}) carries no release notes.`)])));
  // The documentation this binary carries (also on air-gapped sites).
  const doc = (href, text) => h('li', {}, h('a', { href }, text));
  append(main, h('section', { 'aria-labelledby': 'system-docs-heading', id: 'system-docs' },
    h('h2', { id: 'system-docs-heading' }, 'Operating this installation'),
    h('ul', {},
      doc('/docs/observability.md', 'Monitoring: metrics, scraping with Prometheus'),
      doc('/docs/operations.md', 'Operations: health checks, logs, backups, jobs'),
      doc('/docs/runbooks/database-unreachable.md', 'Runbook: the database is unreachable'),
      doc('/docs/', 'All documentation'))));
  if (can('settings:manage')) {
    const settings = await api('GET', '/api/v1/settings/security');
    const checkbox = h('input', { type: 'checkbox', id: 'require-mfa', checked: settings.require_mfa });
    const form = h('form', { id: 'security-form' },
      h('h2', {}, 'Security settings'),
      h('div', { class: 'check' }, checkbox,
        h('label', { for: 'require-mfa' }, 'Require two-factor authentication for every account')),
      h('p', { class: 'hint' }, 'People without it must set it up the next time they sign in before they can do anything else.'),
      h('button', { type: 'submit' }, 'Save security settings'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const saved = await busy(form, () => api('PATCH', '/api/v1/settings/security', { require_mfa: checkbox.checked }));
        checkbox.checked = saved.require_mfa;
        notify(saved.require_mfa ? 'Two-factor authentication is now required for everyone.' : 'Two-factor authentication is now optional.');
      } catch (e) { showError(e); }
    });
    append(main, form);
  }
}
