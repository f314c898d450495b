// The lab's page: model picker, prompt + token strip, predictions, attention grid with head
// toggles (zeroing re-runs at once), residual norms + logit lens, patching, steering, and the
// Features panel (features.ts).
// Talks only to the JSON API (api.ts); drawing helpers are in draw.ts.
import { api, ModelInfo, RunResponse, Pred, Token } from './api';
import { el, showTok, blue, diverging, drawPattern, heatTable } from './draw';
import { initFeatures, featuresSelectModel } from './features';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

interface State {
  models: ModelInfo[];
  model: ModelInfo | null;
  run: RunResponse | null;
  cleanTop: number[] | null;       // top-1 ids of the last run without ablation, same prompt
  cleanKey: string;                 // model + prompt of cleanTop
  cleanLoss: number | null;
  ablated: Set<string>;             // "l,h"
  selected: [number, number] | null;
  hoverTok: number;
  runSeq: number;
  filled: Map<string, string>;     // form field id -> the value the last model's examples put there
}
const st: State = { models: [], model: null, run: null, cleanTop: null, cleanKey: '', cleanLoss: null,
  ablated: new Set(), selected: null, hoverTok: -1, runSeq: 0, filled: new Map() };

function status(msg: string, error = false): void {
  const s = $('status');
  s.textContent = msg;
  s.className = error ? 'error' : 'muted';
}

async function loadModels(): Promise<void> {
  const r = await api.models();
  st.models = r.models;
  const pick = $<HTMLSelectElement>('model-picker');
  pick.innerHTML = '';
  for (const m of r.models) {
    const label = `${m.name} (${m.family}, ${m.n_layers}L×${m.n_heads}H${m.attn_only ? '' : ', MLP'})${m.name === r.default_model ? ' · default' : ''}`;
    pick.appendChild(el('option', { value: m.name }, label));
  }
  const hints: string[] = [];
  if (r.toy_hint) hints.push(r.toy_hint);
  if (r.gpt2_hint) hints.push(r.gpt2_hint);
  const h = $('hints');
  h.hidden = hints.length === 0;
  h.innerHTML = '';
  for (const line of hints) h.appendChild(el('div', {}, line));
  // The server names the most capable model (GPT-2 first, then MLPs, vocabulary, size).
  const first = r.default_model ?? r.models[0]?.name ?? '';
  pick.value = first;
  selectModel(first);
}

// Puts `value` in form field `id` unless the user changed what the previous model's example put there.
function fill(id: string, value: string | number): void {
  const input = $<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>(id);
  const prev = st.filled.get(id);
  if (prev === undefined || input.value === prev) {
    input.value = String(value);
    st.filled.set(id, input.value);
  }
}

// Every panel's default example for the selected model (server-chosen, in its vocabulary).
function fillExamples(m: ModelInfo): void {
  const ex = m.examples;
  fill('prompt', ex.prompt);
  const p = ex.patching;
  fill('patch-clean', p.clean);
  fill('patch-corrupt', p.corrupted);
  fill('patch-correct', p.answer_correct);
  fill('patch-incorrect', p.answer_incorrect);
  fill('patch-target', p.target);
  const s = ex.steering;
  fill('steer-prompt', s.prompt);
  fill('steer-add', s.prompt_add);
  fill('steer-sub', s.prompt_sub);
  fill('steer-layer', s.layer);
  fill('steer-coef', s.coefficient);
  fill('steer-n', s.max_new_tokens);
  fill('steer-temp', s.temperature);
  fill('steer-top-p', s.top_p);
  fill('steer-seed', s.seed);
}

function selectModel(name: string): void {
  st.model = st.models.find(m => m.name === name) ?? null;
  st.ablated.clear();
  st.selected = null;
  st.cleanTop = null;
  const m = st.model;
  $('model-info').textContent = m ? `d_model ${m.d_model} · d_head ${m.d_head} · n_ctx ${m.n_ctx} · vocab ${m.d_vocab}${m.compact_vocab ? ' (compact)' : ''}` : 'no model loaded';
  if (m) {
    const layer = $<HTMLInputElement>('steer-layer');
    layer.max = String(m.n_layers);
    fillExamples(m);
    if (Number(layer.value) > m.n_layers) layer.value = String(Math.min(1, m.n_layers));
  }
  featuresSelectModel(m);
}

function ablationList(): [number, number][] {
  return [...st.ablated].map(k => k.split(',').map(Number) as [number, number]);
}

async function runPrompt(): Promise<void> {
  if (!st.model) { status('no model loaded', true); return; }
  const text = $<HTMLTextAreaElement>('prompt').value;
  const seq = ++st.runSeq;
  const heads = ablationList();
  const key = `${st.model.name}\u0000${text}`;
  status('running…');
  try {
    const t0 = performance.now();
    // Ablated runs are compared with the clean run of the same prompt: fetch it when missing.
    if (heads.length > 0 && st.cleanKey !== key) {
      const clean = await api.run({ model: st.model.name, text, prepend_bos: bos(), attention: false, top_k: 1 });
      st.cleanTop = clean.predictions.map(p => p[0].id);
      st.cleanLoss = clean.loss;
      st.cleanKey = key;
    }
    const r = await api.run({ model: st.model.name, text, prepend_bos: bos(), top_k: 5,
      ablate: { heads, kind: $<HTMLSelectElement>('ablate-kind').value } });
    if (seq !== st.runSeq) return;  // a newer run started meanwhile
    if (heads.length === 0) {
      st.cleanTop = r.predictions.map(p => p[0].id);
      st.cleanLoss = r.loss;
      st.cleanKey = key;
    }
    st.run = r;
    render();
    status(`ran ${r.tokens.length} tokens in ${(performance.now() - t0).toFixed(0)} ms`);
  } catch (e) {
    if (seq === st.runSeq) status(String((e as Error).message), true);
  }
}

function bos(): boolean { return $<HTMLInputElement>('prepend-bos').checked; }

function render(): void {
  const r = st.run;
  if (!r) return;
  renderTokens(r);
  renderPredictions(r);
  renderAttentionGrid(r);
  renderDetail();
  renderResidual(r);
  const loss = $('loss');
  if (r.loss === null) loss.textContent = '';
  else if (r.ablated.length > 0 && st.cleanLoss !== null)
    loss.textContent = `loss ${r.loss.toFixed(3)} (clean ${st.cleanLoss.toFixed(3)}, Δ ${(r.loss - st.cleanLoss >= 0 ? '+' : '')}${(r.loss - st.cleanLoss).toFixed(3)})`;
  else loss.textContent = `loss ${r.loss.toFixed(3)}`;
}

function renderTokens(r: RunResponse): void {
  const strip = $('token-strip');
  strip.innerHTML = '';
  r.tokens.forEach((t, i) => {
    const span = el('span', { class: 'tok' + (t.oov ? ' oov' : ''), 'data-pos': String(i), title: `pos ${i} · ${tokTitle(t)}` }, showTok(t.str));
    // Hover repaints in place (never rebuilds the strip, so the hovered element stays put).
    span.addEventListener('mouseenter', () => { st.hoverTok = i; paintTokens(); renderDetail(); });
    span.addEventListener('mouseleave', () => { if (st.hoverTok === i) { st.hoverTok = -1; paintTokens(); renderDetail(); } });
    strip.appendChild(span);
  });
  paintTokens();
}

// CircuitsVis style: while token q is hovered, colour every key k by the selected head's attention q -> k.
function paintTokens(): void {
  const pat = selectedPattern();
  $('token-strip').querySelectorAll<HTMLElement>('.tok').forEach((span, i) => {
    const w = pat && st.hoverTok >= 0 && i <= st.hoverTok ? pat[st.hoverTok][i] ?? 0 : 0;
    span.style.background = pat && st.hoverTok >= 0 ? blue(w) : '';
    span.classList.toggle('selected', i === st.hoverTok);
  });
}

const OTHER_NOTE = "the model's \u27e8other\u27e9 id: some token outside its vocabulary";

// Tooltip of an input token: its ids, and for a token outside a compact vocabulary what the model reads.
function tokTitle(t: Token): string {
  return t.oov ? `not in this model's vocabulary: read as \u27e8other\u27e9 (GPT-2 id ${t.gpt2_id}, model id ${t.id})`
    : `id ${t.id}${t.gpt2_id !== t.id ? ` · GPT-2 id ${t.gpt2_id}` : ''}`;
}

// A predicted token: its string, or a marked placeholder for the compact "other" id.
function predEl(tag: 'div' | 'td' | 'span', p: Pred, cls: string, prefix = ''): HTMLElement {
  const other = p.gpt2_id === -1;
  const e = el(tag, { class: cls + (other ? ' other' : '') }, prefix + (other ? '\u27e8other\u27e9' : showTok(p.str)));
  if (other) e.title = OTHER_NOTE;
  return e;
}
const predStr = (p: Pred) => (p.gpt2_id === -1 ? '\u27e8other\u27e9' : showTok(p.str));

function renderPredictions(r: RunResponse): void {
  const box = $('predictions');
  box.innerHTML = '';
  r.tokens.forEach((t, i) => {
    const top: Pred = r.predictions[i][0];
    const changed = r.ablated.length > 0 && st.cleanTop !== null && st.cleanTop[i] !== top.id;
    const d = el('div', { class: 'pred' + (changed ? ' changed' : ''), 'data-testid': 'pred',
      title: r.predictions[i].map(p => `${predStr(p)} ${(100 * p.prob).toFixed(1)}%`).join('\n') });
    d.appendChild(el('div', { class: 'in' + (t.oov ? ' oov' : ''), title: tokTitle(t) }, showTok(t.str)));
    d.appendChild(predEl('div', top, 'out', '→'));
    d.appendChild(el('div', { class: 'muted' }, `${(100 * top.prob).toFixed(1)}%`));
    box.appendChild(d);
  });
}

function selectedPattern(): number[][] | null {
  const r = st.run;
  if (!r || !r.attention || !st.selected) return null;
  return r.attention[st.selected[0]]?.[st.selected[1]] ?? null;
}

function renderAttentionGrid(r: RunResponse): void {
  const grid = $('attn-grid');
  grid.innerHTML = '';
  if (!r.attention || r.attention.length === 0) {
    grid.appendChild(el('div', { class: 'muted' }, 'this model has no attention layers'));
    return;
  }
  const table = el('table');
  const H = r.attention[0].length;
  const head = el('tr');
  head.appendChild(el('th'));
  for (let h = 0; h < H; h++) head.appendChild(el('th', {}, `H${h}`));
  table.appendChild(head);
  const size = H > 8 ? 56 : 80;
  r.attention.forEach((layer, l) => {
    const tr = el('tr');
    tr.appendChild(el('th', {}, `L${l}`));
    layer.forEach((rows, h) => {
      const key = `${l},${h}`;
      const sel = st.selected !== null && st.selected[0] === l && st.selected[1] === h;
      const td = el('td', { class: 'head-cell' + (st.ablated.has(key) ? ' ablated' : '') + (sel ? ' selected' : ''),
        'data-layer': String(l), 'data-head': String(h) });
      const c = el('canvas', { 'data-testid': 'attn-head', title: `L${l}H${h}: click to enlarge` });
      drawPattern(c, rows, size);
      c.addEventListener('click', () => { st.selected = [l, h]; renderAttentionGrid(r); renderDetail(); paintTokens(); });
      const b = el('button', { class: 'head-toggle', 'data-testid': `toggle-L${l}H${h}` }, st.ablated.has(key) ? 'zeroed' : 'zero');
      b.addEventListener('click', () => {
        if (st.ablated.has(key)) st.ablated.delete(key); else st.ablated.add(key);
        void runPrompt();
      });
      td.appendChild(c);
      td.appendChild(b);
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  grid.appendChild(table);
}

function renderDetail(): void {
  const box = $('attn-detail');
  box.innerHTML = '';
  const r = st.run;
  const pat = selectedPattern();
  if (!r || !pat || !st.selected) {
    box.appendChild(el('div', { class: 'muted' }, 'click a head to enlarge its pattern'));
    return;
  }
  const [l, h] = st.selected;
  box.appendChild(el('h3', {}, `L${l}H${h}${st.ablated.has(`${l},${h}`) ? ' (zeroed: its output is removed, pattern shown as computed)' : ''}`));
  const T = pat.length;
  const size = Math.min(480, Math.max(160, T * 16));
  const c = el('canvas', { 'data-testid': 'attn-large' });
  drawPattern(c, pat, size, st.hoverTok, r.tokens.map(t => t.str), 80);
  c.addEventListener('mousemove', ev => {
    const rect = c.getBoundingClientRect();
    const q = Math.floor((ev.clientY - rect.top - 80) / (rect.height - 80) * T);
    const k = Math.floor((ev.clientX - rect.left - 80) / (rect.width - 80) * T);
    if (q >= 0 && q < T && k >= 0 && k < T)
      c.title = `${showTok(r.tokens[q].str)} → ${showTok(r.tokens[k].str)}: ${(k <= q ? pat[q][k] : 0).toFixed(3)}`;
  });
  box.appendChild(el('div', { class: 'muted small' }, 'rows: query (destination) · columns: key (source)'));
  box.appendChild(c);
  if (st.hoverTok >= 0 && st.hoverTok < T) {
    const q = st.hoverTok;
    const top = pat[q].map((w, k) => [w, k] as [number, number]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    box.appendChild(el('div', { class: 'small' },
      `${showTok(r.tokens[q].str)} attends to: ` + top.map(([w, k]) => `${showTok(r.tokens[k].str)}@${k} ${(100 * w).toFixed(0)}%`).join(', ')));
  }
}

function renderResidual(r: RunResponse): void {
  const labels = r.tokens.map((t, i) => `${i}:${t.str}`);
  const box = $('resid-heatmap');
  box.innerHTML = '';
  const max = Math.max(1e-9, ...r.resid_norms.flat());
  box.appendChild(heatTable(r.stage_labels, labels, r.resid_norms, v => blue((v ?? 0) / max),
    v => (v === null ? '' : v < 10 ? v.toFixed(1) : v.toFixed(0)), 'resid-table'));
  const lens = $('lens-table');
  lens.innerHTML = '';
  const table = el('table', { class: 'lens' });
  const head = el('tr');
  head.appendChild(el('th', {}, 'stage'));
  r.tokens.forEach(t => head.appendChild(el('th', { class: t.oov ? 'oov' : '', title: tokTitle(t) }, showTok(t.str))));
  table.appendChild(head);
  r.logit_lens.forEach((stage, s) => {
    const tr = el('tr');
    tr.appendChild(el('th', {}, r.stage_labels[s]));
    stage.forEach(preds => {
      const p = preds[0];
      const td = predEl('td', p, '');
      td.title = preds.map(q => `${predStr(q)} ${(100 * q.prob).toFixed(1)}%`).join('\n');
      td.style.background = blue(p.prob);
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  lens.appendChild(table);
}

async function runPatch(): Promise<void> {
  if (!st.model) return;
  const summary = $('patch-summary');
  summary.className = 'muted';
  summary.textContent = 'patching…';
  try {
    const r = await api.patch({
      model: st.model.name, prepend_bos: bos(),
      clean: $<HTMLInputElement>('patch-clean').value, corrupted: $<HTMLInputElement>('patch-corrupt').value,
      answer_correct: $<HTMLInputElement>('patch-correct').value, answer_incorrect: $<HTMLInputElement>('patch-incorrect').value,
      target: $<HTMLSelectElement>('patch-target').value,
    });
    summary.textContent = `logit diff ${showTok(r.answer_correct.str)} − ${showTok(r.answer_incorrect.str)}: clean ${r.clean_logit_diff.toFixed(3)}, corrupted ${r.corrupted_logit_diff.toFixed(3)}. Cells: fraction of the clean logit difference recovered by patching that activation from the clean run (1 = all, 0 = none).`;
    const box = $('patch-heatmap');
    box.innerHTML = '';
    box.appendChild(heatTable(r.rows, r.cols, r.recovery, diverging, v => (v === null ? '–' : v.toFixed(2)), 'patch-table'));
  } catch (e) {
    summary.className = 'error';
    summary.textContent = String((e as Error).message);
  }
}

async function runSteer(): Promise<void> {
  if (!st.model) return;
  const plain = $('steer-plain'), steered = $('steer-steered');
  plain.textContent = steered.textContent = 'generating…';
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  try {
    const prompt = $<HTMLInputElement>('steer-prompt').value;
    const r = await api.steer({
      model: st.model.name, prompt, prepend_bos: bos(),
      prompt_add: $<HTMLInputElement>('steer-add').value, prompt_sub: $<HTMLInputElement>('steer-sub').value,
      layer: Math.trunc(num('steer-layer')), coefficient: num('steer-coef'), max_new_tokens: Math.trunc(num('steer-n')),
      temperature: num('steer-temp'), top_p: num('steer-top-p'), seed: Math.trunc(num('steer-seed')),
    });
    for (const [box, g] of [[plain, r.unsteered], [steered, r.steered]] as const) {
      box.innerHTML = '';
      box.appendChild(el('span', { class: 'p' }, r.prompt));
      box.appendChild(el('span', { 'data-testid': 'generation' }, g.text));
    }
  } catch (e) {
    plain.innerHTML = '';
    steered.innerHTML = '';
    plain.appendChild(el('span', { class: 'error' }, String((e as Error).message)));
  }
}

function init(): void {
  $('run-btn').addEventListener('click', () => void runPrompt());
  $<HTMLTextAreaElement>('prompt').addEventListener('keydown', ev => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) void runPrompt();
  });
  $('clear-ablation').addEventListener('click', () => { st.ablated.clear(); void runPrompt(); });
  $('ablate-kind').addEventListener('change', () => { if (st.ablated.size > 0) void runPrompt(); });
  $<HTMLSelectElement>('model-picker').addEventListener('change', ev => {
    selectModel((ev.target as HTMLSelectElement).value);
    void runPrompt();
  });
  $('patch-btn').addEventListener('click', () => void runPatch());
  $('steer-btn').addEventListener('click', () => void runSteer());
  initFeatures({ model: () => st.model, prompt: () => $<HTMLTextAreaElement>('prompt').value, bos });
  loadModels().then(() => runPrompt()).catch(e => status(String((e as Error).message), true));
}

init();
