// Confirmation: the rank, the completion time and the seats of one reservation.
import { api } from '../api.js';
import { formatDate, formatDuration, h, ordinal } from '../dom.js';
import { reservationInfo } from '../store.js';

export async function reservationPage({ main, params, signal }) {
  const reservation = await api(`/api/ticketing/reservations/${params[0]}`, { auth: true, signal });
  const info = reservationInfo(reservation.reservation_id);
  const confirmed = reservation.status === 'confirmed';
  document.title = `${confirmed ? 'Reservation confirmed' : 'Reservation cancelled'} · Boxoffice`;
  const seats = info?.labels?.join(', ')
    || `${reservation.seat_ids.length} seat${reservation.seat_ids.length === 1 ? '' : 's'}`;
  main.append(
    h('h1', {}, confirmed ? 'Reservation confirmed' : 'Reservation cancelled'),
    info ? h('p', {}, `${info.title} · ${formatDate(info.starts_at)}`) : null,
    h('dl', { class: 'card facts' },
      h('dt', {}, 'Rank'),
      h('dd', {}, reservation.rank ? `${ordinal(reservation.rank)} to book this session` : '—'),
      h('dt', {}, 'Completion time'),
      h('dd', {}, `${formatDuration(reservation.completion_ms)} after booking opened`),
      h('dt', {}, 'Seats'), h('dd', {}, seats),
      h('dt', {}, 'Place in the queue'), h('dd', {}, String(reservation.queue_position ?? '—')),
      h('dt', {}, 'Reservation'), h('dd', {}, reservation.reservation_id)),
    h('p', {}, h('a', { href: `/sessions/${reservation.session_id}/rankings` }, 'Rankings')));
}
