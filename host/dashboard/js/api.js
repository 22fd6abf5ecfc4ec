// The host's HTTP API and its live event streams.
//
// The admin token lives only in sessionStorage (this tab, until it closes or signs out). HTTP
// calls send it as `Authorization: Bearer`; WebSockets cannot carry headers in a browser, so
// streams pass it as `?access_token=`, as docs/api.md documents.

const TOKEN_KEY = 'pacsync.admin_token';

export const session = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage unavailable: nothing stored */ }
  },
};

/** A non-2xx answer (its problem+json fields) or a network failure (status 0). */
export class ApiError extends Error {
  constructor({ status = 0, code = '', title = '', detail = '', instance = null, type = '', retryAfter = null } = {}) {
    const text = detail || title || `HTTP ${status}`;
    super(text);
    this.name = 'ApiError';
    Object.assign(this, { status, code, title: title || 'Error', detail: text, instance, type, retryAfter });
  }
}

let unauthorized = () => {};
/** Called with the ApiError of any 401 (and of a stream closed for an expired/revoked token). */
export function onUnauthorized(handler) { unauthorized = handler; }

/** path`/api/pools/${id}/status`: every interpolated value is URL-encoded. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}

export function withQuery(url, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${url}?${text}` : url;
}

/** A fresh Idempotency-Key for one click (randomUUID needs a secure context). */
export const idempotencyKey = () => (globalThis.crypto?.randomUUID ? { 'Idempotency-Key': crypto.randomUUID() } : {});

async function readBody(res) {
  if (res.status === 204) return null;
  let text = '';
  try { text = await res.text(); } catch { return null; }
  if (!text) return null;
  if ((res.headers.get('content-type') || '').includes('json')) {
    try { return JSON.parse(text); } catch { return text; }
  }
  return text;
}

function problem(res, body) {
  const retry = Number.parseInt(res.headers.get('retry-after') || '', 10);
  const base = { status: res.status, instance: res.headers.get('x-request-id'), retryAfter: Number.isFinite(retry) ? retry : null };
  if (body && typeof body === 'object') {
    return new ApiError({ ...base, ...body, status: body.status || res.status, instance: body.instance || base.instance });
  }
  return new ApiError({
    ...base,
    code: `HTTP_${res.status}`,
    title: res.statusText || 'Error',
    detail: typeof body === 'string' && body ? body.slice(0, 500) : `The host answered ${res.status} ${res.statusText}.`,
  });
}

/**
 * One request. `body` is JSON unless it is a Blob/ArrayBuffer (sent as `contentType`).
 * Resolves to { status, data, headers }; rejects with ApiError (or AbortError).
 */
export async function request(method, url, opts = {}) {
  const { body, contentType, signal, headers: extra = {}, redirectOn401 = true } = opts;
  const token = 'token' in opts ? opts.token : session.get();
  const headers = { Accept: 'application/json, application/problem+json', ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers['Content-Type'] = contentType || 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError({
      code: 'NETWORK_ERROR',
      title: 'Network error',
      detail: `The host did not answer ${method} ${url} (${err?.message || err}). Check the connection and that the host is running.`,
    });
  }
  const data = await readBody(res);
  if (!res.ok) {
    const err = problem(res, data);
    if (res.status === 401 && redirectOn401) unauthorized(err);
    throw err;
  }
  return { status: res.status, data, headers: res.headers };
}

const dataOf = (r) => r.data;
export const api = {
  get: (url, opts) => request('GET', url, opts).then(dataOf),
  post: (url, body, opts) => request('POST', url, { ...opts, body }).then(dataOf),
  put: (url, body, opts) => request('PUT', url, { ...opts, body }).then(dataOf),
  patch: (url, body, opts) => request('PATCH', url, { ...opts, body }).then(dataOf),
  del: (url, opts) => request('DELETE', url, opts).then(dataOf),
};

/**
 * Follows a WebSocket event stream (`/api/sync/pools/{id}/events` or
 * `/api/sync/{endpoint_id}/status`) and keeps following it:
 *
 * - the cursor is the largest `event_id` received, or the first session's `head` if none yet
 *   (a backlog replayed after `connected` has ids below `head`, so `head` never overrides it);
 * - on close it reconnects with exponential backoff (1 s doubling to 30 s, with jitter) and
 *   `?after=<cursor>`, so every missed event is replayed from the log, without gap or duplicate;
 * - `resync_required` calls onResync (re-read over HTTP) and resumes after its `event_id`;
 * - a 1008 close for an expired or revoked token signs out; "endpoint deleted" ends the stream.
 *
 * handlers: onEvent(msg) for events, onConnected(first) after each `connected`,
 * onResync(), onState(state, detail) with state connecting|live|retrying|ended|warning,
 * onEnd(reason); `signal`: the page's AbortSignal, which closes the stream (or never opens it).
 */
export function subscribe(streamPath, handlers = {}) {
  const { onEvent, onConnected, onResync, onState, onEnd, signal } = handlers;
  let socket = null;
  let cursor = null;
  let attempts = 0;
  let timer = null;
  let stopped = false;
  let sessions = 0;
  const state = (s, detail) => onState?.(s, detail);

  function url() {
    const u = new URL(streamPath, window.location.href);
    u.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('access_token', session.get() || '');
    if (cursor !== null) u.searchParams.set('after', String(cursor));
    return u.href;
  }

  function open() {
    timer = null;
    if (stopped || !session.get()) return;
    let connected = false;
    state('connecting');
    try {
      socket = new WebSocket(url());
    } catch (err) {
      state('warning', err.message);
      schedule();
      return;
    }
    socket.addEventListener('message', (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      switch (msg.type) {
        case 'connected':
          connected = true;
          attempts = 0;
          if (cursor === null) cursor = msg.head;
          state('live');
          onConnected?.(sessions++ === 0);
          return;
        case 'resync_required':
          if (cursor === null || msg.event_id > cursor) cursor = msg.event_id;
          onResync?.();
          return;
        case 'error':
          state('warning', msg.code || msg.message);
          return;
        case 'pong':
        case 'status':
          return;
        default:
          if (typeof msg.event_id === 'number' && (cursor === null || msg.event_id > cursor)) cursor = msg.event_id;
          onEvent?.(msg);
      }
    });
    socket.addEventListener('close', (ev) => {
      socket = null;
      if (stopped) return;
      if (ev.code === 1008 && /token (expired|revoked)/.test(ev.reason)) {
        stopped = true;
        state('ended', ev.reason);
        unauthorized(new ApiError({ status: 401, code: ev.reason === 'token revoked' ? 'TOKEN_REVOKED' : 'INVALID_TOKEN', title: 'Signed out', detail: `The host closed the event stream: ${ev.reason}.` }));
        return;
      }
      if (ev.code === 1008 && ev.reason === 'endpoint deleted') {
        stopped = true;
        state('ended', ev.reason);
        onEnd?.(ev.reason);
        return;
      }
      // A refused upgrade (401, 403, 404, 429) reaches a browser only as a close without a
      // reason: after two in a row, ask over HTTP so an invalid token signs out with its detail.
      if (!connected && attempts >= 1) {
        api.get('/api/pools').catch((err) => state('warning', err.detail));
      }
      schedule();
    });
  }

  function schedule() {
    if (stopped) return;
    const delay = Math.min(30000, 1000 * 2 ** attempts) * (0.75 + Math.random() * 0.5);
    attempts += 1;
    state('retrying', Math.round(delay / 1000));
    timer = setTimeout(open, delay);
  }

  function close() {
    stopped = true;
    clearTimeout(timer);
    if (socket) socket.close(1000, 'leaving');
    socket = null;
  }

  if (signal?.aborted) stopped = true;
  else {
    signal?.addEventListener('abort', close, { once: true });
    open();
  }
  return { close, get cursor() { return cursor; } };
}
