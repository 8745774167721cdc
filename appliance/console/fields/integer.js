// Integer: a whole number (64-bit on the server). Anything else typed is
// sent as it is, so the server's message names the problem.

import { asText, lineInput } from './input.js';

export default {
  ops: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'is_null'],
  sortable: true,
  control: (id, f, value) => lineInput(id, 'number', asText(value)),
  parse: (raw) => (/^-?\d+$/.test(raw) ? Number(raw) : raw),
  show: (value) => String(value),
};
