// Boolean: true, false or empty.

import { asText, choice } from './input.js';

export default {
  ops: ['eq', 'ne', 'is_null'],
  sortable: true,
  control: (id, f, value) => choice(id, ['true', 'false'], asText(value)),
  parse: (raw) => raw === 'true',
  show: (value) => String(value),
};
