// Drawing helpers: colour scales, the attention canvases, heatmap tables. No API calls here.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {},
    text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Visible form of a token: spaces and newlines shown, as CircuitsVis does.
export function showTok(s: string): string {
  return s.replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5');
}

// White -> blue for a weight in [0,1].
export function blue(w: number): string {
  const t = Math.max(0, Math.min(1, w));
  const r = Math.round(255 - 225 * t), g = Math.round(255 - 150 * t), b = Math.round(255 - 40 * t);
  return `rgb(${r},${g},${b})`;
}

// Diverging red (negative) / white / blue (positive) for v in [-1,1].
export function diverging(v: number | null): string {
  if (v === null || !isFinite(v)) return '#ddd';
  const t = Math.max(-1, Math.min(1, v));
  if (t >= 0) return blue(t);
  const a = -t;
  return `rgb(${Math.round(255 - 30 * a)},${Math.round(255 - 200 * a)},${Math.round(255 - 200 * a)})`;
}

// Lower-triangular pattern rows[q][k] (k <= q) as a T×T matrix lookup.
export function patternAt(rows: number[][], q: number, k: number): number {
  return k <= q ? rows[q][k] ?? 0 : 0;
}

// labels: token strings drawn left of the rows (queries) and above the columns (keys), margin px wide.
export function drawPattern(canvas: HTMLCanvasElement, rows: number[][], size: number, highlightRow = -1,
    labels: string[] = [], margin = 0): void {
  const T = rows.length;
  const cell = size / Math.max(T, 1);
  canvas.width = size + margin; canvas.height = size + margin;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, size + margin, size + margin);
  if (margin > 0 && labels.length === T) {
    ctx.fillStyle = '#333';
    ctx.font = `${Math.max(8, Math.min(12, cell - 2))}px monospace`;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    labels.forEach((l, i) => ctx.fillText(showTok(l).slice(0, 10), margin - 4, margin + (i + 0.5) * cell));
    labels.forEach((l, i) => {
      ctx.save();
      ctx.translate(margin + (i + 0.5) * cell, margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = 'left';
      ctx.fillText(showTok(l).slice(0, 10), 0, 0);
      ctx.restore();
    });
  }
  ctx.translate(margin, margin);
  for (let q = 0; q < T; q++) {
    for (let k = 0; k <= q; k++) {
      ctx.fillStyle = blue(rows[q][k]);
      ctx.fillRect(k * cell, q * cell, Math.ceil(cell), Math.ceil(cell));
    }
  }
  if (highlightRow >= 0 && highlightRow < T) {
    ctx.strokeStyle = '#e36209';
    ctx.lineWidth = 2;
    ctx.strokeRect(1, highlightRow * cell, size - 2, cell);
  }
}

// A heatmap as an HTML table: rows × cols of values coloured by `color`, text shown in cells.
export function heatTable(rowLabels: string[], colLabels: string[], values: (number | null)[][],
    color: (v: number | null) => string, fmt: (v: number | null) => string, testid = ''): HTMLTableElement {
  const table = el('table', { class: 'heat' });
  if (testid) table.setAttribute('data-testid', testid);
  const head = el('tr');
  head.appendChild(el('th'));
  for (const c of colLabels) {
    const th = el('th', { class: 'col', title: showTok(c) });
    th.appendChild(el('div', {}, showTok(c.length > 14 ? c.slice(0, 13) + '…' : c)));
    head.appendChild(th);
  }
  table.appendChild(head);
  values.forEach((row, r) => {
    const tr = el('tr');
    tr.appendChild(el('th', {}, rowLabels[r] ?? String(r)));
    row.forEach((v, c) => {
      const td = el('td', { title: `${rowLabels[r]} · ${showTok(colLabels[c] ?? '')}: ${fmt(v)}` }, fmt(v));
      td.style.background = color(v);
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  return table;
}
