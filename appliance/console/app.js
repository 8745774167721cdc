// Mogothrow77 web console: native ES modules, no dependencies, no build
// step, no inline script or style (the server's CSP forbids both). It uses
// the same /api/v1 endpoints and authorization as any integrator. Data is
// only ever put into the page as text (textContent), never as HTML.
//
// lib/ holds the API client, DOM helpers and the router; pages/ one file
// per page; fields/ one file per field type; components/ the parts pages
// share. This file maps paths to pages and starts the router.

import { start } from './lib/router.js';
import { accountView } from './pages/account.js';
import { auditView } from './pages/audit.js';
import { loginView, resetPasswordView, setupView } from './pages/auth.js';
import { collectionsView } from './pages/collections.js';
import { exportsView } from './pages/exports.js';
import { importsView } from './pages/imports.js';
import { jobsView } from './pages/jobs.js';
import { recordsView } from './pages/records.js';
import { schemaView } from './pages/schema.js';
import { systemView } from './pages/system.js';
import { usersView } from './pages/users.js';
import { webhooksView } from './pages/webhooks.js';

const pages = {
  '/': ['system', 'System', systemView],
  '/system': ['system', 'System', systemView],
  '/login': ['login', 'Sign in', loginView],
  '/setup': ['setup', 'Create the first admin', setupView],
  '/reset-password': ['reset-password', 'Set a new password', resetPasswordView],
  '/users': ['users', 'Users', usersView],
  '/account': ['account', 'My account', accountView],
  '/audit': ['audit', 'Audit log', auditView],
  '/collections': ['collections', 'Collections', collectionsView],
  '/exports': ['exports', 'Exports', exportsView],
  '/jobs': ['jobs', 'Jobs', jobsView],
  '/webhooks': ['webhooks', 'Webhooks', webhooksView],
  '/imports': ['imports', 'Imports', importsView],
};

// Pages with a collection name in the path.
start((path) => {
  if (pages[path]) return pages[path];
  const m = /^\/collections\/([a-z][a-z0-9_]{0,62})(\/schema)?$/.exec(path);
  if (m && m[2]) return ['schema', `Schema of ${m[1]}`, (main) => schemaView(main, m[1])];
  if (m) return ['records', m[1], (main) => recordsView(main, m[1])];
  return null;
});
