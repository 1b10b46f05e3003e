// Home: the performances, with search.
import { api } from '../api.js';
import { formatDate, h } from '../dom.js';

const PAGE = 20;

export async function homePage({ main, signal, navigate }) {
  document.title = 'Performances · Boxoffice';
  const query = new URLSearchParams(location.search).get('q') || '';
  const input = h('input', { id: 'q', type: 'search', name: 'q', value: query });
  const list = h('ul', { class: 'performances', 'aria-labelledby': 'list-title' });
  const count = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', hidden: true }, 'Show more');
  let offset = 0;

  async function load(reset) {
    if (reset) offset = 0;
    const params = new URLSearchParams({ offset, limit: PAGE });
    if (input.value.trim()) params.set('q', input.value.trim());
    const page = await api(`/api/performances?${params}`, { signal });
    if (reset) list.replaceChildren();
    for (const p of page.items) {
      list.append(h('li', { class: 'card' },
        h('h3', {}, h('a', { href: `/performances/${p.id}` }, p.title)),
        h('p', { class: 'muted' },
          p.next_session_at ? `Next: ${formatDate(p.next_session_at)}` : 'No upcoming sessions')));
    }
    offset += page.items.length;
    more.hidden = offset >= page.total;
    count.textContent = page.total === 1 ? '1 performance' : `${page.total} performances`;
  }

  let timer = 0;
  const form = h('form', { role: 'search', class: 'search' },
    h('label', { for: 'q' }, 'Search performances'), input,
    h('button', { type: 'submit' }, 'Search'));
  const search = () => {
    const url = input.value.trim() ? `/?q=${encodeURIComponent(input.value.trim())}` : '/';
    history.replaceState(null, '', url);
    load(true).catch(() => {});
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); search(); });
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 250); });
  more.addEventListener('click', () => load(false));
  main.append(h('h1', {}, 'Performances'), form,
    h('h2', { id: 'list-title', class: 'visually-hidden' }, 'Results'), count, list, more);
  void navigate;
  await load(true);
}
