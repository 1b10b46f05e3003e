// My tickets: the signed-in guest's reservations, each with a Cancel button.
import { api, AuthRequired, problemText } from '../api.js';
import { formatDate, formatDuration, h } from '../dom.js';
import { reservationInfo } from '../store.js';

export async function ticketsPage({ main, signal, requireSignIn }) {
  document.title = 'My tickets · Boxoffice';
  const data = await api('/api/ticketing/me/reservations', { auth: true, signal });
  main.append(h('h1', {}, 'My tickets'));
  if (!data.items.length) {
    main.append(h('p', {}, 'No reservations yet. ', h('a', { href: '/' }, 'Find a performance')));
    return;
  }
  // Titles of the sessions involved (public catalog reads, one per session).
  const titles = new Map();
  await Promise.all([...new Set(data.items.map((r) => r.session_id))].map(async (id) => {
    try {
      const session = await api(`/api/sessions/${id}`, { signal });
      const perf = await api(`/api/performances/${session.performance_id}`, { signal });
      titles.set(id, `${perf.title} · ${formatDate(session.starts_at)}`);
    } catch {
      titles.set(id, `Session ${id}`);
    }
  }));
  const list = h('ul', { class: 'tickets' });
  for (const r of data.items) {
    const titleId = `res-${r.reservation_id}`;
    const status = h('p', { class: 'status' }, r.status === 'cancelled' ? 'Cancelled' : 'Confirmed');
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const seats = reservationInfo(r.reservation_id)?.labels?.join(', ')
      || `${r.seat_ids.length} seat${r.seat_ids.length === 1 ? '' : 's'}`;
    const item = h('li', { class: 'card ticket' },
      h('h2', { id: titleId }, h('a', { href: `/reservations/${r.reservation_id}` }, titles.get(r.session_id))),
      h('p', {}, `Seats ${seats} · rank ${r.rank ?? '—'} · ${formatDuration(r.completion_ms)}`),
      status, error);
    if (r.status !== 'cancelled') {
      const cancel = h('button', { type: 'button', class: 'secondary', 'aria-describedby': titleId },
        'Cancel');
      cancel.addEventListener('click', async () => {
        cancel.disabled = true;
        error.hidden = true;
        try {
          await api(`/api/ticketing/reservations/${r.reservation_id}`, {
            method: 'DELETE', auth: true, signal,
          });
          status.textContent = 'Cancelled';
          cancel.remove();
        } catch (err) {
          if (err instanceof AuthRequired) {
            requireSignIn();
            return;
          }
          error.textContent = problemText(err);
          error.hidden = false;
          cancel.disabled = false;
        }
      });
      item.append(cancel);
    }
    list.append(item);
  }
  main.append(list);
}
