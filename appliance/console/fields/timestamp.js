// Timestamp: an instant; edited in the browser's local time, sent as UTC
// (ISO 8601).

import { toLocalInput } from '../lib/format.js';
import { asText, lineInput } from './input.js';

export default {
  ops: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  sortable: true,
  control: (id, f, value) => lineInput(id, 'datetime-local', toLocalInput(asText(value))),
  parse: (raw) => {
    const d = new Date(raw);
    return Number.isNaN(d.getTime()) ? raw : d.toISOString();
  },
  show: (value) => String(value),
};
