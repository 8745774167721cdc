// Enum: one of the field's listed values.

import { asText, choice } from './input.js';

export default {
  ops: ['eq', 'ne', 'in', 'is_null'],
  sortable: true,
  control: (id, f, value) => choice(id, f.enum_values, asText(value)),
  parse: (raw) => raw,
  show: (value) => String(value),
  hint: (f) => `one of ${f.enum_values.join(', ')}`,
  describe: (f) => `enum (${f.enum_values.join(', ')})`,
};
