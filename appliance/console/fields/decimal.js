// Decimal: an exact decimal number, kept as the text the server returns
// (never a binary float in the browser).

import { asText, lineInput } from './input.js';

export default {
  ops: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  sortable: true,
  control: (id, f, value) => lineInput(id, 'text', asText(value)),
  parse: (raw) => raw,
  show: (value) => String(value),
};
