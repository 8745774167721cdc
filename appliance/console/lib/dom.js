// Building the page: elements from data (text only, never HTML), labelled
// form fields with their error slots, and the page's alert and notice.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'for') {
      el.htmlFor = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A labelled input with a hint and an error slot wired to aria-describedby.
export function field(id, label, attrs, hint) {
  const describedBy = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
  const input = attrs && attrs.tag === 'select'
    ? h('select', { id, name: id, 'aria-describedby': describedBy }, attrs.options)
    : h('input', Object.assign({ id, name: id, 'aria-describedby': describedBy }, attrs));
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    input,
    h('p', { class: 'field-error', id: `${id}-error` }));
}

// A table with a caption, its column headings and body rows.
export function table(id, caption, headings, rows) {
  return h('table', { id },
    caption === null ? null : h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headings.filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows));
}

export function setFieldError(id, message) {
  const input = document.getElementById(id);
  const slot = document.getElementById(`${id}-error`);
  if (input) input.setAttribute('aria-invalid', message ? 'true' : 'false');
  if (slot) slot.textContent = message || '';
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll('.field-error')) slot.textContent = '';
  for (const input of form.querySelectorAll('[aria-invalid]')) input.setAttribute('aria-invalid', 'false');
}

// Shows an API error: next to the fields it names, and in the page's alert.
export function showError(error, fieldIds) {
  let placed = false;
  const fields = (error.details && error.details.fields) || [];
  for (const f of fields) {
    const id = fieldIds && fieldIds[f.field];
    if (id) { setFieldError(id, f.message); placed = true; }
  }
  const notice = document.getElementById('notice');
  if (notice) { notice.hidden = true; notice.textContent = ''; }
  const alert = document.getElementById('alert');
  if (alert) {
    const ref = error.requestId ? ` (request id ${error.requestId})` : '';
    alert.textContent = `${error.message}${ref}`;
    alert.hidden = false;
  }
  if (placed) {
    const first = document.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  }
}

export function notify(message) {
  const alert = document.getElementById('alert');
  if (alert) { alert.hidden = true; alert.textContent = ''; }
  const notice = document.getElementById('notice');
  if (notice) { notice.textContent = message; notice.hidden = false; }
}

// Disables a form's controls while a request runs.
export async function busy(form, work) {
  const controls = form.querySelectorAll('button, input, select');
  for (const c of controls) c.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try { return await work(); } finally {
    for (const c of controls) c.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

// A page's heading with its alert and notice slots.
export function page(title, ...content) {
  return [
    h('h1', { tabindex: '-1', id: 'page-title' }, title),
    h('div', { id: 'alert', class: 'alert', role: 'alert', hidden: true }),
    h('div', { id: 'notice', class: 'notice', role: 'status', hidden: true }),
    content,
  ];
}

// Redraws with `draw` every second while it says work is pending and
// `element` is still on the page (the view was not left).
export async function followWhile(element, pending, draw) {
  while (pending && document.getElementById(element.id) === element) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (document.getElementById(element.id) !== element) return;
    try { pending = await draw(); } catch (e) { showError(e); return; }
  }
}
