// Fleet: every pool with its endpoint counts per sync status; create a pool.
// Routes: GET /api/pools, GET /api/pools/{id}/status, POST /api/pools,
// stream /api/sync/pools/{id}/events (one per pool, up to LIVE_CAP).

import { api, path, subscribe } from '/js/api.js';
import {
  h, errorRegion, showError, clearError, tableWrap, section, field, emptyRow, debounce,
  liveIndicator, replaceKeepingFocus, withBusy, code, SYNC_ORDER, SYNC_LABELS,
} from '/js/ui.js';

// Each admin name may hold --max-streams-per-admin (64 by default) streams per replica, and
// other tabs need some too: the fleet page follows at most this many pools live.
const LIVE_CAP = 32;

export async function render(ctx) {
  const { signal } = ctx;
  ctx.setTitle('Fleet');
  const pageError = errorRegion('fleet-error');
  const live = liveIndicator();
  const tbody = h('tbody');
  const rows = new Map();
  const pools = new Map();

  const table = h('table', { id: 'pools-table' },
    h('caption', { class: 'visually-hidden' }, 'Pools, with their endpoints per sync status'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Pool'),
      h('th', { scope: 'col', class: 'num' }, 'Endpoints'),
      h('th', { scope: 'col', class: 'num' }, 'Online now'),
      SYNC_ORDER.map((s) => h('th', { scope: 'col', class: 'num' }, SYNC_LABELS[s])),
      h('th', { scope: 'col', class: 'num' }, 'Target generation'),
      h('th', { scope: 'col' }, 'Policy'))),
    tbody);

  const reload = h('button', { type: 'button', class: 'secondary', onClick: () => load() }, 'Reload pools');
  ctx.root.append(
    h('h1', {}, 'Fleet'),
    pageError,
    live.el,
    section('pools', 'Pools', h('div', { class: 'actions' }, reload), tableWrap('Pools', table)),
    createForm(ctx));

  const streams = new Map();
  const states = new Map();
  ctx.onCleanup(() => { for (const s of streams.values()) s.close(); streams.clear(); });

  function showLive() {
    const total = states.size;
    if (total === 0) { live.text(pools.size ? 'Live updates: off' : 'Live updates: no pools to follow', 'ended'); return; }
    const on = [...states.values()].filter((s) => s === 'live' || s === 'warning').length;
    const capped = pools.size > LIVE_CAP ? ` (live for the first ${LIVE_CAP} of ${pools.size} pools; "Reload pools" refreshes the others)` : '';
    live.text(`Live updates: ${on} of ${total} pool streams connected${capped}`, on === total ? 'live' : 'retrying');
  }

  function row(pool, status, failed) {
    const count = (value) => (status ? String(value) : '—');
    return h('tr', { id: `pool-${pool.pool_id}`, class: 'pool-row', 'aria-busy': status || failed ? null : 'true' },
      h('th', { scope: 'row' }, h('a', { href: `#/pools/${encodeURIComponent(pool.pool_id)}`, 'data-focus-key': 'link' }, pool.name)),
      h('td', { class: 'num' }, count(status?.total)),
      h('td', { class: 'num', 'data-status': 'online' }, count(status?.online)),
      SYNC_ORDER.map((s) => h('td', { class: ['num', status && status[s] > 0 ? `count-${s}` : null], 'data-status': s }, count(status?.[s]))),
      h('td', { class: 'num' }, String(status ? status.target_generation : pool.target_generation)),
      h('td', {}, code(pool.policy_plugin)));
  }

  function put(pool, status, failed) {
    const next = row(pool, status, failed);
    const old = rows.get(pool.pool_id);
    rows.set(pool.pool_id, next);
    if (old && old.isConnected) replaceKeepingFocus(old, next);
    else tbody.append(next);
  }

  async function refreshRow(poolId) {
    const pool = pools.get(poolId);
    if (!pool) return;
    try {
      const status = await api.get(path`/api/pools/${poolId}/status`, { signal });
      put(pool, status);
    } catch (err) {
      if (err.status === 404) { rows.get(poolId)?.remove(); rows.delete(poolId); pools.delete(poolId); return; }
      put(pool, null, true);
      showError(pageError, err);
    }
  }

  function follow(poolId) {
    const refresh = debounce(() => refreshRow(poolId), 300);
    ctx.onCleanup(refresh.cancel);
    const stream = subscribe(path`/api/sync/pools/${poolId}/events`, {
      signal,
      onEvent: refresh,
      onResync: refresh,
      // Events between the first read and the stream's start are not replayed: read once more.
      onConnected: (first) => { if (first) refresh(); },
      onState: (state) => { states.set(poolId, state); showLive(); },
    });
    streams.set(poolId, stream);
  }

  async function load() {
    clearError(pageError);
    let list;
    try {
      list = await api.get('/api/pools', { signal });
    } catch (err) {
      showError(pageError, err);
      return;
    }
    list.sort((a, b) => a.name.localeCompare(b.name));
    pools.clear();
    rows.clear();
    tbody.replaceChildren();
    for (const pool of list) {
      pools.set(pool.pool_id, pool);
      put(pool, null);
    }
    if (list.length === 0) tbody.append(emptyRow(9, 'No pools yet: create one below.'));
    for (const [id, stream] of streams) {
      if (!pools.has(id)) { stream.close(); streams.delete(id); states.delete(id); }
    }
    for (const pool of list.slice(0, LIVE_CAP)) if (!streams.has(pool.pool_id)) follow(pool.pool_id);
    showLive();
    await Promise.all(list.map((pool) => refreshRow(pool.pool_id)));
  }

  await load();
}

function createForm(ctx) {
  const name = h('input', { id: 'pool-name', name: 'name', type: 'text', required: true, maxlength: 128, autocomplete: 'off', 'aria-describedby': 'create-pool-error' });
  const description = h('input', { id: 'pool-description', name: 'description', type: 'text', autocomplete: 'off' });
  const setters = h('select', { id: 'pool-target-setters', name: 'target_setters' },
    h('option', { value: 'any_endpoint', selected: true }, 'Any endpoint of the pool (default)'),
    h('option', { value: 'designated' }, 'Only endpoints an admin designates'),
    h('option', { value: 'admins' }, 'Only admins'));
  const error = errorRegion('create-pool-error');
  const button = h('button', { type: 'submit' }, 'Create pool');

  const form = h('form', { novalidate: true, onSubmit: submit },
    field('pool-name', 'Pool name', name),
    field('pool-description', 'Description (optional)', description),
    field('pool-target-setters', 'Who may set the target with "Set as latest"', setters),
    error,
    h('div', { class: 'actions' }, button));

  async function submit(ev) {
    ev.preventDefault();
    const value = name.value.trim();
    if (value.length < 1 || value.length > 128) {
      name.setAttribute('aria-invalid', 'true');
      showError(error, { title: 'Invalid name', detail: 'A pool name has 1 to 128 characters.' });
      name.focus();
      return;
    }
    name.removeAttribute('aria-invalid');
    const body = { name: value, target_setters: setters.value };
    if (description.value.trim()) body.description = description.value.trim();
    const pool = await withBusy(button, error, () => api.post('/api/pools', body, { signal: ctx.signal }));
    if (pool) ctx.navigate(`#/pools/${encodeURIComponent(pool.pool_id)}`);
    else { name.setAttribute('aria-invalid', 'true'); name.focus(); }
  }

  return section('create-pool', 'Create a pool', form);
}
