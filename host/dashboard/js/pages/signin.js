// Sign-in: an admin token, checked with GET /api/pools, kept only in sessionStorage.

import { api, session } from '/js/api.js';
import { h, errorRegion, showError, clearError } from '/js/ui.js';

export function render(ctx) {
  ctx.setTitle('Sign in');
  const input = h('textarea', {
    id: 'token', name: 'token', rows: 4, required: true, autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'token-hint signin-error',
  });
  const error = errorRegion('signin-error');
  const button = h('button', { type: 'submit', id: 'sign-in' }, 'Sign in');

  const notice = ctx.flash
    ? h('p', { class: ['notice', ctx.flash.kind === 'alert' ? 'notice-alert' : null], role: ctx.flash.kind === 'alert' ? 'alert' : 'status', id: 'signin-notice' }, ctx.flash.text)
    : null;

  const form = h('form', { class: 'card signin', novalidate: true, 'aria-labelledby': 'signin-heading', onSubmit: submit },
    h('label', { for: 'token' }, 'Admin token'),
    h('p', { class: 'hint', id: 'token-hint' },
      'Paste a token printed by ', h('code', {}, 'pacsync-host token issue --role admin --name NAME'),
      '. It stays in this browser tab only (session storage) until you sign out or close the tab.'),
    input,
    error,
    h('div', { class: 'actions' }, button));

  ctx.root.append(h('h1', { id: 'signin-heading' }, 'Sign in'), notice, form);
  input.focus();

  async function submit(ev) {
    ev.preventDefault();
    clearError(error);
    const token = input.value.trim().replace(/^Bearer\s+/i, '');
    if (!token) {
      input.setAttribute('aria-invalid', 'true');
      showError(error, { title: 'Missing token', detail: 'Paste an admin token first.' });
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      // Any admin route tells a valid admin token from others (401 invalid, 403 not admin).
      await api.get('/api/pools', { token, redirectOn401: false, signal: ctx.signal });
      input.removeAttribute('aria-invalid');
      input.value = '';
      session.set(token);
      ctx.signedIn();
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      input.setAttribute('aria-invalid', 'true');
      showError(error, err);
      input.focus();
    } finally {
      button.disabled = false;
    }
  }
}
