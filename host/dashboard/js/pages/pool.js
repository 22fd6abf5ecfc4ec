// A pool: endpoints, recent operations, target and its history, policy, enrollment tokens and
// repository analysis (the last two in pool_parts.js), kept live by the pool's event stream
// (/api/sync/pools/{id}/events).
// Routes: GET /api/pools/{id}, GET /api/pools/{id}/status, GET /api/endpoints?pool_id=,
// GET /api/sync/pools/{id}/operations, GET /api/sync/operations/{op}, GET|PUT /api/pools/{id}/target,
// GET /api/pools/{id}/targets, GET /api/plugins, PUT /api/pools/{id}/policy.

import { api, path, withQuery, subscribe } from '/js/api.js';
import {
  h, errorRegion, showError, clearError, section, field, emptyRow, debounce, dl, code, dataTable,
  liveIndicator, replaceKeepingFocus, withBusy, statusLine, time, shortId, syncBadge, syncLabel,
  opBadge, opProgress, SYNC_ORDER, SYNC_LABELS, OP_TYPES,
} from '/js/ui.js';
import { analysisSection, endpointLink, tokensSection } from '/js/pages/pool_parts.js';

const ENDED = ['operation_completed', 'operation_failed', 'operation_cancelled'];

export async function render(ctx) {
  const { signal } = ctx;
  const env = { poolId: ctx.params[0], signal, pool: null, names: new Map() };
  ctx.setTitle('Pool');
  const title = h('h1', {}, 'Pool');
  const pageError = errorRegion('pool-error');
  const summary = h('p', { class: 'summary', id: 'pool-summary' });
  const live = liveIndicator();
  const endpoints = endpointsSection(env);
  const ops = operationsSection(env);
  const target = targetSection(env, () => refresh.status());
  const policy = policySection(env);
  const tokens = tokensSection(env);
  const analysis = analysisSection(env);
  ctx.root.append(title, pageError, live.el, summary, endpoints.el, ops.el, target.el, policy.el, tokens.el, analysis.el);

  async function loadStatus() {
    try {
      const s = await api.get(path`/api/pools/${env.poolId}/status`, { signal });
      summary.textContent = `${s.total} endpoints: ${SYNC_ORDER.map((k) => `${s[k]} ${SYNC_LABELS[k].toLowerCase()}`).join(', ')}. Target generation ${s.target_generation}.`;
    } catch (err) { showError(pageError, err); }
  }
  const refresh = {
    status: debounce(loadStatus),
    endpoints: debounce(() => endpoints.load()),
    target: debounce(() => target.load()),
    analysis: debounce(() => analysis.load()),
    ops: debounce(() => ops.load()),
  };
  const all = () => Object.values(refresh).forEach((r) => r());
  const followed = () => { refresh.status(); refresh.endpoints(); refresh.target(); refresh.ops(); };
  ctx.onCleanup(() => Object.values(refresh).forEach((r) => r.cancel()));

  try {
    env.pool = await api.get(path`/api/pools/${env.poolId}`, { signal });
  } catch (err) {
    showError(pageError, err);
    return;
  }
  title.textContent = `Pool ${env.pool.name}`;
  ctx.setTitle(`Pool ${env.pool.name}`);
  await endpoints.load();
  await Promise.all([loadStatus(), ops.load(), target.load(), policy.load(), tokens.load(), analysis.load()]);

  const stream = subscribe(path`/api/sync/pools/${env.poolId}/events`, {
    signal,
    onState: live.update,
    onResync: all,
    // Events between the first reads and the stream's start are not replayed: read again once.
    onConnected: (first) => { if (first) followed(); },
    onEvent(msg) {
      if (msg.type.startsWith('operation_')) {
        ops.event(msg);
        if (ENDED.includes(msg.type)) { refresh.endpoints(); refresh.status(); refresh.analysis(); }
      } else if (msg.type === 'sync_status_changed') {
        endpoints.setStatus(msg.endpoint_id, msg.sync_status);
        refresh.endpoints(); refresh.status();
      } else if (msg.type === 'target_changed') {
        refresh.target(); refresh.status(); refresh.endpoints(); refresh.analysis();
      } else {
        refresh.endpoints(); refresh.status(); refresh.analysis();
      }
    },
  });
  ctx.onCleanup(() => stream.close());
}

// ---- (a) endpoints -------------------------------------------------------------------------

function endpointsSection(env) {
  const error = errorRegion('endpoints-error');
  const filter = h('input', { id: 'endpoint-filter', type: 'search', autocomplete: 'off', 'aria-controls': 'endpoints-table', 'aria-describedby': 'endpoint-filter-hint', onInput: () => draw() });
  const count = statusLine('endpoint-count', 'hint');
  let sort = { key: 'name', dir: 1 };
  let list = [];
  const heads = [['name', 'Name'], ['hostname', 'Hostname'], ['sync_status', 'Sync status'], ['online', 'Online'], ['last_seen', 'Last seen']].map(([key, label]) => h('th', { scope: 'col', 'data-key': key },
    h('button', { type: 'button', class: 'sort', onClick: () => { sort = { key, dir: sort.key === key ? -sort.dir : 1 }; draw(); } }, label)));
  const { tbody, wrap } = dataTable('endpoints-table', 'Endpoints (column headers sort)', heads, { hideCaption: true });

  const rank = (e) => {
    if (sort.key === 'sync_status') return SYNC_ORDER.indexOf(e.sync_status);
    if (sort.key === 'last_seen') return e.last_seen ? Date.parse(e.last_seen) : -Infinity;
    if (sort.key === 'online') return e.online ? 0 : 1;
    return String(e[sort.key] ?? '').toLowerCase();
  };
  const compare = (a, b) => {
    const x = rank(a);
    const y = rank(b);
    return (x < y ? -1 : x > y ? 1 : 0) * sort.dir || a.name.localeCompare(b.name);
  };

  function draw() {
    for (const th of heads) {
      if (th.dataset.key === sort.key) th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
    const q = filter.value.trim().toLowerCase();
    const shown = list.filter((e) => !q || [e.name, e.hostname, e.sync_status, syncLabel(e.sync_status)].some((v) => String(v).toLowerCase().includes(q)));
    shown.sort(compare);
    tbody.replaceChildren(...shown.map((e) => h('tr', { id: `endpoint-${e.endpoint_id}`, class: 'endpoint-row', 'data-endpoint-id': e.endpoint_id },
      h('th', { scope: 'row' }, h('a', { href: `#/endpoints/${encodeURIComponent(e.endpoint_id)}` }, e.name)),
      h('td', {}, e.hostname),
      h('td', {}, syncBadge(e.sync_status, { class: 'endpoint-status' })),
      h('td', { class: 'endpoint-online' }, e.online ? 'Online' : 'Offline'),
      h('td', {}, time(e.last_seen, 'never')))));
    if (!shown.length) tbody.append(emptyRow(5, list.length ? 'No endpoint matches the filter.' : 'No endpoints yet: create an enrollment token below and register a machine with it.'));
    count.textContent = `Showing ${shown.length} of ${list.length} endpoints.`;
  }

  return {
    el: section('endpoints', 'Endpoints', error, field('endpoint-filter', 'Filter endpoints', filter, 'Matches name, hostname or sync status.'), count, wrap),
    async load() {
      try {
        list = await api.get(withQuery('/api/endpoints', { pool_id: env.poolId }), { signal: env.signal });
        clearError(error);
      } catch (err) { showError(error, err); return; }
      env.names = new Map(list.map((e) => [e.endpoint_id, e.name]));
      draw();
    },
    setStatus(id, status) {
      const e = list.find((x) => x.endpoint_id === id);
      if (e) { e.sync_status = status; draw(); }
    },
  };
}

// ---- (f) operations ------------------------------------------------------------------------

function operationsSection(env) {
  const error = errorRegion('operations-error');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onClick: () => page(false) }, 'Load older operations');
  const { tbody, wrap } = dataTable('operations-table', 'Recent operations, newest first', ['Type', 'Endpoint', 'Status', 'Progress', 'Created', 'Error'], { hideCaption: true });
  let cursor = null;

  const kind = (op) => OP_TYPES[op.operation_type] || op.operation_type;
  const row = (op) => h('tr', { id: `op-${op.operation_id}`, class: 'op-row', 'data-status': op.status },
    h('th', { scope: 'row' }, kind(op)),
    h('td', {}, endpointLink(env, op.endpoint_id)),
    h('td', {}, opBadge(op)),
    h('td', {}, opProgress(op, `Progress of ${kind(op)} on ${env.names.get(op.endpoint_id) || shortId(op.endpoint_id)}`)),
    h('td', {}, time(op.created_at)),
    h('td', {}, op.error_code ? [code(op.error_code), ' ', op.error_message || ''] : ''));

  function upsert(op, atTop = true) {
    const old = document.getElementById(`op-${op.operation_id}`);
    if (old && tbody.contains(old)) { replaceKeepingFocus(old, row(op)); return; }
    tbody.querySelector('tr.empty')?.remove();
    tbody[atTop ? 'prepend' : 'append'](row(op));
  }

  async function page(first) {
    try {
      const data = await api.get(withQuery(path`/api/sync/pools/${env.poolId}/operations`, { limit: 25, cursor: first ? null : cursor }), { signal: env.signal });
      clearError(error);
      if (first) tbody.replaceChildren();
      data.items.forEach((op) => upsert(op, false));
      if (!tbody.children.length) tbody.append(emptyRow(6, 'No operations yet.'));
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
    } catch (err) { showError(error, err); }
  }

  return {
    el: section('operations', 'Recent operations', error, wrap, h('div', { class: 'actions' }, more)),
    load: () => page(true),
    // Operation events carry the whole operation with its progress; re-read it only if not.
    event(msg) {
      const op = msg.operation;
      if (typeof op?.progress?.percentage === 'number') upsert(op);
      else if (op?.operation_id) {
        api.get(path`/api/sync/operations/${op.operation_id}`, { signal: env.signal }).then(upsert, (err) => showError(error, err));
      }
    },
  };
}

// ---- (b) target ----------------------------------------------------------------------------

function targetSection(env, onChanged) {
  const error = errorRegion('target-error');
  const current = h('div', { id: 'target-current' });
  const { tbody, wrap } = dataTable('target-history', 'Target history, newest first', ['Generation', 'Set', 'Packages', 'Set by', 'State', 'Action']);

  async function restore(gen, button) {
    if (!window.confirm(`Make generation ${gen.generation} (${gen.package_count} packages, state ${shortId(gen.state_id)}) the target of pool "${env.pool.name}" again?\n\nEvery endpoint is then classified against it, and syncs move machines to it.`)) return;
    const done = await withBusy(button, error, () => api.put(path`/api/pools/${env.poolId}/target`, { state_id: gen.state_id }, { signal: env.signal }));
    if (done) { await load(); onChanged(); }
  }

  async function load() {
    let target;
    let history;
    try {
      [target, history] = await Promise.all([
        api.get(path`/api/pools/${env.poolId}/target`, { signal: env.signal }),
        api.get(withQuery(path`/api/pools/${env.poolId}/targets`, { limit: 50 }), { signal: env.signal }),
      ]);
      clearError(error);
    } catch (err) { showError(error, err); return; }
    current.replaceChildren(...(target.generation ? [
      dl([['Generation', String(target.generation)], ['Set', time(target.set_at)],
        ['State', code(shortId(target.state_id), target.state_id)], ['Packages', String(target.packages.length)]]),
      h('details', {}, h('summary', {}, `Target packages (${target.packages.length})`),
        h('ul', { class: 'columns' }, target.packages.map((p) => h('li', {}, `${p.name} ${p.version}`, p.reason === 'dependency' ? h('span', { class: 'muted' }, ' (dependency)') : null)))),
    ] : [h('p', {}, 'No target yet. Open the endpoint whose packages should be the target and use "Set as latest".')]));
    tbody.replaceChildren(...history.map((gen) => h('tr', { id: `target-${gen.generation}` },
      h('th', { scope: 'row' }, String(gen.generation)),
      h('td', {}, time(gen.set_at)),
      h('td', { class: 'num' }, String(gen.package_count)),
      h('td', {}, gen.endpoint_id ? ['Set as latest from ', endpointLink(env, gen.endpoint_id)] : 'Restored by an admin'),
      h('td', {}, code(shortId(gen.state_id), gen.state_id)),
      h('td', {}, gen.state_id === target.state_id
        ? h('span', { class: 'muted' }, 'Current target')
        : h('button', { type: 'button', class: 'secondary', 'data-focus-key': `restore-${gen.generation}`, onClick: (ev) => restore(gen, ev.currentTarget) }, 'Make this the target again')))));
    if (!history.length) tbody.append(emptyRow(6, 'No target has been set yet.'));
  }

  return { el: section('target', 'Target', error, current, wrap), load };
}

// ---- (c) policy ----------------------------------------------------------------------------

function policySection(env) {
  const select = h('select', { id: 'policy-plugin', name: 'plugin', onChange: () => describe() });
  const about = h('div', { class: 'plugin-about' });
  const config = h('textarea', { id: 'policy-config', name: 'config', rows: 8, spellcheck: 'false', class: 'mono', 'aria-describedby': 'policy-config-hint policy-error' });
  const error = errorRegion('policy-error', 'field-error');
  const done = statusLine('policy-saved');
  const button = h('button', { type: 'submit' }, 'Save policy');
  let plugins = [];

  function describe() {
    const p = plugins.find((x) => x.plugin_id === select.value);
    about.replaceChildren(...(p && p.config_schema !== undefined ? [h('p', {}, p.summary),
      h('details', {}, h('summary', {}, 'Config schema'), h('pre', {}, JSON.stringify(p.config_schema, null, 2)))] : []));
  }

  function invalid(err) {
    config.setAttribute('aria-invalid', 'true');
    showError(error, err);
    config.focus();
  }

  async function submit(ev) {
    ev.preventDefault();
    done.textContent = '';
    clearError(error);
    let parsed = {};
    if (config.value.trim()) {
      try { parsed = JSON.parse(config.value); } catch (err) {
        invalid({ title: 'Invalid JSON', detail: `The policy config is not valid JSON: ${err.message}` });
        return;
      }
    }
    const pool = await withBusy(button, null, () => api.put(path`/api/pools/${env.poolId}/policy`, { plugin: select.value, config: parsed }, { signal: env.signal }))
      .catch((err) => { invalid(err); return null; });
    if (!pool) return;
    env.pool = pool;
    config.removeAttribute('aria-invalid');
    config.value = JSON.stringify(pool.policy_config ?? {}, null, 2);
    done.textContent = `Policy saved: ${pool.policy_plugin}.`;
  }

  const form = h('form', { novalidate: true, onSubmit: submit },
    field('policy-plugin', 'Policy plugin', select), about,
    h('div', { class: 'field' },
      h('label', { for: 'policy-config' }, 'Policy config'),
      h('p', { class: 'hint', id: 'policy-config-hint' }, 'JSON, validated by the plugin when you save. Empty means {}.'),
      config, error),
    h('div', { class: 'actions' }, button), done);

  return {
    el: section('policy', 'Policy', form),
    async load() {
      try {
        plugins = await api.get('/api/plugins', { signal: env.signal });
      } catch (err) {
        showError(error, err);
        plugins = ['mirror', 'conservative', 'holds'].map((name) => ({ plugin_id: name, name, builtin: true }));
      }
      const chosen = env.pool.policy_plugin_id || env.pool.policy_plugin;
      if (!plugins.some((p) => p.plugin_id === chosen)) plugins.push({ plugin_id: chosen, name: env.pool.policy_plugin });
      select.replaceChildren(...plugins.map((p) => h('option', { value: p.plugin_id, selected: p.plugin_id === chosen },
        `${p.name}${p.version ? ` ${p.version}` : ''} (${p.builtin ? 'built-in' : `uploaded, ${shortId(p.plugin_id)}`})`)));
      config.value = JSON.stringify(env.pool.policy_config ?? {}, null, 2);
      describe();
    },
  };
}
