// The report's SAE feature browser: for every <div class="sae-browser" data-data="ID"> it reads
// the inline JSON block #ID (written by reports/sae_section.cpp) and draws a search box, the
// list of latents and one latent's page (density, activation histogram, top and quantile
// examples with each token shaded by its activation, promoted/suppressed tokens, neighbours).
// Not a data loader: everything is in the page; no request is made. Text goes in through
// textContent only, so token strings cannot inject markup.
//
// Data keys (compact): strs: token strings; latents[k]: i index, d density, n firing tokens,
// mx max, mn mean, l label, h {f first bin, c counts}, top/q examples {a peak act, p peak
// position, t string ids, v acts, q quantile}, ntop top examples in features.json, pk peak-token
// string ids of all top examples, pro/sup [string id, logit effect], nb [index, cosine].

const MAX_LIST = 300;  // list rows drawn at once; the count line says how many matched
const SVG_NS = 'http://www.w3.org/2000/svg';

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function num(v, digits = 4) {
  if (v === null || v === undefined) return '—';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(digits)));
}

// Token text as the model sees it; newlines and tabs made visible, spaces kept.
function visible(s) {
  return s.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}

// One example context: tokens shaded by activation relative to the latent's max; peak outlined.
function exampleRow(data, ex, max, tag) {
  const row = el('div', { class: 'sae-ex' }, el('span', { class: 'act', text: tag }));
  ex.t.forEach((sid, k) => {
    const v = ex.v[k];
    const s = data.strs[sid];
    const alpha = max > 0 && v > 0 ? Math.min(1, v / max) : 0;
    const span = el('span', { class: 'sae-tok' + (k === ex.p ? ' peak' : ''), text: visible(s), title: JSON.stringify(s) + ': ' + num(v) });
    span.dataset.act = String(v ?? 0);
    if (alpha > 0) span.style.background = `rgba(230, 126, 34, ${(0.12 + 0.88 * alpha).toFixed(3)})`;
    row.append(span);
  });
  return row;
}

// The latent's log10-activation histogram as a small SVG bar chart.
function histogram(data, lat) {
  const bins = data.bins;
  if (!bins || !lat.h || !lat.h.c.length) return el('p', { class: 'note', text: 'No activation histogram (never fired).' });
  const counts = lat.h.c, W = 420, H = 110, pad = 26;
  const maxc = Math.max(1, ...counts);
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('width', W);
  svg.setAttribute('height', H + pad);
  svg.setAttribute('class', 'sae-hist');
  const bw = (W - 8) / counts.length;
  counts.forEach((c, b) => {
    const r = document.createElementNS(SVG_NS, 'rect');
    const h = (H - 10) * c / maxc;
    r.setAttribute('x', 4 + b * bw);
    r.setAttribute('y', H - h);
    r.setAttribute('width', Math.max(1, bw - 1));
    r.setAttribute('height', h);
    r.setAttribute('fill', '#2e86c1');
    const t = document.createElementNS(SVG_NS, 'title');
    const lo = bins.log10_lo + (lat.h.f + b) * bins.width;
    t.textContent = `activation 10^${lo.toFixed(2)} to 10^${(lo + bins.width).toFixed(2)}: ${c} tokens`;
    r.append(t);
    svg.append(r);
  });
  const label = (x, anchor, text) => {
    const t = document.createElementNS(SVG_NS, 'text');
    t.setAttribute('x', x);
    t.setAttribute('y', H + 16);
    t.setAttribute('font-size', '11');
    t.setAttribute('text-anchor', anchor);
    t.textContent = text;
    svg.append(t);
  };
  const lo = bins.log10_lo + lat.h.f * bins.width, hi = lo + counts.length * bins.width;
  label(4, 'start', num(10 ** lo, 3));
  label(W / 2, 'middle', 'activation (log scale), firing tokens');
  label(W - 4, 'end', num(10 ** hi, 3));
  return svg;
}

function logitTable(data, title, rows) {
  const body = el('tbody');
  for (const [sid, v] of rows)
    body.append(el('tr', null, el('td', null, el('span', { class: 'tok', text: visible(data.strs[sid]) })), el('td', { class: 'num', text: num(v) })));
  return el('table', { class: 'data sae-logits' }, el('thead', null, el('tr', null, el('th', { text: title }), el('th', { text: 'logit effect' }))), body);
}

function renderPage(state, i) {
  const { data, page, list } = state;
  const lat = data.latents[i];
  state.current = i;
  page.dataset.index = String(i);
  page.replaceChildren();
  for (const li of list.querySelectorAll('li.sel')) li.classList.remove('sel');
  const li = list.querySelector(`li[data-index="${i}"]`);
  if (li) li.classList.add('sel');
  page.append(el('h3', { text: `Feature ${lat.i}: ${lat.l}` }));
  page.append(el('p', { class: 'stats', text:
    `fires on ${num(lat.d * 100, 3)}% of ${data.tokens.toLocaleString('en')} scanned tokens (${lat.n.toLocaleString('en')}); ` +
    `max activation ${num(lat.mx)}, mean when firing ${num(lat.mn)}` }));
  page.append(histogram(data, lat));
  page.append(el('h4', { text: `Top activations (${lat.top.length} of ${lat.ntop} shown)` }));
  if (!lat.top.length) page.append(el('p', { class: 'note', text: 'Never fired on the scanned tokens.' }));
  for (const ex of lat.top) page.append(exampleRow(data, ex, lat.mx, num(ex.a)));
  if (lat.q.length) {
    page.append(el('h4', { text: 'Lower activations (examples at quantiles of the firing windows)' }));
    for (const ex of lat.q) page.append(exampleRow(data, ex, lat.mx, 'q' + num(ex.q, 2) + ' ' + num(ex.a, 3)));
  }
  page.append(el('div', { class: 'sae-cols' },
    el('div', null, el('h4', { text: 'Promoted tokens' }), logitTable(data, 'token', lat.pro)),
    el('div', null, el('h4', { text: 'Suppressed tokens' }), logitTable(data, 'token', lat.sup))));
  if (data.logit_path) page.append(el('p', { class: 'note', text: 'Direct logit effect of the decoder row through ' + data.logit_path + '.' }));
  if (lat.nb.length) {
    const nb = el('div', { class: 'sae-nbs' }, el('h4', { text: 'Nearest features (decoder cosine)' }));
    for (const [j, c] of lat.nb) {
      const b = el('button', { class: 'sae-nb', text: `${j} ${data.latents[j] ? data.latents[j].l : ''} (${num(c, 3)})`, 'data-index': String(j) });
      b.addEventListener('click', () => renderPage(state, j));
      nb.append(b);
    }
    page.append(nb);
  }
}

function renderList(state) {
  const q = state.search.value.trim().toLowerCase();
  const hits = [];
  for (let i = 0; i < state.data.latents.length; i++)
    if (!q || state.text[i].includes(q) || String(state.data.latents[i].i) === q.replace(/^#/, '')) hits.push(i);
  state.count.textContent = `${hits.length} of ${state.data.latents.length} features` +
    (hits.length > MAX_LIST ? `, first ${MAX_LIST} listed` : '');
  state.list.replaceChildren();
  for (const i of hits.slice(0, MAX_LIST)) {
    const lat = state.data.latents[i];
    const li = el('li', { 'data-index': String(i), title: lat.l },
      el('b', { text: String(lat.i) }), ' ', lat.l, ' ', el('small', { text: num(lat.d * 100, 2) + '%' }));
    if (i === state.current) li.classList.add('sel');
    li.addEventListener('click', () => renderPage(state, i));
    state.list.append(li);
  }
  state.list.dataset.matches = String(hits.length);
}

function setup(root) {
  const block = document.getElementById(root.dataset.data);
  if (!block) return;
  const data = JSON.parse(block.textContent);
  // What the search box matches: the label, the peak tokens of the top examples, the promoted tokens.
  const text = data.latents.map((lat) => [lat.l, ...lat.pk.map((s) => data.strs[s]), ...lat.pro.map(([s]) => data.strs[s])]
    .join('\n').toLowerCase());
  const state = { data, text, current: -1, root, search: root.querySelector('.sae-search'), count: root.querySelector('.sae-count'),
                  list: root.querySelector('.sae-list'), page: root.querySelector('.sae-page') };
  state.search.addEventListener('input', () => renderList(state));
  renderList(state);
  const first = data.latents.findIndex((l) => l.n > 0);
  if (first >= 0) renderPage(state, first);
  else state.page.replaceChildren(el('p', { class: 'note', text: 'Every latent is dead on the scanned tokens.' }));
}

export function initFeatureBrowsers() {
  for (const root of document.querySelectorAll('div.sae-browser[data-data]')) {
    try {
      setup(root);
      root.dataset.state = 'ready';
    } catch (err) {
      root.dataset.state = 'error';
      root.textContent = 'feature browser failed: ' + err;
    }
  }
  document.body.dataset.features = 'ready';
}
