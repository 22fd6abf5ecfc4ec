// The pool page's enrollment tokens and repository analysis sections (see pool.js).
// Routes: GET|POST /api/pools/{id}/enrollment-tokens, DELETE /api/pools/{id}/enrollment-tokens/{token_id},
// GET /api/pools/{id}/repository-analysis.

import { api, path } from '/js/api.js';
import {
  h, errorRegion, showError, clearError, section, field, emptyRow, dl, code, dataTable, withBusy,
  statusLine, time, shortId,
} from '/js/ui.js';

export const endpointLink = (env, id) => (id
  ? h('a', { href: `#/endpoints/${encodeURIComponent(id)}`, 'data-focus-key': `endpoint-${id}` }, env.names.get(id) || shortId(id))
  : h('span', { class: 'muted' }, '—'));

// ---- (d) enrollment tokens -----------------------------------------------------------------

export function tokensSection(env) {
  const error = errorRegion('tokens-error');
  const hours = h('input', { id: 'token-hours', type: 'number', min: 1, max: 720, step: 1, value: '24', inputmode: 'numeric' });
  const uses = h('input', { id: 'token-max-uses', type: 'number', min: 1, step: 1, inputmode: 'numeric' });
  const button = h('button', { type: 'submit' }, 'Create enrollment token');
  const created = h('div', { id: 'new-enrollment-token', class: 'new-token', hidden: true });
  const { tbody, wrap } = dataTable('enrollment-tokens', 'Enrollment tokens (their secrets are never shown again)', ['Token', 'Created', 'Expires', 'Uses', 'State', 'Action']);

  function show(t) {
    const input = h('input', { id: 'enrollment-token', type: 'text', readOnly: true, value: t.token, class: 'mono', spellcheck: 'false', autocomplete: 'off' });
    const copied = statusLine('enrollment-token-copied');
    async function copy() {
      try {
        await navigator.clipboard.writeText(input.value);
        copied.textContent = 'Copied to the clipboard.';
      } catch {
        input.focus();
        input.select();
        copied.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
      }
    }
    const server = window.location.origin;
    created.replaceChildren(
      h('h3', {}, 'New enrollment token'),
      h('p', { class: 'notice' }, 'Shown once: only its hash is stored. Whoever holds it can join this pool until it expires',
        t.max_uses ? ` or has been used ${t.max_uses} times` : '', ' (', time(t.expires_at), ').'),
      field('enrollment-token', 'Enrollment token', h('div', { class: 'inline' }, input,
        h('button', { type: 'button', id: 'copy-enrollment-token', onClick: copy }, 'Copy'))),
      copied,
      h('p', {}, 'On the machine, as root, run this and paste the token when ', code('read'),
        ' waits (nothing is shown; the token stays out of the process list and the shell history):'),
      h('pre', { id: 'register-command' }, code(`read -rs PACSYNC_ENROLLMENT_TOKEN && export PACSYNC_ENROLLMENT_TOKEN\npacsync register --server ${server}\nunset PACSYNC_ENROLLMENT_TOKEN`)),
      h('p', {}, 'Or save the token in a file only root can read, register with it, then delete the file:'),
      h('pre', {}, code(`pacsync register --server ${server} --enrollment-token-file /root/enroll.token\nrm /root/enroll.token`)),
      h('p', { class: 'hint' }, 'Add ', code('--ca-cert FILE'), ' for a host with a private certificate and ',
        code('--name NAME'), ' to name the endpoint (default: its hostname); see docs/agent.md.'));
    created.hidden = false;
    input.focus();
    input.select();
  }

  async function submit(ev) {
    ev.preventDefault();
    const body = {};
    const bad = (input, detail) => { showError(error, { title: 'Invalid value', detail }); input.setAttribute('aria-invalid', 'true'); input.focus(); };
    hours.removeAttribute('aria-invalid');
    uses.removeAttribute('aria-invalid');
    if (hours.value !== '') {
      const n = Number(hours.value);
      if (!Number.isInteger(n) || n < 1 || n > 720) return bad(hours, 'The lifetime is 1 to 720 hours.');
      body.expires_in_seconds = n * 3600;
    }
    if (uses.value !== '') {
      const n = Number(uses.value);
      if (!Number.isInteger(n) || n < 1) return bad(uses, 'Maximum uses is a whole number from 1, or empty for unlimited.');
      body.max_uses = n;
    }
    const t = await withBusy(button, error, () => api.post(path`/api/pools/${env.poolId}/enrollment-tokens`, body, { signal: env.signal }));
    if (t) { show(t); load(); }
    return undefined;
  }

  async function revoke(t, button) {
    if (!window.confirm(`Revoke enrollment token ${shortId(t.token_id)}? Machines can no longer register with it; machines already registered keep working.`)) return;
    if (await withBusy(button, error, () => api.del(path`/api/pools/${env.poolId}/enrollment-tokens/${t.token_id}`, { signal: env.signal }).then(() => true))) load();
  }

  const stateOf = (t) => {
    if (t.revoked_at) return 'Revoked';
    if (Date.parse(t.expires_at) <= Date.now()) return 'Expired';
    return t.max_uses != null && t.uses >= t.max_uses ? 'Used up' : 'Active';
  };

  async function load() {
    let list;
    try {
      list = await api.get(path`/api/pools/${env.poolId}/enrollment-tokens`, { signal: env.signal });
    } catch (err) { showError(error, err); return; }
    tbody.replaceChildren(...list.map((t) => h('tr', { id: `enrollment-${t.token_id}` },
      h('th', { scope: 'row' }, code(shortId(t.token_id), t.token_id)),
      h('td', {}, time(t.created_at), ` by ${t.created_by}`),
      h('td', {}, time(t.expires_at)),
      h('td', { class: 'num' }, `${t.uses} / ${t.max_uses ?? 'unlimited'}`),
      h('td', {}, stateOf(t)),
      h('td', {}, t.revoked_at ? '' : h('button', { type: 'button', class: 'danger', 'data-focus-key': `revoke-${t.token_id}`, onClick: (ev) => revoke(t, ev.currentTarget) }, 'Revoke')))));
    if (!list.length) tbody.append(emptyRow(6, 'No enrollment tokens yet.'));
  }

  const form = h('form', { novalidate: true, onSubmit: submit },
    h('div', { class: 'row' }, field('token-hours', 'Lifetime in hours (1 to 720)', hours), field('token-max-uses', 'Maximum uses (empty: unlimited)', uses)),
    error, h('div', { class: 'actions' }, button));
  return { el: section('enrollment', 'Enrollment tokens', form, created, wrap), load };
}

// ---- (e) repository analysis ---------------------------------------------------------------

export function analysisSection(env) {
  const error = errorRegion('analysis-error');
  const body = h('div', { id: 'analysis-body' });
  const reload = h('button', { type: 'button', class: 'secondary', onClick: () => load() }, 'Refresh analysis');
  const names = (list) => (list.length ? list.map((e, i) => [i ? ', ' : '', endpointLink(env, e.endpoint_id),
    e.constrains_availability === false ? ' (does not constrain)' : '', e.reported_at !== undefined ? [' (reported ', time(e.reported_at, 'never'), ')'] : null]) : 'none');

  function packages(id, caption, list) {
    const t = dataTable(id, `${caption} (${list.length})`, ['Package', 'Version', 'Repository', 'Reason', 'Endpoints lacking it']);
    t.tbody.append(...list.map((p) => h('tr', {}, h('th', { scope: 'row' }, p.name), h('td', {}, p.version),
      h('td', {}, p.repository || 'foreign'), h('td', {}, p.reason), h('td', {}, names(p.endpoints)))));
    if (!list.length) t.tbody.append(emptyRow(5, 'None.'));
    return t.wrap;
  }

  async function load() {
    let a;
    try {
      a = await api.get(path`/api/pools/${env.poolId}/repository-analysis`, { signal: env.signal });
      clearError(error);
    } catch (err) { showError(error, err); return; }
    if (!a.target_state_id) { body.replaceChildren(h('p', {}, 'No target yet: the analysis compares endpoints with one.')); return; }
    body.replaceChildren(
      dl([['Target generation', String(a.target_generation)],
        ['Common packages', `${a.common.length} (every analysed endpoint has or can obtain them)`],
        ['Excluded packages', String(a.excluded.length)],
        ['Analysed endpoints', names(a.analysed)],
        ['Unknown (never reported what they can obtain)', names(a.unknown)],
        ['Stale (report too old to constrain the pool)', names(a.stale)]]),
      packages('excluded-packages', 'Excluded packages', a.excluded),
      a.ignored.length ? packages('ignored-packages', 'Ignored: only non-constraining endpoints lack them', a.ignored) : null,
      a.excluders.length ? [h('h3', {}, 'Who holds the pool back'), h('ol', {}, a.excluders.map((e) => h('li', {},
        endpointLink(env, e.endpoint_id), `: lacks ${e.excluded_count} target packages${e.constrains_availability ? '' : ' (does not constrain)'}`)))] : null,
      a.gaps.length ? h('details', {}, h('summary', {}, `What each endpoint lacks (${a.gaps.length})`), a.gaps.map((g) => h('div', { class: 'gap' },
        h('h3', {}, endpointLink(env, g.endpoint_id)), h('ul', {}, g.gaps.map((p) => h('li', {}, `${p.name} ${p.version}${p.foreign ? ' (foreign)' : ''}: `,
          p.offered.length ? `offered ${p.offered.join(', ')}` : 'not offered in any version')))))) : null);
  }

  return { el: section('analysis', 'Repository analysis', error, h('div', { class: 'actions' }, reload), body), load };
}
