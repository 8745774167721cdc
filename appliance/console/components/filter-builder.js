// The records page's filter builder: groups joined by AND, conditions in a
// group by OR, each condition negatable. It reads the filter from the
// address bar and, applied, puts the new one there.

import { h } from '../lib/dom.js';
import { go } from '../lib/router.js';
import { fieldType, OP_LABELS, parseValue, valueControl } from '../fields/index.js';

// The filter from the URL as builder groups: all groups must match, and a
// group matches when any of its conditions does; a condition may be negated.
// That covers a leaf, {not: leaf}, {or: [...]} and {and: [...]} of those;
// other shapes (deeper nesting, built through the API) are kept as they are.
function isCondition(node) {
  const leaf = node && node.not ? node.not : node;
  return !!(leaf && leaf.field && leaf.op);
}

function filterGroups(filter) {
  if (!filter) return [];
  const groups = filter.and ? filter.and : [filter];
  const out = [];
  for (const g of groups) {
    const alternatives = g.or ? g.or : [g];
    if (!alternatives.length || !alternatives.every(isCondition)) return null;
    out.push(alternatives);
  }
  return out;
}

// The filter form of collection `name` with `fields`; `params` and `sort`
// are the page's address-bar state.
export function filterBuilder(name, fields, params, sort) {
  let filter = null;
  try { filter = params.get('filter') ? JSON.parse(params.get('filter')) : null; } catch (e) { filter = null; }
  const groupsBox = h('div', { id: 'filter-rows' });
  let rowCount = 0;
  let groupCount = 0;
  const addRow = (group, node) => {
    const n = rowCount++;
    let leaf = node && node.not ? node.not : node;
    const notBox = h('input', { type: 'checkbox', id: `cond-not-${n}`, 'data-role': 'not', checked: !!(node && node.not) });
    const fieldSel = h('select', { id: `cond-field-${n}`, 'data-role': 'field' }, fields.map((f) => h('option', { value: f.name, selected: leaf && leaf.field === f.name }, f.name)));
    const opSel = h('select', { id: `cond-op-${n}`, 'data-role': 'op' });
    const valueSlot = h('span', {});
    const fillOps = () => {
      const f = fields.find((x) => x.name === fieldSel.value);
      opSel.replaceChildren(...fieldType(f.type).ops.map((o) => h('option', { value: o, selected: leaf && leaf.op === o }, OP_LABELS[o])));
      fillValue();
    };
    const fillValue = () => {
      const f = fields.find((x) => x.name === fieldSel.value);
      const id = `cond-value-${n}`;
      let v = leaf && leaf.field === f.name && leaf.op === opSel.value ? leaf.value : '';
      let control;
      if (opSel.value === 'is_null') {
        control = h('select', { id, 'data-role': 'value' }, h('option', { value: 'true', selected: v !== false }, 'yes'), h('option', { value: 'false', selected: v === false }, 'no'));
      } else if (opSel.value === 'in') {
        control = h('input', { id, 'data-role': 'value', value: Array.isArray(v) ? v.join(', ') : '', autocomplete: 'off' });
      } else {
        control = valueControl(id, f, v);
        control.dataset.role = 'value';
      }
      valueSlot.replaceChildren(h('label', { for: id, class: 'visually-hidden' }, `Value for condition ${n + 1}`), control);
    };
    fieldSel.addEventListener('change', () => { leaf = null; fillOps(); });
    opSel.addEventListener('change', fillValue);
    const remove = h('button', { type: 'button', class: 'link-button', onclick: () => {
      row.remove();
      if (!group.querySelector('.condition')) group.remove();
    } }, `Remove condition ${n + 1}`);
    const row = h('div', { class: 'condition', 'data-condition': n },
      h('span', { class: 'condition-join', 'aria-hidden': 'true' }, 'or'),
      notBox, h('label', { for: `cond-not-${n}` }, 'not'),
      h('label', { for: `cond-field-${n}`, class: 'visually-hidden' }, `Field for condition ${n + 1}`), fieldSel,
      h('label', { for: `cond-op-${n}`, class: 'visually-hidden' }, `Operator for condition ${n + 1}`), opSel,
      valueSlot, remove);
    group.querySelector('.group-conditions').append(row);
    fillOps();
  };
  const addGroup = (alternatives) => {
    const g = groupCount++;
    const group = h('fieldset', { class: 'filter-group', id: `filter-group-${g}`, 'data-group': g },
      h('legend', {}, `Group ${g + 1}: any of these`),
      h('div', { class: 'group-conditions' }),
      h('button', { type: 'button', id: `add-alternative-${g}`, onclick: () => addRow(group, null) }, `Add an alternative (or) to group ${g + 1}`));
    groupsBox.append(group);
    (alternatives.length ? alternatives : [null]).forEach((node) => addRow(group, node));
  };
  const initial = filterGroups(filter);
  (initial || []).forEach(addGroup);
  const filterForm = h('form', { id: 'records-filter', class: 'filters', role: 'search', 'aria-label': 'Filter records' },
    h('fieldset', {}, h('legend', {}, 'Conditions (every group must match; within a group, any condition)'), groupsBox,
      h('button', { type: 'button', id: 'add-condition', onclick: () => addGroup([]) }, 'Add a condition (and)')),
    initial === null ? h('p', { class: 'hint' }, 'This view uses a filter built through the API; it stays applied until you apply new conditions.') : null,
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit' }, 'Apply'),
      h('button', { type: 'button', id: 'records-clear', onclick: () => go(`/collections/${name}`) }, 'Clear')));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const groups = [];
    for (const group of groupsBox.querySelectorAll('.filter-group')) {
      const alternatives = [];
      for (const row of group.querySelectorAll('.condition')) {
        const fieldName = row.querySelector('[data-role=field]').value;
        const op = row.querySelector('[data-role=op]').value;
        const raw = row.querySelector('[data-role=value]').value;
        const f = fields.find((x) => x.name === fieldName);
        let value;
        if (op === 'is_null') value = raw === 'true';
        else if (op === 'in') value = raw.split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => parseValue(f.type, x));
        else value = parseValue(f.type, raw);
        const leaf = { field: fieldName, op, value };
        alternatives.push(row.querySelector('[data-role=not]').checked ? { not: leaf } : leaf);
      }
      if (alternatives.length) groups.push(alternatives.length === 1 ? alternatives[0] : { or: alternatives });
    }
    const q = new URLSearchParams();
    if (groups.length === 1) q.set('filter', JSON.stringify(groups[0]));
    if (groups.length > 1) q.set('filter', JSON.stringify({ and: groups }));
    if (!groups.length && initial === null && params.get('filter')) q.set('filter', params.get('filter'));
    if (sort) q.set('sort', sort);
    go(`/collections/${name}${q.toString() ? `?${q}` : ''}`);
  });
  return filterForm;
}
