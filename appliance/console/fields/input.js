// The controls field types share: a one-line input and a choice of values.

import { h } from '../lib/dom.js';

// A stored value as the text of a control ('' for none).
export function asText(value) {
  return value === null || value === undefined ? '' : String(value);
}

export function lineInput(id, type, value) {
  return h('input', { id, name: id, type, value, autocomplete: 'off' });
}

// A select of `choices` with an empty choice first, `value` selected.
export function choice(id, choices, value) {
  return h('select', { id, name: id }, [''].concat(choices).map((v) => h('option', { value: v, selected: v === value }, v || '(empty)')));
}
