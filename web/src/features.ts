// The lab's Features panel: the SAE latents of the prompt per token, feature pages (density,
// activation histogram, top examples with highlighted tokens, logit effects, neighbours), feature
// search, and steer / clamp / ablate with a feature beside the unchanged generation.
// Talks only to the JSON API (api.ts); the rest of the page is main.ts.
import {
  api, ModelInfo, SaeInfo, FeatureTokensResponse, FeaturePageResponse, FeatureExample, LogitEffect,
} from './api';
import { el, showTok } from './draw';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

// What the panel needs from the rest of the page.
export interface FeatureHost {
  model(): ModelInfo | null;
  prompt(): string;
  bos(): boolean;
}

interface FeatState {
  host: FeatureHost | null;
  tokens: FeatureTokensResponse | null;
  selectedTok: number;
  page: FeaturePageResponse | null;
  loadedFor: string;  // model + SAE + prompt of `tokens`
}
const fs: FeatState = { host: null, tokens: null, selectedTok: -1, page: null, loadedFor: '' };

const orange = (w: number) => `rgba(240,140,0,${Math.max(0, Math.min(1, w)).toFixed(3)})`;
const fmt = (x: number | null | undefined, d = 3) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));

function sae(): SaeInfo | null {
  const m = fs.host?.model();
  const name = $<HTMLSelectElement>('feat-sae').value;
  return m?.saes.find(s => s.name === name) ?? null;
}

function notice(msg: string, error = false): void {
  const n = $('feat-notice');
  n.hidden = msg === '';
  n.textContent = msg;
  n.className = error ? 'hint error' : 'hint';
}

// Called by main.ts whenever the model changes: the SAE picker lists that model's SAEs.
export function featuresSelectModel(m: ModelInfo | null): void {
  const pick = $<HTMLSelectElement>('feat-sae');
  pick.innerHTML = '';
  for (const s of m?.saes ?? []) pick.appendChild(el('option', { value: s.name }, s.name));
  fs.tokens = null;
  fs.page = null;
  fs.loadedFor = '';
  $('feat-tokens').innerHTML = '';
  $('feat-latents').innerHTML = '';
  $('feat-results').innerHTML = '';
  $('feat-page').innerHTML = '<div class="muted">click a feature to open its page</div>';
  const p = m?.examples.steering.prompt;
  if (p) $<HTMLInputElement>('feat-prompt').value = p;
  showSaeInfo();
}

function showSaeInfo(): void {
  const s = sae();
  const m = fs.host?.model();
  $('feat-sae-info').textContent = s
    ? `${s.architecture}${s.k ? ` (k ${s.k})` : ''} · ${s.d_sae} latents · reads ${s.hook}`
    : '';
  if (!s) notice(m ? `Model "${m.name}" has no SAE loaded. Train one with \`circuitlab sae train\` and start the lab with --sae DIR.` : '');
  else if (!s.has_features)
    notice(`SAE "${s.name}" has no features.json: latents and steer/clamp/ablate work; feature pages and search need \`circuitlab sae features --sae ${s.dir} --model MODEL_DIR --data SHARDS_DIR --out ${s.dir}/features.json\`.`);
  else notice('');
}

// Per-token latents of the main prompt.
async function showLatents(): Promise<void> {
  const s = sae(), m = fs.host?.model();
  if (!s || !m || !fs.host) return;
  const text = fs.host.prompt();
  try {
    const r = await api.featureTokens({ model: m.name, sae: s.name, text, prepend_bos: fs.host.bos(), k: 8 });
    fs.tokens = r;
    fs.loadedFor = `${m.name}\u0000${s.name}\u0000${text}`;
    // Open on the last token: its features are what the next prediction reads.
    fs.selectedTok = r.tokens.length - 1;
    renderTokens();
    renderLatents();
  } catch (e) {
    notice(String((e as Error).message), true);
  }
}

function renderTokens(): void {
  const r = fs.tokens;
  const strip = $('feat-tokens');
  strip.innerHTML = '';
  if (!r) return;
  const top = r.latents.map(row => row[0]?.act ?? 0);
  const max = Math.max(1e-9, ...top);
  const paged = fs.page?.index;
  r.tokens.forEach((t, i) => {
    // Shade by the open feature's activation when it is among this token's top latents, else the strongest.
    const hit = paged === undefined ? undefined : r.latents[i].find(l => l.index === paged);
    const w = paged === undefined ? top[i] / max : hit ? hit.act / Math.max(1e-9, fs.page?.latent.max ?? hit.act) : 0;
    const span = el('span', {
      class: 'tok' + (i === fs.selectedTok ? ' selected' : '') + (t.oov ? ' oov' : ''), 'data-testid': 'feat-token',
      title: `pos ${i} · ${r.l0[i]} latents fire`,
    }, showTok(t.str));
    span.style.background = orange(w);
    span.addEventListener('click', () => { fs.selectedTok = i; renderTokens(); renderLatents(); });
    strip.appendChild(span);
  });
}

function latentRow(index: number, label: string | undefined, act: number, max: number, extra = ''): HTMLElement {
  const tr = el('tr', { 'data-testid': 'feat-latent', 'data-index': String(index) });
  tr.appendChild(el('td', { class: 'idx' }, `#${index}`));
  const bar = el('td');
  const b = el('span', { class: 'act-bar' });
  b.style.width = `${Math.round(60 * Math.min(1, act / Math.max(1e-9, max)))}px`;
  bar.appendChild(b);
  bar.appendChild(el('span', { class: 'small' }, fmt(act, 2)));
  tr.appendChild(bar);
  tr.appendChild(el('td', { class: 'lbl', title: label ?? '' }, label === undefined ? '(no features.json)' : showTok(label)));
  if (extra) tr.appendChild(el('td', { class: 'muted small' }, extra));
  tr.addEventListener('click', () => void openPage(index));
  return tr;
}

function renderLatents(): void {
  const r = fs.tokens;
  const box = $('feat-latents');
  box.innerHTML = '';
  if (!r || fs.selectedTok < 0) return;
  const i = fs.selectedTok;
  box.appendChild(el('div', { class: 'small' }, `token ${i} “${showTok(r.tokens[i].str)}”: ${r.l0[i]} latents fire; the strongest:`));
  const table = el('table', { class: 'latent-list' });
  const max = r.latents[i][0]?.act ?? 1;
  for (const l of r.latents[i]) table.appendChild(latentRow(l.index, l.label, l.act, max));
  if (r.latents[i].length === 0) box.appendChild(el('div', { class: 'muted' }, 'no latent fires here'));
  box.appendChild(table);
}

async function search(): Promise<void> {
  const s = sae(), m = fs.host?.model();
  const box = $('feat-results');
  if (!s || !m) return;
  box.innerHTML = '';
  try {
    const r = await api.featureSearch({ model: m.name, sae: s.name, query: $<HTMLInputElement>('feat-query').value, limit: 15 });
    if (r.results.length === 0) { box.appendChild(el('div', { class: 'muted' }, `no feature matches “${r.query}”`)); return; }
    const table = el('table', { class: 'latent-list' });
    const max = Math.max(...r.results.map(h => h.max));
    for (const h of r.results)
      table.appendChild(latentRow(h.index, h.label, h.max, max, `${(100 * h.density).toFixed(2)}% · ${h.matched.join(', ')}`));
    box.appendChild(table);
  } catch (e) {
    box.appendChild(el('div', { class: 'error' }, String((e as Error).message)));
  }
}

async function openPage(index: number): Promise<void> {
  const s = sae(), m = fs.host?.model();
  if (!s || !m) return;
  $<HTMLInputElement>('feat-index').value = String(index);
  const box = $('feat-page');
  try {
    const r = await api.featurePage({ model: m.name, sae: s.name, index });
    fs.page = r;
    renderPage(r);
    setDefaultAmount();
  } catch (e) {
    fs.page = null;
    box.innerHTML = '';
    box.appendChild(el('h3', {}, `feature #${index}`));
    box.appendChild(el('div', { class: 'error' }, String((e as Error).message)));
  }
  renderTokens();
}

// Log-scale activation histogram: one bar per bin of histogram_bins, counts as heights.
function histogram(r: FeaturePageResponse): SVGSVGElement {
  const NS = 'http://www.w3.org/2000/svg';
  const counts = r.latent.hist.counts, first = r.latent.hist.first, bins = r.histogram_bins;
  const W = 320, H = 70, n = Math.max(1, counts.length), max = Math.max(1, ...counts);
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('width', String(W));
  svg.setAttribute('height', String(H + 16));
  svg.setAttribute('class', 'hist-svg');
  svg.setAttribute('data-testid', 'feat-hist');
  counts.forEach((c, b) => {
    const rect = document.createElementNS(NS, 'rect');
    const h = (H * c) / max;
    rect.setAttribute('x', String((b * W) / n));
    rect.setAttribute('y', String(H - h));
    rect.setAttribute('width', String(Math.max(1, W / n - 1)));
    rect.setAttribute('height', String(h));
    rect.setAttribute('fill', '#f08c00');
    const lo = bins.log10_lo + (first + b) * bins.width;
    const title = document.createElementNS(NS, 'title');
    title.textContent = `${Math.pow(10, lo).toPrecision(3)} – ${Math.pow(10, lo + bins.width).toPrecision(3)}: ${c} tokens`;
    rect.appendChild(title);
    svg.appendChild(rect);
  });
  for (const [x, b, anchor] of [[0, first, 'start'], [W, first + counts.length, 'end']] as const) {
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', String(x));
    t.setAttribute('y', String(H + 12));
    t.setAttribute('font-size', '10');
    t.setAttribute('text-anchor', anchor);
    t.textContent = Math.pow(10, bins.log10_lo + b * bins.width).toPrecision(2);
    svg.appendChild(t);
  }
  return svg;
}

function exampleEl(ex: FeatureExample, max: number, label: string): HTMLElement {
  const d = el('div', { class: 'example', 'data-testid': 'feat-example' });
  d.appendChild(el('span', { class: 'ex-act' }, label || fmt(ex.act, 2)));
  ex.strs.forEach((s, i) => {
    const span = el('span', { class: i === ex.peak ? 'peak' : '', title: `activation ${fmt(ex.acts[i], 3)}` }, showTok(s));
    span.style.background = orange(ex.acts[i] / Math.max(1e-9, max));
    d.appendChild(span);
  });
  return d;
}

function logitList(title: string, xs: LogitEffect[], cls: string): HTMLElement {
  const d = el('div', { class: cls });
  d.appendChild(el('b', {}, title));
  for (const x of xs) d.appendChild(el('div', {}, `${showTok(x.str)}  ${x.value >= 0 ? '+' : ''}${x.value.toFixed(3)}`));
  return d;
}

function renderPage(r: FeaturePageResponse): void {
  const l = r.latent, box = $('feat-page');
  box.innerHTML = '';
  box.appendChild(el('h3', { 'data-testid': 'feat-page-title' }, `feature #${r.index}: ${showTok(l.label)}`));
  const stats = el('div', { class: 'feat-stats' });
  const stat = (k: string, v: string) => { const s = el('span'); s.appendChild(el('b', {}, k + ' ')); s.appendChild(document.createTextNode(v)); stats.appendChild(s); };
  stat('density', `${(100 * l.density).toPrecision(3)}% (${l.fired} of ${r.data.tokens} tokens)`);
  stat('max', fmt(l.max));
  stat('mean', fmt(l.mean));
  stat('‖W_dec‖', fmt(r.decoder_norm));
  stat('hook', r.hook);
  box.appendChild(stats);
  if (l.hist.counts.length > 0) {
    box.appendChild(el('div', { class: 'small muted' }, 'activation histogram (log scale, firing tokens)'));
    box.appendChild(histogram(r));
  }
  box.appendChild(el('h3', {}, `top examples (${l.top.length})`));
  l.top.forEach(ex => box.appendChild(exampleEl(ex, l.max, '')));
  if (l.quantiles.length > 0) {
    box.appendChild(el('h3', {}, 'lower quantiles'));
    l.quantiles.forEach(ex => box.appendChild(exampleEl(ex, l.max, `q${fmt(ex.quantile ?? 0, 2)}`)));
  }
  box.appendChild(el('h3', {}, `logit effects (${r.logit_path})`));
  const cols = el('div', { class: 'logit-cols', 'data-testid': 'feat-logits' });
  cols.appendChild(logitList('promoted', l.promoted, 'pos'));
  cols.appendChild(logitList('suppressed', l.suppressed, 'neg'));
  box.appendChild(cols);
  box.appendChild(el('h3', {}, 'neighbours (decoder cosine)'));
  const nb = el('div', { class: 'neighbors' });
  for (const n of r.neighbors) {
    const s = el('span', { title: `cosine ${fmt(n.cosine)}` }, `#${n.index} ${showTok(n.label)}`);
    s.addEventListener('click', () => void openPage(n.index));
    nb.appendChild(s);
  }
  box.appendChild(nb);
}

// The steer coefficient / clamp value that suits the open feature: twice its max activation.
function setDefaultAmount(): void {
  const kind = $<HTMLSelectElement>('feat-kind').value;
  $('feat-amount-label').textContent = kind === 'steer' ? 'coefficient' : kind === 'clamp' ? 'value' : '(none)';
  const amount = $<HTMLInputElement>('feat-amount');
  amount.disabled = kind === 'ablate';
  const max = fs.page?.latent.max ?? 0;
  amount.value = String(Math.max(kind === 'steer' ? 10 : 5, Math.round(2 * max)));
}

async function intervene(): Promise<void> {
  const s = sae(), m = fs.host?.model();
  if (!s || !m || !fs.host) return;
  const plain = $('feat-plain'), changed = $('feat-changed');
  plain.textContent = changed.textContent = 'generating…';
  $('feat-effect').textContent = '';
  const kind = $<HTMLSelectElement>('feat-kind').value;
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  const index = Math.trunc(num('feat-index'));
  const req: Record<string, unknown> = {
    model: m.name, prompt: $<HTMLInputElement>('feat-prompt').value, prepend_bos: fs.host.bos(),
    feature: { sae: s.name, index }, max_new_tokens: Math.trunc(num('feat-n')), temperature: num('feat-temp'),
    seed: Math.trunc(num('feat-seed')),
  };
  if (kind === 'steer') req.coefficient = num('feat-amount');
  if (kind === 'clamp') req.value = num('feat-amount');
  try {
    const r = await api.featureIntervene(kind, req);
    $('feat-changed-title').textContent = kind === 'steer' ? `steered with #${index} × ${r.coefficient}`
      : kind === 'clamp' ? `#${index} clamped at ${r.value}` : `#${index} ablated`;
    for (const [box, g] of [[plain, r.unsteered], [changed, r.steered]] as const) {
      box.innerHTML = '';
      box.appendChild(el('span', { class: 'p' }, r.prompt));
      box.appendChild(el('span', { 'data-testid': 'feat-generation' }, g.text));
    }
    const obs = r.observed.map(v => v ?? 0);
    $('feat-effect').textContent = `feature #${index}${r.feature.label ? ` (${r.feature.label})` : ''} on the prompt: max ${Math.max(0, ...obs).toFixed(2)}, fires at ${obs.filter(v => v > 0).length} of ${obs.length} tokens · prompt logits moved by up to ${r.max_logit_change.toFixed(3)}`;
  } catch (e) {
    plain.innerHTML = '';
    changed.innerHTML = '';
    plain.appendChild(el('span', { class: 'error' }, String((e as Error).message)));
  }
}

export function initFeatures(host: FeatureHost): void {
  fs.host = host;
  $('feat-show').addEventListener('click', () => void showLatents());
  $('feat-sae').addEventListener('change', () => { showSaeInfo(); void showLatents(); });
  $('feat-search-btn').addEventListener('click', () => void search());
  $<HTMLInputElement>('feat-query').addEventListener('keydown', ev => { if (ev.key === 'Enter') void search(); });
  $('feat-kind').addEventListener('change', () => setDefaultAmount());
  $('feat-run').addEventListener('click', () => void intervene());
  // Opening the panel shows the latents of the current prompt (again when the prompt changed).
  $('features-panel').addEventListener('toggle', () => {
    const m = host.model(), s = sae();
    const open = ($('features-panel') as HTMLDetailsElement).open;
    if (open && m && s && fs.loadedFor !== `${m.name}\u0000${s.name}\u0000${host.prompt()}`) void showLatents();
  });
}
