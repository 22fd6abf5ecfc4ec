// Small DOM helpers. Everything is built with createElement and text nodes: API data never
// is parsed as markup, and nothing sets a style attribute (the CSP forbids inline styles).

const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'readOnly', 'required', 'multiple', 'indeterminate', 'hidden']);

/**
 * h('a', { href: '#/', class: 'x', onClick: fn }, 'text', child, [more]) builds an element.
 * Attributes whose value is null, undefined or false are left out; `on*` functions become
 * event listeners; strings and numbers become text nodes.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'style') throw new Error('inline styles break the Content-Security-Policy: use a class');
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replaces `old` with `next` (a live re-render), keeping what the user did to it: focus moves
 * to the element with the same `data-focus-key`, and <details data-key> stay open or closed.
 */
export function replaceKeepingFocus(old, next) {
  const active = document.activeElement;
  const key = old.contains(active) && active.dataset ? active.dataset.focusKey : null;
  for (const d of old.querySelectorAll('details[data-key]')) {
    const twin = next.querySelector(`details[data-key="${CSS.escape(d.dataset.key)}"]`);
    if (twin) twin.open = d.open;
  }
  old.replaceWith(next);
  if (key) next.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

export function debounce(fn, ms = 300) {
  let timer = null;
  const run = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '');

/** A class-safe token from an API enum value. */
const token = (value) => String(value ?? 'unknown').toLowerCase().replace(/[^a-z0-9_-]/g, '');

// ---- times ---------------------------------------------------------------------------------

export function relative(iso, now = Date.now()) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return String(iso);
  const seconds = Math.round((now - at) / 1000);
  const s = Math.abs(seconds);
  if (s < 45) return seconds >= 0 ? 'just now' : 'in a few seconds';
  let text;
  if (s < 3600) text = `${Math.round(s / 60)} min`;
  else if (s < 86400) text = `${Math.round(s / 3600)} h`;
  else if (s < 45 * 86400) { const d = Math.round(s / 86400); text = `${d} ${d === 1 ? 'day' : 'days'}`; }
  else if (s < 365 * 86400) { const m = Math.round(s / (30 * 86400)); text = `${m} ${m === 1 ? 'month' : 'months'}`; }
  else { const y = Math.round(s / (365 * 86400)); text = `${y} ${y === 1 ? 'year' : 'years'}`; }
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

/** <time datetime title>3 min ago</time>, or `fallback` text when there is no time. */
export function time(iso, fallback = '—') {
  if (!iso) return h('span', { class: 'muted' }, fallback);
  return h('time', { datetime: iso, title: iso, 'data-relative': '' }, relative(iso));
}

/** Re-renders every relative time on the page (called by a timer; no network involved). */
export function refreshTimes(root = document) {
  for (const el of root.querySelectorAll('time[data-relative]')) {
    el.textContent = relative(el.getAttribute('datetime'));
  }
}

// ---- statuses ------------------------------------------------------------------------------

export const SYNC_LABELS = { in_sync: 'In sync', behind: 'Behind', ahead: 'Ahead', diverged: 'Diverged', unknown: 'Unknown' };
export const SYNC_ORDER = ['in_sync', 'behind', 'ahead', 'diverged', 'unknown'];
export const OP_LABELS = { pending: 'Pending', in_progress: 'In progress', completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled' };
export const OP_TYPES = { sync: 'Sync to latest', set_latest: 'Set as latest', revert: 'Revert' };
export const ACTIVE = new Set(['pending', 'in_progress']);

export const syncLabel = (status) => SYNC_LABELS[status] || String(status ?? 'Unknown');

/** Sync status as text, coloured by class (the text carries the meaning, not the colour). */
export function syncBadge(status, attrs = {}) {
  return h('span', { ...attrs, class: ['badge', `sync-${token(status)}`, attrs.class] }, syncLabel(status));
}

export function opBadge(op) {
  const label = OP_LABELS[op.status] || String(op.status);
  return h('span', { class: ['badge', `op-${token(op.status)}`] }, op.cancel_requested && ACTIVE.has(op.status) ? `${label} (cancel requested)` : label);
}

export function progressText(op) {
  const p = op.progress || {};
  const pct = clampPct(p.percentage);
  return [`${pct} %`, p.stage, p.current_action].filter(Boolean).join(' · ');
}

const clampPct = (value) => Math.max(0, Math.min(100, Number.isFinite(value) ? Math.round(value) : 0));

/** A <progress class="op-progress" max="100"> with its percentage (and stage) as visible text. */
export function opProgress(op, label) {
  const pct = clampPct(op.progress?.percentage);
  const id = `progress-text-${op.operation_id}`;
  return h('div', { class: 'progress-cell' },
    h('progress', { class: 'op-progress', max: 100, value: pct, 'aria-label': label || 'Progress', 'aria-describedby': id }, `${pct} %`),
    h('span', { id, class: 'progress-text' }, progressText(op)));
}

export function actionText(action) {
  const kind = { install: 'Install', upgrade: 'Upgrade', downgrade: 'Downgrade', remove: 'Remove', set_reason: 'Mark' }[action.kind] || action.kind;
  if (action.kind === 'set_reason') return `${kind} ${action.name} ${action.to_version ?? ''} as ${action.reason ?? '?'}`;
  if (action.kind === 'remove') return `${kind} ${action.name} ${action.from_version ?? ''}`.trim();
  if (action.from_version) return `${kind} ${action.name} ${action.from_version} → ${action.to_version ?? '?'}`;
  return `${kind} ${action.name} ${action.to_version ?? ''}`.trim();
}

// ---- errors and messages -------------------------------------------------------------------

export const isAbort = (err) => err && err.name === 'AbortError';

/** An always-rendered role="alert" region (empty until an error is shown, so it announces). */
export function errorRegion(id, extraClass) {
  return h('div', { id, role: 'alert', class: ['error', extraClass] });
}

/** Shows a problem+json error (or any error) with its detail, code and request id. */
export function showError(region, err) {
  if (isAbort(err)) return;
  const detail = err?.detail || err?.message || String(err);
  region.replaceChildren(
    h('strong', {}, err?.title || 'Error'), ': ', detail,
    err?.code ? [' ', h('code', {}, err.code)] : null,
    err?.retryAfter ? ` Try again in ${err.retryAfter} s.` : null,
    err?.instance ? h('span', { class: 'request-id' }, ` (request id ${err.instance})`) : null);
}

export const clearError = (region) => region.replaceChildren();

/** A polite role="status" line for confirmations ("Policy saved."). */
export const statusLine = (id, extraClass) => h('p', { id, role: 'status', class: ['status-line', extraClass] });

/** Runs `task` with `button` disabled meanwhile; errors go to `region`. */
export async function withBusy(button, region, task) {
  if (region) clearError(region);
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await task();
  } catch (err) {
    if (region) showError(region, err);
    else throw err;
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---- layout pieces -------------------------------------------------------------------------

/** A horizontally scrollable, keyboard-focusable wrapper for a wide table. */
export const tableWrap = (label, table) => h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: 0 }, table);

/** A table with caption and column headers; returns { table, tbody, wrap } (wrap scrolls). */
export function dataTable(id, caption, heads, { hideCaption = false } = {}) {
  const tbody = h('tbody');
  const table = h('table', { id },
    h('caption', { class: hideCaption ? 'visually-hidden' : null }, caption),
    h('thead', {}, h('tr', {}, heads.map((t) => (typeof t === 'string' ? h('th', { scope: 'col' }, t) : t)))),
    tbody);
  return { table, tbody, wrap: tableWrap(caption, table) };
}

export function section(id, title, ...children) {
  return h('section', { class: 'card', 'aria-labelledby': `${id}-heading`, id },
    h('h2', { id: `${id}-heading` }, title), ...children);
}

export function field(id, label, input, hint) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    input);
}

export function emptyRow(columns, text) {
  return h('tr', { class: 'empty' }, h('td', { colspan: columns }, text));
}

export function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export const code = (text, title) => h('code', { title: title || null }, text);

/** A live-updates indicator ("Live updates: on") fed by api.subscribe's onState. */
export function liveIndicator() {
  const el = h('p', { class: 'live', role: 'status' }, 'Live updates: connecting…');
  return {
    el,
    update(state, detail) {
      el.dataset.state = state;
      const text = {
        connecting: 'connecting…',
        live: 'on',
        retrying: `disconnected, reconnecting in ${detail ?? '?'} s`,
        ended: `ended (${detail ?? 'closed'})`,
        warning: `on (${detail ?? 'warning'})`,
      }[state] || state;
      el.textContent = `Live updates: ${text}`;
    },
    text(value, state) { el.dataset.state = state || ''; el.textContent = value; },
  };
}
