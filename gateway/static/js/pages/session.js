// Session: the waiting room (SSE, then polling with backoff when the stream drops), the seat
// map, the hold with its countdown, and the confirmation with one Idempotency-Key per hold.
import { api, ApiError, AuthRequired, problemText } from '../api.js';
import { every, formatClock, formatDate, formatPrice, h, sleep } from '../dom.js';
import { createSeatMap } from '../seatmap.js';
import {
  currentUser, dropHold, forgetUser, saveHold, savedHold, saveReservationInfo,
} from '../store.js';
import { fetchEventSource } from '../../vendor/fetch-event-source/fetch.js';

const SEAT_REFRESH_MS = 3000;
// Polling is the waiter's heartbeat: stay well under the server's timeout (30 s by default).
const POLL_MIN_MS = 1000;
const POLL_MAX_MS = 4000;
const POLL_ERROR_MAX_MS = 10000;
// While polling, try the live stream again this often.
const STREAM_RETRY_MS = 30000;

const seatLimit = () =>
  Number(document.querySelector('meta[name="bx-max-seats"]')?.content) || 4;

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function waitText(seconds) {
  if (seconds === null || seconds === undefined) return 'still being worked out';
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s`;
  return `about ${Math.round(seconds / 60)} min`;
}

export async function sessionPage({ main, params, signal, navigate, requireSignIn }) {
  const sessionId = Number(params[0]);
  const session = await api(`/api/sessions/${sessionId}`, { signal });
  const perf = await api(`/api/performances/${session.performance_id}`, { signal });
  document.title = `${perf.title} · Book · Boxoffice`;
  const user = currentUser();
  if (!user) throw new AuthRequired();

  const live = h('p', { role: 'status', class: 'queue-status', id: 'queue-status' });
  const mode = h('p', { class: 'muted', id: 'queue-mode' });
  const actions = h('div', { class: 'actions' });
  const problem = h('p', { class: 'error', role: 'alert', hidden: true });
  const seatsArea = h('div', { id: 'seats' });
  main.append(
    h('h1', {}, perf.title),
    h('p', {}, `${formatDate(session.starts_at)} · ${perf.venue.name} · `,
      h('a', { href: `/sessions/${sessionId}/rankings` }, 'Rankings')),
    h('section', { class: 'card waiting-room', 'aria-labelledby': 'wr-title' },
      h('h2', { id: 'wr-title' }, 'Waiting room'), live, mode, actions),
    problem, seatsArea);

  let last = null; // the last QueueStatus
  let admission = null;
  let stream = null; // AbortController of the live stream
  let polling = false;
  let map = null;
  let opening = false;
  let holdPanel = null;
  let timers = []; // the seat map's refresh and the hold's countdown

  const showProblem = (text) => {
    problem.textContent = text;
    problem.hidden = !text;
  };
  const guard = (fn) => async (...args) => {
    showProblem('');
    try {
      await fn(...args);
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof AuthRequired) requireSignIn();
      else showProblem(problemText(err));
    }
  };
  const auth = () => {
    const u = currentUser();
    if (!u) throw new AuthRequired();
    return u;
  };

  // --- the queue -------------------------------------------------------------------------

  const joinButton = h('button', { type: 'button' }, 'Join the queue');
  const leaveButton = h('button', { type: 'button', class: 'secondary' }, 'Leave the queue');
  const opensIn = h('p', { class: 'muted' });
  joinButton.addEventListener('click', guard(async () => {
    joinButton.disabled = true;
    try {
      handle(await api(`/api/queue/${sessionId}/join`, { method: 'POST', auth: true, signal }));
    } finally {
      joinButton.disabled = false;
    }
  }));
  leaveButton.addEventListener('click', guard(async () => {
    await api(`/api/queue/${sessionId}`, { method: 'DELETE', auth: true, signal });
    stopFollowing();
    dropHold(sessionId);
    closeSeatMap();
    last = null;
    live.textContent = 'You left the queue.';
    showJoin();
  }));

  const opensAt = Date.parse(session.booking_opens_at);
  const tickOpening = () => {
    const left = (opensAt - Date.now()) / 1000;
    opensIn.textContent = left > 0 ? `Booking opens in ${formatClock(left)}.` : '';
  };
  every(1000, signal, tickOpening);

  function showJoin() {
    mode.textContent = '';
    tickOpening();
    actions.replaceChildren(joinButton, opensIn);
  }

  function notInQueue() {
    stopFollowing();
    closeSeatMap();
    last = null;
    live.textContent = 'You are not in the queue for this session.';
    showJoin();
  }

  /** Apply a QueueStatus, whichever way it came; true when something changed. */
  function handle(status) {
    const key = JSON.stringify({ ...status, admission_token: null });
    const changed = key !== last?.key;
    last = { ...status, key };
    if (status.status === 'waiting' || status.status === 'pre_queue') {
      if (changed) {
        live.textContent = status.status === 'pre_queue'
          ? 'You are in line for the draw: places are drawn when booking opens.'
          : `You are in line: number ${status.position}, with ${status.ahead} `
            + `${status.ahead === 1 ? 'person' : 'people'} ahead of you. `
            + `Estimated wait: ${waitText(status.estimated_wait_s)}.`;
      }
      actions.replaceChildren(leaveButton);
      follow();
    } else if (status.status === 'admitted') {
      admission = status.admission_token;
      stopFollowing();
      if (changed) live.textContent = "It's your turn: pick your seats below.";
      actions.replaceChildren(leaveButton);
      guard(openSeatMap)();
    } else if (status.status === 'sold_out') {
      stopFollowing();
      closeSeatMap();
      live.textContent = 'Sold out: every seat of this session has been booked.';
      mode.textContent = '';
      actions.replaceChildren(h('a', { href: `/performances/${perf.id}` }, 'Other sessions'));
    } else if (status.status === 'expired') {
      stopFollowing();
      closeSeatMap();
      live.textContent = 'Your place expired because this page stopped checking in. '
        + 'Join again to get a new place.';
      mode.textContent = '';
      actions.replaceChildren(joinButton);
    }
    return changed;
  }

  const waiting = () => last && (last.status === 'waiting' || last.status === 'pre_queue');

  function stopFollowing() {
    stream?.abort();
    stream = null;
  }

  /** Follow the queue's event stream; when it fails or ends, poll instead. */
  function follow() {
    if (stream || polling || signal.aborted) return;
    const controller = new AbortController();
    signal.addEventListener('abort', () => controller.abort(), { once: true });
    stream = controller;
    mode.textContent = 'Connecting…';
    fetchEventSource(`/api/queue/${sessionId}/events`, {
      signal: controller.signal,
      openWhenHidden: true,
      headers: { authorization: `Bearer ${auth().access_token}` },
      async onopen(response) {
        if (response.status === 401) {
          forgetUser();
          throw new AuthRequired();
        }
        const type = response.headers.get('content-type') || '';
        if (!response.ok || !type.startsWith('text/event-stream')) {
          throw new Error(`event stream answered ${response.status}`);
        }
        mode.textContent = 'Live updates.';
      },
      onmessage(event) {
        if (event.event === 'status') handle(JSON.parse(event.data));
        else if (event.event === 'gone') notInQueue();
        else if (event.event === 'error') throw new Error('event stream error');
      },
      onclose() {
        throw new Error('event stream closed');
      },
      onerror(err) {
        throw err; // no retries of its own: polling takes over
      },
    }).catch((err) => {
      if (controller.signal.aborted || stream !== controller) return;
      stream = null;
      if (err instanceof AuthRequired) requireSignIn();
      else if (waiting()) poll();
    });
  }

  /** Poll the status (the heartbeat) with backoff until admitted, or until the stream is back. */
  async function poll() {
    if (polling) return;
    polling = true;
    mode.textContent = 'Live connection lost: checking for updates every few seconds.';
    let delay = POLL_MIN_MS;
    const started = Date.now();
    try {
      while (!signal.aborted && waiting()) {
        await sleep(delay * (0.8 + Math.random() * 0.4), signal);
        try {
          const status = await api(`/api/queue/${sessionId}`, { auth: true, retry: false, signal });
          delay = handle(status) ? POLL_MIN_MS : Math.min(delay * 1.5, POLL_MAX_MS);
          mode.textContent = 'Live connection lost: checking for updates every few seconds.';
        } catch (err) {
          if (signal.aborted) return;
          if (err instanceof AuthRequired) return requireSignIn();
          if (err instanceof ApiError && err.status === 404) return notInQueue();
          delay = Math.min(delay * 2, POLL_ERROR_MAX_MS);
          mode.textContent = `Connection trouble: trying again in ${Math.ceil(delay / 1000)} s.`;
        }
        if (Date.now() - started > STREAM_RETRY_MS && waiting()) break;
      }
    } catch {
      return; // the page went away
    } finally {
      polling = false;
    }
    if (waiting()) follow();
  }

  // --- the seat map, the hold and the confirmation ---------------------------------------

  const summary = h('p', { id: 'selection' });
  const hint = h('p', { class: 'hint', 'aria-live': 'polite' });
  const holdButton = h('button', { type: 'button', disabled: true }, 'Hold seats');
  const limit = seatLimit();

  function showSelection(ids) {
    if (!map) return;
    summary.textContent = ids.length
      ? `${ids.length} of ${limit} seats selected: ${map.labels(ids).join(', ')} · `
        + `total ${formatPrice(map.price(ids))}`
      : `Select up to ${limit} seats.`;
    holdButton.disabled = ids.length === 0 || holdPanel !== null;
  }

  async function seatList(retry = true) {
    const data = await api(`/api/ticketing/sessions/${sessionId}/seats`,
      { auth: true, admission, signal, retry });
    return data.seats;
  }

  let refreshing = false;
  async function refresh() {
    if (!map || refreshing) return;
    refreshing = true;
    try {
      map.update(await seatList(false));
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) checkQueue().catch(() => {});
    } finally {
      refreshing = false;
    }
  }

  async function checkQueue() {
    try {
      handle(await api(`/api/queue/${sessionId}`, { auth: true, signal }));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) notInQueue();
      else throw err;
    }
  }

  async function openSeatMap() {
    if (map || opening) return;
    opening = true;
    let seats;
    try {
      seats = await seatList();
    } finally {
      opening = false;
    }
    if (signal.aborted || !admission || map) return;
    map = createSeatMap({
      seats, limit, onChange: showSelection, announce: (text) => { hint.textContent = text; },
    });
    seatsArea.replaceChildren(h('section', { class: 'card', 'aria-labelledby': 'seats-title' },
      h('h2', { id: 'seats-title' }, 'Pick your seats'),
      h('p', { class: 'muted' }, 'Use Tab to reach the seats and the arrow keys to move between them.'),
      map.el, summary, hint, h('div', { class: 'actions' }, holdButton)));
    showSelection([]);
    const saved = savedHold(sessionId);
    if (saved && saved.user_id === auth().user_id) showHold(saved);
    timers.push(every(SEAT_REFRESH_MS, signal, refresh));
  }

  function closeSeatMap() {
    timers.forEach(clearInterval);
    timers = [];
    map = null;
    holdPanel = null;
    admission = null;
    seatsArea.replaceChildren();
  }

  holdButton.addEventListener('click', guard(async () => {
    const ids = map.selected();
    if (!ids.length) return;
    holdButton.disabled = true;
    hint.textContent = '';
    map.clearConflicts();
    try {
      const hold = await api(`/api/ticketing/sessions/${sessionId}/holds`, {
        method: 'POST', auth: true, admission, body: { seat_ids: ids }, signal,
      });
      const saved = {
        ...hold,
        labels: map.labels(hold.seat_ids),
        total: map.price(hold.seat_ids),
        key: newKey(), // one Idempotency-Key per hold: a retry can never book twice
        user_id: auth().user_id,
      };
      saveHold(sessionId, saved);
      map.clearSelection();
      showHold(saved);
      refresh();
    } catch (err) {
      const taken = err instanceof ApiError && err.problem.conflicting_seat_ids;
      if (err instanceof ApiError && err.status === 409 && Array.isArray(taken)) {
        map.markConflicts(taken);
        const labels = map.labels(taken).join(', ');
        showProblem(`${labels} ${taken.length === 1 ? 'was' : 'were'} just taken by someone else. `
          + 'Your other seats are still selected.');
        refresh();
        return;
      }
      throw err;
    } finally {
      showSelection(map?.selected?.() || []);
    }
  }));

  function showHold(hold) {
    const timer = h('p', { role: 'timer', class: 'timer', 'aria-label': 'Time left on your hold' });
    const confirmButton = h('button', { type: 'button' }, 'Confirm reservation');
    const releaseButton = h('button', { type: 'button', class: 'secondary' }, 'Release seats');
    const expiresAt = Date.parse(hold.expires_at);
    const panel = h('section', { class: 'card hold', 'aria-labelledby': 'hold-title' },
      h('h2', { id: 'hold-title' }, 'Your seats are held'),
      h('p', {}, `Seats ${hold.labels.join(', ')} · total ${formatPrice(hold.total)}`),
      timer,
      h('div', { class: 'actions' }, confirmButton, releaseButton));
    holdPanel = panel;
    seatsArea.append(panel);
    showSelection(map.selected());

    const end = (message) => {
      dropHold(sessionId);
      panel.remove();
      if (holdPanel === panel) holdPanel = null;
      clearInterval(ticker);
      showSelection(map?.selected?.() || []);
      if (message) showProblem(message);
      refresh();
    };
    const tick = () => {
      const left = (expiresAt - Date.now()) / 1000;
      timer.textContent = `Held for ${formatClock(left)} more`;
      if (left <= 0) end('Your hold expired and the seats went back on sale. Pick again.');
    };
    const ticker = every(250, signal, tick);
    timers.push(ticker);
    tick();

    confirmButton.addEventListener('click', guard(async () => {
      confirmButton.disabled = true;
      try {
        // The same key for every attempt of this hold (retries after a network error too).
        const reservation = await api('/api/ticketing/reservations', {
          method: 'POST', auth: true, admission, body: { hold_id: hold.hold_id },
          idempotencyKey: hold.key, signal,
        });
        clearInterval(ticker);
        saveReservationInfo(reservation.reservation_id, {
          labels: hold.labels, title: perf.title, starts_at: session.starts_at, session_id: sessionId,
        });
        dropHold(sessionId);
        navigate(`/reservations/${reservation.reservation_id}`);
      } catch (err) {
        if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
          end(problemText(err));
          return;
        }
        confirmButton.disabled = false;
        throw err;
      }
    }));
    releaseButton.addEventListener('click', guard(async () => {
      releaseButton.disabled = true;
      try {
        await api(`/api/ticketing/holds/${hold.hold_id}`, { method: 'DELETE', auth: true, signal });
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) {
          releaseButton.disabled = false;
          throw err;
        }
      }
      end('');
    }));
  }

  // --- start: resume whatever this user has going in this session -----------------------

  try {
    handle(await api(`/api/queue/${sessionId}`, { auth: true, signal }));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
    notInQueue();
    live.textContent = '';
  }
}
