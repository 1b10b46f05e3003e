// Entry point: the browser-side router, the sign-in form and the error panel.
import { api, AuthRequired, problemText, setWaitNotice } from './api.js';
import { h } from './dom.js';
import { currentUser, forgetUser, saveUser } from './store.js';
import { homePage } from './pages/home.js';
import { performancePage } from './pages/performance.js';
import { sessionPage } from './pages/session.js';
import { reservationPage } from './pages/reservation.js';
import { ticketsPage } from './pages/tickets.js';
import { rankingsPage } from './pages/rankings.js';

// Keep in step with APP_PATHS in gateway/web.py (the server loads the page for these).
const ROUTES = [
  [/^\/$/, homePage],
  [/^\/performances\/(\d+)$/, performancePage],
  [/^\/sessions\/(\d+)$/, sessionPage],
  [/^\/sessions\/(\d+)\/rankings$/, rankingsPage],
  [/^\/reservations\/([A-Za-z0-9_-]+)$/, reservationPage],
  [/^\/tickets$/, ticketsPage],
];

const main = document.getElementById('main');
const notice = document.getElementById('notice');
let current = null; // AbortController of the page on screen

setWaitNotice((text) => {
  notice.textContent = text;
  notice.hidden = !text;
});

/** Go to an app path without reloading the page. */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render({ focus: true });
}

function signInForm(onDone) {
  const error = h('p', { class: 'error', id: 'signin-error', hidden: true });
  const input = h('input', {
    id: 'nickname', name: 'nickname', required: true, maxlength: 32, autocomplete: 'nickname',
    'aria-describedby': 'signin-help signin-error',
  });
  const button = h('button', { type: 'submit' }, 'Continue');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h2', { id: 'signin-title' }, 'Sign in as a guest'),
    h('p', { id: 'signin-help' }, 'Pick a nickname: it is how you appear in the rankings.'),
    h('label', { for: 'nickname' }, 'Nickname'),
    input, button, error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      saveUser(await api('/api/auth/guest', {
        method: 'POST', body: { nickname: input.value.trim() },
      }));
      onDone();
    } catch (err) {
      error.textContent = problemText(err);
      error.hidden = false;
      button.disabled = false;
      input.focus();
    }
  });
  queueMicrotask(() => input.focus());
  return form;
}

function errorPanel(err, retry) {
  return h('section', { class: 'card error-panel', role: 'alert' },
    h('h2', {}, 'Something went wrong'),
    h('p', {}, problemText(err)),
    h('button', { type: 'button', onclick: retry }, 'Try again'));
}

function renderWho() {
  const who = document.getElementById('who');
  const user = currentUser();
  if (!user) {
    who.replaceChildren();
    return;
  }
  who.replaceChildren(`Signed in as ${user.nickname} `,
    h('button', { type: 'button', class: 'link', onclick: () => { forgetUser(); render(); } },
      'Sign out'));
}

/** Show the page of the current URL (or the sign-in form it needs). */
export async function render({ focus = false } = {}) {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  main.replaceChildren();
  renderWho();
  if (focus) main.focus({ preventScroll: false });
  if (!route) {
    main.append(h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '/' }, 'Back to the performances')));
    return;
  }
  const [pattern, page] = route;
  const params = path.match(pattern).slice(1);
  try {
    await page({
      main, params, signal: controller.signal, navigate,
      // A page that meets an expired token mid-way asks for sign-in here.
      requireSignIn: () => showSignIn(controller),
    });
    performance.mark('page-rendered'); // bench/web_app.py: first page load
  } catch (err) {
    if (controller.signal.aborted) return;
    if (err instanceof AuthRequired) {
      showSignIn(controller);
      return;
    }
    console.error(err);
    main.replaceChildren(errorPanel(err, () => render()));
  }
}

function showSignIn(controller) {
  if (controller !== current) return;
  controller.abort();
  document.title = 'Sign in · Boxoffice';
  main.replaceChildren(h('h1', {}, 'Sign in'), signInForm(() => render()));
}

document.addEventListener('click', (event) => {
  const link = event.target.closest?.('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  if (link.getAttribute('href').startsWith('#')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', () => render({ focus: true }));
window.addEventListener('bx-auth', renderWho);
render();
