// The seat map: seats by row, coloured by grade, one button per seat. Built once and then
// updated in place (a 1,000-seat venue stays smooth); one roving tab stop with arrow keys,
// so the whole map is one Tab away and every seat is reachable from the keyboard.
import { formatPrice, h } from './dom.js';

const rowOf = (label) => label.slice(0, label.lastIndexOf('-')) || label;
const numberOf = (label) => label.slice(label.lastIndexOf('-') + 1);

/**
 * seats: [{seat_id, label, grade, price, status}]; limit: seats one person may pick;
 * onChange(selectedIds) after each toggle; announce(text) for refusals.
 */
export function createSeatMap({ seats, limit, onChange, announce }) {
  performance.mark('seatmap-start');
  const grades = [...new Map(seats.map((s) => [s.grade, s.price])).entries()];
  const gradeIndex = new Map(grades.map(([grade], i) => [grade, i]));
  const buttons = new Map(); // seat_id → button
  const info = new Map(); // seat_id → seat
  const selected = new Set();
  const conflicts = new Set();
  const rows = new Map(); // row label → [button]
  let active = null; // the roving tab stop

  const legend = h('ul', { class: 'legend', 'aria-label': 'Grades and prices' },
    grades.map(([grade, price], i) => h('li', {},
      h('span', { class: `swatch g${i % 6}`, 'aria-hidden': 'true' }), `${grade} · ${formatPrice(price)}`)),
    h('li', {}, h('span', { class: 'swatch taken', 'aria-hidden': 'true' }), 'Taken'),
    h('li', {}, h('span', { class: 'swatch picked', 'aria-hidden': 'true' }), 'Your selection'));

  const grid = h('div', { class: 'seatmap', role: 'group', 'aria-label': 'Seats' });
  const fragment = document.createDocumentFragment();
  // Cloning one prepared button and setting properties (not attributes one by one) keeps
  // building 1,000 seats cheap (BENCHMARKS.md, "Web app").
  const model = h('button', { type: 'button', tabindex: -1 });
  let rowEl = null;
  for (const seat of seats) {
    const row = rowOf(seat.label);
    if (!rows.has(row)) {
      rows.set(row, []);
      rowEl = h('div', { class: 'row', role: 'group', 'aria-label': `Row ${row}` },
        h('span', { class: 'row-label', 'aria-hidden': 'true' }, row));
      fragment.append(rowEl);
    }
    const button = model.cloneNode(false);
    const taken = seat.status !== 'available';
    button.className = `seat g${gradeIndex.get(seat.grade) % 6}`;
    button.value = seat.seat_id;
    button.textContent = numberOf(seat.label);
    button.disabled = taken;
    button.ariaPressed = 'false';
    button.ariaLabel = `${seat.label}, ${seat.grade}, ${formatPrice(seat.price)}${taken ? `, ${seat.status}` : ''}`;
    buttons.set(seat.seat_id, button);
    info.set(seat.seat_id, seat);
    rows.get(row).push(button);
    rowEl.append(button);
  }
  grid.append(fragment);
  moveTabStop(firstEnabled());
  performance.measure('seatmap-build', 'seatmap-start'); // script time only

  function paint(id, status) {
    const seat = info.get(id);
    seat.status = status;
    const button = buttons.get(id);
    const taken = status !== 'available' || conflicts.has(id);
    if (taken && selected.delete(id)) onChange?.([...selected]);
    button.disabled = taken;
    button.classList.toggle('conflict', conflicts.has(id));
    button.setAttribute('aria-pressed', String(selected.has(id)));
    const state = conflicts.has(id) ? ', just taken' : taken ? `, ${status}` : '';
    button.setAttribute('aria-label',
      `${seat.label}, ${seat.grade}, ${formatPrice(seat.price)}${state}`);
  }

  function firstEnabled() {
    for (const button of buttons.values()) if (!button.disabled) return button;
    return null;
  }

  function moveTabStop(button, focus = false) {
    if (!button) return;
    if (active && active !== button) active.tabIndex = -1;
    active = button;
    button.tabIndex = 0;
    if (focus) button.focus();
  }

  function toggle(button) {
    const id = Number(button.value);
    if (button.disabled) return;
    if (selected.has(id)) {
      selected.delete(id);
    } else if (selected.size >= limit) {
      announce?.(`You can pick up to ${limit} seats.`);
      return;
    } else {
      selected.add(id);
    }
    button.setAttribute('aria-pressed', String(selected.has(id)));
    onChange?.([...selected]);
  }

  // Arrow keys move within a row (left/right) and between rows (up/down, nearest column).
  function neighbour(button, key) {
    const row = rows.get(rowOf(info.get(Number(button.value)).label));
    const index = row.indexOf(button);
    const rowList = [...rows.values()];
    const step = (list, from, dir) => {
      for (let i = from + dir; i >= 0 && i < list.length; i += dir) {
        if (!list[i].disabled) return list[i];
      }
      return null;
    };
    if (key === 'ArrowRight') return step(row, index, 1);
    if (key === 'ArrowLeft') return step(row, index, -1);
    if (key === 'Home') return step(row, -1, 1);
    if (key === 'End') return step(row, row.length, -1);
    const dir = key === 'ArrowDown' ? 1 : key === 'ArrowUp' ? -1 : 0;
    if (!dir) return null;
    for (let r = rowList.indexOf(row) + dir; r >= 0 && r < rowList.length; r += dir) {
      const other = rowList[r];
      const near = [...other.keys()].filter((i) => !other[i].disabled)
        .sort((a, b) => Math.abs(a - index) - Math.abs(b - index))[0];
      if (near !== undefined) return other[near];
    }
    return null;
  }

  grid.addEventListener('click', (event) => {
    const button = event.target.closest('button.seat');
    if (!button) return;
    moveTabStop(button);
    toggle(button);
  });
  grid.addEventListener('keydown', (event) => {
    const button = event.target.closest('button.seat');
    if (!button) return;
    const next = neighbour(button, event.key);
    if (next) {
      event.preventDefault();
      moveTabStop(next, true);
    }
  });

  const el = h('div', { class: 'seatmap-wrap' }, legend, grid);
  // Measured from the start of the build to the first frame that shows it (bench/web_app.py).
  requestAnimationFrame(() => setTimeout(() => performance.measure('seatmap-render', 'seatmap-start')));

  return {
    el,
    selected: () => [...selected],
    labels: (ids) => ids.map((id) => info.get(id)?.label ?? `#${id}`),
    price: (ids) => ids.reduce((sum, id) => sum + Number(info.get(id)?.price || 0), 0),
    /** Apply a fresh seat list (only changed seats are touched). */
    update(fresh) {
      for (const seat of fresh) {
        const known = info.get(seat.seat_id);
        if (!known) continue;
        // A seat taken from us (409) that is free again is an ordinary seat again.
        const freed = seat.status === 'available' && conflicts.delete(seat.seat_id);
        if (freed || known.status !== seat.status) paint(seat.seat_id, seat.status);
      }
      if (!active || active.disabled) moveTabStop(firstEnabled());
    },
    /** Mark seats someone else took (a 409): unselected, disabled, flagged. */
    markConflicts(ids) {
      for (const id of ids) {
        if (!info.has(id)) continue;
        conflicts.add(id);
        paint(id, 'held');
      }
      if (!active || active.disabled) moveTabStop(firstEnabled());
    },
    clearConflicts() {
      const ids = [...conflicts];
      conflicts.clear();
      for (const id of ids) paint(id, info.get(id).status);
    },
    clearSelection() {
      const ids = [...selected];
      selected.clear();
      for (const id of ids) paint(id, info.get(id).status);
      onChange?.([]);
    },
  };
}
