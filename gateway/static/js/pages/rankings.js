// Rankings: a session's live leaderboard and its stats.
import { api } from '../api.js';
import { every, formatDate, formatDuration, h } from '../dom.js';

const REFRESH_MS = 5000;

export async function rankingsPage({ main, params, signal }) {
  const sessionId = Number(params[0]);
  const session = await api(`/api/sessions/${sessionId}`, { signal });
  const perf = await api(`/api/performances/${session.performance_id}`, { signal });
  document.title = `Rankings · ${perf.title} · Boxoffice`;
  const stats = h('dl', { class: 'card facts stats' });
  const body = h('tbody');
  main.append(
    h('h1', {}, 'Rankings'),
    h('p', {}, `${perf.title} · ${formatDate(session.starts_at)} · `,
      h('a', { href: `/sessions/${sessionId}` }, 'Book this session')),
    stats,
    h('table', { class: 'rankings' },
      h('caption', {}, 'Fastest bookings'),
      h('thead', {}, h('tr', {},
        ['Rank', 'Nickname', 'Time', 'Seats'].map((c) => h('th', { scope: 'col' }, c)))),
      body));

  async function load() {
    const [rankings, s] = await Promise.all([
      api(`/api/sessions/${sessionId}/rankings?limit=100`, { signal }),
      api(`/api/stats/sessions/${sessionId}`, { signal }),
    ]);
    stats.replaceChildren(
      h('dt', {}, 'Seats sold'), h('dd', {}, `${s.sold_count} of ${s.seat_count}`),
      h('dt', {}, 'Available'), h('dd', {}, String(s.available_count)),
      h('dt', {}, 'Reservations'), h('dd', {}, String(s.reservation_count)),
      h('dt', {}, 'Median time'), h('dd', {}, formatDuration(s.median_completion_ms)));
    body.replaceChildren(...(rankings.items.length
      ? rankings.items.map((r) => h('tr', {},
        h('td', {}, String(r.rank)), h('td', {}, r.nickname),
        h('td', {}, formatDuration(r.completion_ms)), h('td', {}, String(r.seat_count))))
      : [h('tr', {}, h('td', { colspan: 4 }, 'No reservations yet.'))]));
  }
  await load();
  every(REFRESH_MS, signal, () => load().catch(() => {}));
}
