// Policy plugins: built-ins and uploaded components, which pools use each, upload and delete.
// Routes: GET /api/plugins, GET /api/pools (each pool's policy_plugin / policy_plugin_id),
// POST /api/plugins (the .wasm file as an application/wasm body), DELETE /api/plugins/{id}.

import { api, path, request } from '/js/api.js';
import {
  h, errorRegion, showError, clearError, section, field, emptyRow, dl, code, dataTable, withBusy, statusLine, shortId,
} from '/js/ui.js';

export async function render(ctx) {
  const { signal } = ctx;
  ctx.setTitle('Plugins');
  const listError = errorRegion('plugins-error');
  const deleted = statusLine('plugin-deleted');
  const { tbody, wrap } = dataTable('plugins-table', 'Policy plugins', ['Plugin', 'Version', 'Kind', 'Id', 'sha256', 'Summary', 'Used by', 'Config schema', 'Action'], { hideCaption: true });

  ctx.root.append(
    h('h1', {}, 'Plugins'),
    h('p', {}, 'A pool\'s policy classifies its endpoints and plans their syncs. Choose one on the pool\'s page.'),
    section('plugins', 'Installed plugins', listError, deleted, wrap),
    uploadSection(ctx, () => load()));

  const usedBy = (plugin, pools) => pools.filter((p) => (plugin.builtin
    ? !p.policy_plugin_id && p.policy_plugin === plugin.plugin_id
    : p.policy_plugin_id === plugin.plugin_id));

  async function remove(plugin, button) {
    if (!window.confirm(`Delete the uploaded plugin ${plugin.name} ${plugin.version} (${shortId(plugin.plugin_id)})? Pools that use it must change their policy first.`)) return;
    deleted.textContent = '';
    const ok = await withBusy(button, listError, () => api.del(path`/api/plugins/${plugin.plugin_id}`, { signal }).then(() => true));
    if (ok) {
      deleted.textContent = `Deleted ${plugin.name} ${plugin.version}.`;
      load();
    }
  }

  async function load() {
    let plugins;
    let pools;
    try {
      [plugins, pools] = await Promise.all([api.get('/api/plugins', { signal }), api.get('/api/pools', { signal })]);
      clearError(listError);
    } catch (err) { showError(listError, err); return; }
    tbody.replaceChildren(...plugins.map((p) => {
      const users = usedBy(p, pools);
      return h('tr', { id: `plugin-row-${p.plugin_id}`, class: 'plugin-row' },
        h('th', { scope: 'row' }, p.name),
        h('td', {}, p.version),
        h('td', {}, p.builtin ? 'Built-in' : 'Uploaded'),
        h('td', {}, code(p.builtin ? p.plugin_id : shortId(p.plugin_id), p.plugin_id)),
        h('td', {}, code(shortId(p.sha256), p.sha256)),
        h('td', {}, p.summary),
        h('td', {}, users.length
          ? users.map((u, i) => [i ? ', ' : '', h('a', { href: `#/pools/${encodeURIComponent(u.pool_id)}` }, u.name)])
          : h('span', { class: 'muted' }, 'no pool')),
        h('td', {}, h('details', {}, h('summary', {}, 'Show'), h('pre', {}, JSON.stringify(p.config_schema, null, 2)))),
        h('td', {}, p.builtin ? h('span', { class: 'muted' }, 'Built in') : h('button', {
          type: 'button', class: 'danger', 'data-focus-key': `delete-${p.plugin_id}`, onClick: (ev) => remove(p, ev.currentTarget),
        }, 'Delete')));
    }));
    if (!plugins.length) tbody.append(emptyRow(9, 'No plugins.'));
  }

  await load();
}

function uploadSection(ctx, onUploaded) {
  const file = h('input', { id: 'plugin-file', name: 'plugin', type: 'file', accept: '.wasm,application/wasm', required: true, 'aria-describedby': 'plugin-file-hint upload-error' });
  const error = errorRegion('upload-error');
  const result = h('div', { id: 'upload-result', role: 'status' });
  const button = h('button', { type: 'submit' }, 'Upload plugin');

  async function submit(ev) {
    ev.preventDefault();
    result.replaceChildren();
    clearError(error);
    const chosen = file.files && file.files[0];
    if (!chosen) {
      file.setAttribute('aria-invalid', 'true');
      showError(error, { title: 'No file', detail: 'Choose a .wasm component first.' });
      file.focus();
      return;
    }
    file.removeAttribute('aria-invalid');
    const answer = await withBusy(button, error, () => request('POST', '/api/plugins', { body: chosen, contentType: 'application/wasm', signal: ctx.signal }));
    if (!answer) { file.setAttribute('aria-invalid', 'true'); return; }
    const p = answer.data;
    result.replaceChildren(
      h('p', {}, h('strong', {}, answer.status === 201 ? 'Uploaded and checked: ' : 'Already stored (same component): '), `${p.name} ${p.version}.`),
      dl([
        ['Plugin id', code(p.plugin_id)],
        ['sha256', code(p.sha256)],
        ['Summary', p.summary],
        ['Config schema', h('pre', {}, JSON.stringify(p.config_schema, null, 2))],
      ]),
      h('p', { class: 'hint' }, 'Assign it to a pool on the pool\'s page (Policy).'));
    file.value = '';
    onUploaded();
  }

  const form = h('form', { novalidate: true, onSubmit: submit },
    field('plugin-file', 'Policy component (.wasm)', file,
      'A WebAssembly component implementing pacsync:policy/policy. The host checks it on upload and refuses it (INVALID_PLUGIN) with the reason otherwise. Try it first with pacsync-host plugin check.'),
    error,
    h('div', { class: 'actions' }, button),
    result);
  return section('upload', 'Upload a plugin', form);
}
