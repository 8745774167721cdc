// JSON: any JSON document; filtered by equality or containment, never
// sorted, unique or indexed.

import { h } from '../lib/dom.js';

export default {
  ops: ['eq', 'contains', 'is_null'],
  sortable: false,
  indexable: false,
  control: (id, f, value) => h('textarea', { id, name: id, rows: 3 }, value === null || value === undefined ? '' : JSON.stringify(value)),
  // undefined: not JSON (the form says so before anything is sent).
  parse: (raw) => {
    try { return JSON.parse(raw); } catch (e) { return undefined; }
  },
  show: (value) => JSON.stringify(value),
};
