// Performance: its venue and sessions, each with a live countdown to booking_opens_at.
import { api } from '../api.js';
import { every, formatClock, formatDate, h } from '../dom.js';

export async function performancePage({ main, params, signal }) {
  const perf = await api(`/api/performances/${params[0]}`, { signal });
  document.title = `${perf.title} · Boxoffice`;
  const { venue } = perf;
  const countdowns = [];
  const sessions = perf.sessions.map((s) => {
    const countdown = h('span', { class: 'countdown' });
    countdowns.push([countdown, Date.parse(s.booking_opens_at)]);
    return h('li', { class: 'card session' },
      h('h3', {}, formatDate(s.starts_at)),
      h('p', {}, `Booking opens ${formatDate(s.booking_opens_at)} · `, countdown),
      h('p', { class: 'muted' }, `${s.seat_count - s.sold_count} of ${s.seat_count} seats left`),
      h('a', { class: 'button', href: `/sessions/${s.id}` }, `Book ${formatDate(s.starts_at)}`));
  });
  const tick = () => {
    for (const [el, opensAt] of countdowns) {
      const left = (opensAt - Date.now()) / 1000;
      el.textContent = left > 0 ? `opens in ${formatClock(left)}` : 'open now';
    }
  };
  tick();
  every(1000, signal, tick);
  main.append(
    h('h1', {}, perf.title),
    h('p', {}, perf.description),
    h('section', { class: 'card venue', 'aria-labelledby': 'venue-title' },
      h('h2', { id: 'venue-title' }, venue.name),
      h('p', {}, venue.address),
      h('p', { class: 'muted' }, `${venue.seat_count} seats`)),
    h('h2', {}, 'Sessions'),
    sessions.length ? h('ul', { class: 'sessions' }, sessions) : h('p', {}, 'No sessions yet.'));
}
