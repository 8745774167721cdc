// The console's one way to the server: /api/v1 like any integrator, the
// session cookie and the CSRF token it was given, errors as ApiError.

export const state = { me: null, csrf: null };

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = body && body.code;
    this.details = body && body.details;
    this.requestId = body && body.request_id;
  }
}

const UNREACHABLE = 'The server cannot be reached. Check the network and try again.';

// One request: `body` is sent as it is (a File streams), `headers` add to
// the JSON Accept and the CSRF token. `anonymous`: without the session
// cookie (a public operation that must not depend on whoever is signed in
// in this browser).
export async function request(method, path, { body, headers = {}, anonymous = false } = {}) {
  const all = Object.assign({ Accept: 'application/json' }, headers);
  if (state.csrf && method !== 'GET' && !anonymous) all['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch(path, { method, headers: all, body, credentials: anonymous ? 'omit' : 'same-origin' });
  } catch (e) {
    throw new ApiError(0, { message: UNREACHABLE });
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (e) { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// A JSON request.
export function api(method, path, body, { anonymous = false } = {}) {
  return request(method, path, {
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    anonymous,
  });
}

// PATCH (with `body`) or DELETE (without) with If-Match, so a concurrent
// change is never overwritten.
export async function withIfMatch(path, version, body) {
  const headers = { 'If-Match': `"${version}"` };
  if (body) headers['Content-Type'] = 'application/json';
  try {
    return await request(body ? 'PATCH' : 'DELETE', path, { body: body ? JSON.stringify(body) : undefined, headers });
  } catch (error) {
    if (error.status === 412) error.message = 'Someone changed this record since you opened it. Close it and open it again to see their change.';
    throw error;
  }
}

export async function loadMe() {
  const me = await api('GET', '/api/v1/me');
  state.me = me;
  if (me.csrf_token) state.csrf = me.csrf_token;
  return me;
}

export function can(permission) {
  return !!(state.me && state.me.permissions.includes(permission));
}
