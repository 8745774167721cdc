// Date: a calendar day (YYYY-MM-DD), no time zone.

import { asText, lineInput } from './input.js';

export default {
  ops: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  sortable: true,
  control: (id, f, value) => lineInput(id, 'date', asText(value)),
  parse: (raw) => raw,
  show: (value) => String(value),
};
