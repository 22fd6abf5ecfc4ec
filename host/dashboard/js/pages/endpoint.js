// An endpoint: its status, what a sync would change, its state history (revert), its
// operations, and the two actions, kept live by its own stream (/api/sync/{id}/status).
// Routes: GET /api/endpoints/{id}, GET /api/pools/{pool_id}, GET /api/endpoints/{id}/diff,
// GET /api/endpoints/{id}/states, GET /api/sync/{id}/operations, GET /api/sync/operations/{op},
// POST /api/sync/{id}/sync-to-latest | set-as-latest | revert, POST /api/sync/operations/{op}/cancel.

import { api, path, withQuery, subscribe, idempotencyKey } from '/js/api.js';
import {
  h, errorRegion, showError, clearError, section, emptyRow, debounce, dl, code, dataTable, liveIndicator,
  replaceKeepingFocus, withBusy, statusLine, time, shortId, syncLabel, opBadge, opProgress, actionText,
  OP_TYPES, ACTIVE,
} from '/js/ui.js';

const ENDED = ['operation_completed', 'operation_failed', 'operation_cancelled'];
const arrows = (text) => String(text).replaceAll(' -> ', ' → ');

export async function render(ctx) {
  const { signal } = ctx;
  const env = { id: ctx.params[0], signal, endpoint: null, pool: null };
  ctx.setTitle('Endpoint');
  const title = h('h1', {}, 'Endpoint');
  const pageError = errorRegion('endpoint-error');
  const live = liveIndicator();
  const status = h('span', { id: 'endpoint-status', class: 'badge', 'aria-live': 'polite' }, '…');
  const facts = h('div', { id: 'endpoint-facts' });
  const actionError = errorRegion('action-error');
  const actionDone = statusLine('action-result');
  const syncButton = h('button', { type: 'button', id: 'sync-to-latest', onClick: () => act('sync-to-latest', syncButton) }, 'Sync to latest');
  const latestButton = h('button', { type: 'button', id: 'set-as-latest', class: 'secondary', onClick: () => act('set-as-latest', latestButton) }, 'Set as latest');
  const diff = diffSection(env);
  const ops = operationsSection(env);
  const history = historySection(env, (op) => ops.upsert(op));
  ctx.root.append(title, pageError, live.el, facts,
    section('actions', 'Actions',
      h('p', { class: 'hint' }, '"Sync to latest" makes this machine match its pool\'s target. "Set as latest" makes this machine\'s packages the pool\'s target.'),
      h('div', { class: 'actions' }, syncButton, latestButton), actionError, actionDone),
    diff.el, ops.el, history.el);

  function setStatus(value) {
    status.className = `badge sync-${String(value).replace(/[^a-z_]/g, '')}`;
    status.dataset.status = value;
    status.textContent = syncLabel(value);
  }

  async function loadEndpoint() {
    try {
      const e = await api.get(path`/api/endpoints/${env.id}`, { signal });
      if (!env.pool || env.pool.pool_id !== e.pool_id) env.pool = await api.get(path`/api/pools/${e.pool_id}`, { signal });
      env.endpoint = e;
    } catch (err) { showError(pageError, err); return false; }
    const e = env.endpoint;
    title.textContent = `Endpoint ${e.name}`;
    ctx.setTitle(`Endpoint ${e.name}`);
    setStatus(e.sync_status);
    facts.replaceChildren(dl([
      ['Sync status', status],
      ['Hostname', e.hostname],
      ['Pool', h('a', { href: `#/pools/${encodeURIComponent(e.pool_id)}`, id: 'endpoint-pool' }, env.pool.name)],
      ['Online', h('span', { id: 'endpoint-online' }, e.online ? 'Online: its agent holds its event stream open' : 'Offline')],
      ['Last seen', time(e.last_seen, 'never')],
      ['Registered', time(e.created_at)],
      ['Current state', e.current_state_id ? code(shortId(e.current_state_id), e.current_state_id) : 'not reported yet'],
      ['Architecture, pacman', `${e.architecture || '?'}, pacman ${e.pacman_version || '?'}`],
      ['May set the target', e.may_set_target ? 'yes (designated)' : `only as the pool allows (${env.pool.target_setters})`],
      ['Constrains pool availability', e.constrains_availability ? 'yes' : 'no'],
    ]));
    return true;
  }

  async function act(kind, button) {
    const e = env.endpoint;
    if (!e) return;
    if (kind === 'set-as-latest' && !window.confirm(`Set as latest: the target of pool "${env.pool.name}" becomes the packages installed on ${e.name} now.\n\nEvery other endpoint of the pool is then compared with this machine, and their syncs install, upgrade, downgrade and remove packages to match it. Continue?`)) return;
    actionDone.textContent = '';
    const op = await withBusy(button, actionError, () => api.post(path`/api/sync/${env.id}/${kind}`, undefined, { signal, headers: idempotencyKey() }));
    if (!op) return;
    actionDone.textContent = `${OP_TYPES[op.operation_type] || op.operation_type} requested: operation ${shortId(op.operation_id)} is ${op.status.replace('_', ' ')}.`;
    ops.upsert(op);
  }

  const refresh = {
    endpoint: debounce(loadEndpoint),
    diff: debounce(() => diff.load()),
    history: debounce(() => history.load()),
    ops: debounce(() => ops.load()),
  };
  const all = () => Object.values(refresh).forEach((r) => r());
  ctx.onCleanup(() => Object.values(refresh).forEach((r) => r.cancel()));

  if (!(await loadEndpoint())) return;
  await Promise.all([diff.load(), ops.load(), history.load()]);

  const stream = subscribe(path`/api/sync/${env.id}/status`, {
    signal,
    onState: live.update,
    onResync: all,
    onConnected: (first) => { if (first) all(); },
    onEnd() {
      showError(pageError, { title: 'Endpoint deleted', detail: 'This endpoint was deleted; its tokens are revoked.' });
      syncButton.disabled = true;
      latestButton.disabled = true;
    },
    onEvent(msg) {
      if (msg.type.startsWith('operation_')) {
        ops.event(msg);
        if (ENDED.includes(msg.type)) { refresh.endpoint(); refresh.diff(); refresh.history(); }
      } else if (msg.type === 'sync_status_changed' || msg.type === 'target_changed') {
        if (msg.sync_status) setStatus(msg.sync_status);
        refresh.diff();
        refresh.endpoint();
      } else if (msg.type === 'endpoint_online' || msg.type === 'endpoint_offline') {
        refresh.endpoint();
      } else if (msg.type !== 'endpoint_deleted') {
        all();
      }
    },
  });
  ctx.onCleanup(() => stream.close());
}

// ---- (a) diff against the target -----------------------------------------------------------

function diffSection(env) {
  const error = errorRegion('diff-error');
  const body = h('div', { id: 'diff-body' });
  const groups = [['install', 'Install'], ['upgrade', 'Upgrade'], ['downgrade', 'Downgrade'], ['remove', 'Remove'], ['set_reason', 'Reason changes']];

  async function load() {
    let d;
    try {
      d = await api.get(path`/api/endpoints/${env.id}/diff`, { signal: env.signal });
      clearError(error);
    } catch (err) { showError(error, err); return; }
    if (!d.target_generation) {
      body.replaceChildren(h('p', {}, `Pool ${d.pool_name} has no target yet: use "Set as latest" on the machine whose packages should be the target.`));
      return;
    }
    const present = groups.filter(([key]) => (d[key] || []).length);
    body.replaceChildren(
      h('p', {}, `Compared with target generation ${d.target_generation} of pool ${d.pool_name}; the policy classifies this endpoint as `, h('strong', {}, syncLabel(d.sync_status)), '.'),
      present.length
        ? h('div', { class: 'diff-groups' }, present.map(([key, label]) => h('div', { class: 'diff-group', id: `diff-${key}` },
          h('h3', {}, `${label} (${d[key].length})`),
          h('ul', {}, d[key].map((line) => h('li', {}, arrows(line)))))))
        : h('p', {}, 'Nothing to change: the machine matches the target.'));
  }

  return { el: section('diff', 'Difference from the target', h('p', { class: 'hint' }, 'What "Sync to latest" would change on this machine.'), error, body), load };
}

// ---- (b) state history ---------------------------------------------------------------------

function historySection(env, onCreated) {
  const error = errorRegion('revert-error');
  const done = statusLine('revert-result');
  const { tbody, wrap } = dataTable('state-history', 'State history, newest first', ['Entry', 'Recorded', 'Packages', 'State', 'Recorded during', 'Action']);

  async function revert(entry, current, button) {
    const when = new Date(entry.recorded_at).toLocaleString();
    const now = current ? `It has ${current.package_count} packages now (state ${shortId(current.state_id)}).` : '';
    if (!window.confirm(`Revert ${env.endpoint.name} to the state recorded ${when} (entry ${entry.history_id}: ${entry.package_count} packages, state ${shortId(entry.state_id)})?\n\n${now} The agent installs, upgrades, downgrades and removes packages until the machine has exactly that state's packages; the plan appears under Operations.`)) return;
    done.textContent = '';
    const op = await withBusy(button, error, () => api.post(path`/api/sync/${env.id}/revert`, { state_id: entry.state_id }, { signal: env.signal, headers: idempotencyKey() }));
    if (!op) return;
    done.textContent = `Revert requested: operation ${shortId(op.operation_id)} is ${op.status.replace('_', ' ')}.`;
    onCreated(op);
  }

  async function load() {
    let list;
    try {
      list = await api.get(withQuery(path`/api/endpoints/${env.id}/states`, { limit: 50 }), { signal: env.signal });
      clearError(error);
    } catch (err) { showError(error, err); return; }
    const current = list[0];
    tbody.replaceChildren(...list.map((entry) => h('tr', { id: `state-${entry.history_id}`, class: 'state-row' },
      h('th', { scope: 'row' }, String(entry.history_id)),
      h('td', {}, time(entry.recorded_at)),
      h('td', { class: 'num' }, String(entry.package_count)),
      h('td', {}, code(shortId(entry.state_id), entry.state_id)),
      h('td', {}, entry.operation_id ? ['operation ', code(shortId(entry.operation_id), entry.operation_id)] : 'a report'),
      h('td', {}, entry.state_id === current.state_id
        ? h('span', { class: 'muted' }, entry === current ? 'Current state' : 'Same as current')
        : h('button', { type: 'button', class: 'secondary revert', 'data-focus-key': `revert-${entry.history_id}`, onClick: (ev) => revert(entry, current, ev.currentTarget) }, 'Revert to this')))));
    if (!list.length) tbody.append(emptyRow(6, 'This endpoint has not reported its packages yet.'));
  }

  return { el: section('history', 'State history', error, done, wrap), load };
}

// ---- (c) operations ------------------------------------------------------------------------

function operationsSection(env) {
  const error = errorRegion('operations-error');
  const list = h('div', { id: 'operations-list', class: 'op-list' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onClick: () => page(false) }, 'Load older operations');
  const seen = new Map(); // operation id -> events received live this session (the API keeps no per-operation log)
  let cursor = null;

  async function cancel(op, button) {
    if (!window.confirm(`Cancel this ${OP_TYPES[op.operation_type] || op.operation_type}? A pending operation ends now; one in progress stops at the agent's next progress report.`)) return;
    const next = await withBusy(button, error, () => api.post(path`/api/sync/operations/${op.operation_id}/cancel`, undefined, { signal: env.signal }));
    if (next) upsert(next);
  }

  function article(op) {
    const kind = OP_TYPES[op.operation_type] || op.operation_type;
    const plan = op.plan;
    const events = seen.get(op.operation_id) || [];
    return h('article', { id: `op-${op.operation_id}`, class: 'op', 'data-status': op.status },
      h('h3', {}, `${kind} `, opBadge(op), ' ', h('span', { class: 'muted' }, code(shortId(op.operation_id), op.operation_id))),
      opProgress(op, `Progress of ${kind}`),
      dl([
        ['Created', time(op.created_at)],
        ['Started', time(op.started_at, 'not yet')],
        ['Ended', time(op.completed_at, ACTIVE.has(op.status) ? 'not yet' : '—')],
        ACTIVE.has(op.status) && op.lease_expires_at ? ['Agent lease until', time(op.lease_expires_at)] : null,
        op.target_generation != null ? ['Target generation', String(op.target_generation)] : null,
        op.details?.replanned_from_generation != null ? ['Replanned (was for generation)', String(op.details.replanned_from_generation)] : null,
        op.target_state_id ? ['Aims for state', code(shortId(op.target_state_id), op.target_state_id)] : null,
        op.result_state_id ? ['Ended in state', code(shortId(op.result_state_id), op.result_state_id)] : null,
        op.policy ? ['Policy', [`${op.policy.name} (${op.policy.plugin}, `, code(shortId(op.policy.hash), op.policy.hash), ') config ', code(JSON.stringify(op.policy.config))]] : null,
      ]),
      op.error_code || op.error_message ? h('div', { class: 'op-error' }, h('strong', {}, 'Error '), code(op.error_code || ''), h('pre', {}, op.error_message || '')) : null,
      plan ? h('details', { 'data-key': 'plan', open: ACTIVE.has(op.status) || null },
        h('summary', {}, `Plan: ${plan.summary} (${plan.actions.length} actions)`),
        plan.actions.length ? h('ol', { class: 'plan' }, plan.actions.map((a) => h('li', {}, actionText(a)))) : h('p', {}, 'No actions.'),
        plan.skipped.length ? [h('p', {}, 'Left alone by the policy:'), h('ul', {}, plan.skipped.map((s) => h('li', {}, `${s.name}: ${s.reason}`)))] : null)
        : h('p', { class: 'muted' }, 'No plan yet.'),
      events.length ? h('details', { 'data-key': 'events' }, h('summary', {}, `Events seen live (${events.length})`),
        h('ol', {}, events.map((e) => h('li', {}, time(e.timestamp), ` ${e.type.replace('operation_', '').replaceAll('_', ' ')}`, e.text ? ` (${e.text})` : '')))) : null,
      ACTIVE.has(op.status) && !op.cancel_requested
        ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'danger', 'data-focus-key': 'cancel', onClick: (ev) => cancel(op, ev.currentTarget) }, 'Cancel operation'))
        : null);
  }

  function upsert(op, atTop = true) {
    const old = document.getElementById(`op-${op.operation_id}`);
    if (old && list.contains(old)) { replaceKeepingFocus(old, article(op)); return; }
    list.querySelector('.empty')?.remove();
    list[atTop ? 'prepend' : 'append'](article(op));
  }

  async function page(first) {
    try {
      const data = await api.get(withQuery(path`/api/sync/${env.id}/operations`, { limit: 20, cursor: first ? null : cursor }), { signal: env.signal });
      clearError(error);
      if (first) list.replaceChildren();
      data.items.forEach((op) => upsert(op, false));
      if (!list.children.length) list.append(h('p', { class: 'empty' }, 'No operations yet.'));
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
    } catch (err) { showError(error, err); }
  }

  return {
    el: section('operations', 'Operations', error, list, h('div', { class: 'actions' }, more)),
    load: () => page(true),
    upsert,
    event(msg) {
      const op = msg.operation;
      if (!op?.operation_id) return;
      const p = op.progress;
      const events = seen.get(op.operation_id) || [];
      events.push({ type: msg.type, timestamp: msg.timestamp, text: msg.type === 'operation_progress' && p ? `${p.percentage} %${p.stage ? `, ${p.stage}` : ''}` : '' });
      seen.set(op.operation_id, events.slice(-50));
      if (typeof p?.percentage === 'number') upsert(op);
      else api.get(path`/api/sync/operations/${op.operation_id}`, { signal: env.signal }).then(upsert, (err) => showError(error, err));
    },
  };
}
