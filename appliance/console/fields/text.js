// Text: any string; compared as text, searched by substring and prefix.

import { asText, lineInput } from './input.js';

export default {
  ops: ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'contains', 'prefix', 'is_null'],
  sortable: true,
  control: (id, f, value) => lineInput(id, 'text', asText(value)),
  parse: (raw) => raw,
  show: (value) => String(value),
};
