// The field types, one file each: the filter operators a type offers, its
// form control, how typed text becomes a JSON value, and how a value is
// shown. A new type is one new file and one line here.

import boolean from './boolean.js';
import date from './date.js';
import decimal from './decimal.js';
import enumType from './enum.js';
import integer from './integer.js';
import json from './json.js';
import text from './text.js';
import timestamp from './timestamp.js';

const TYPES = { text, integer, decimal, boolean, date, timestamp, enum: enumType, json };

// In the order the "Add a field" form offers them.
export const FIELD_TYPES = Object.keys(TYPES);

export const OP_LABELS = {
  eq: 'is', ne: 'is not', lt: 'less than', lte: 'at most', gt: 'greater than', gte: 'at least',
  in: 'is one of (comma-separated)', contains: 'contains', prefix: 'starts with', is_null: 'is empty',
};

// A type the console does not know (a newer server) is edited as text.
export function fieldType(type) {
  return TYPES[type] || text;
}

// The form control for a value of field `f`.
export function valueControl(id, f, value) {
  return fieldType(f.type).control(id, f, value);
}

// Typed text as a JSON value of `type`: null when empty, undefined when it
// cannot be one (JSON that does not parse).
export function parseValue(type, raw) {
  return raw === '' ? null : fieldType(type).parse(raw);
}

// A stored value as a table cell's text.
export function showValue(f, value) {
  return value === null || value === undefined ? '—' : fieldType(f.type).show(value);
}

// What a field holds, for hints ("one of a, b" for an enum).
export function typeHint(f) {
  const t = fieldType(f.type);
  return t.hint ? t.hint(f) : f.type;
}

// A field's type as the schema page lists it.
export function describeType(f) {
  const t = fieldType(f.type);
  return t.describe ? t.describe(f) : f.type;
}
