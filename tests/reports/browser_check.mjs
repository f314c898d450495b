// Browser check of a circuitlab report: opens index.html in headless Chromium (playwright-core,
// /usr/bin/chromium, fresh profile) with every non-file request blocked and recorded, waits
// for the figure runtime, and checks that each figure container holds a rendered SVG/canvas
// with data marks. Every SAE feature browser is then used as a person would: search for the
// peak token of a latent (read from the page's own data), open that latent from the list, and
// check its page shows highlighted examples with the peak marked, then follow a neighbour.
// Saves a full-page screenshot, one per figure and one per feature browser.
//   node browser_check.mjs REPORT.html SCREENSHOT_DIR   → prints one JSON line; exit 1 on failure
// Not a visual diff: a person looks at the screenshots.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [htmlPath, shotDir] = process.argv.slice(2);
if (!htmlPath || !shotDir) {
  console.error('usage: node browser_check.mjs REPORT.html SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shotDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'circuitlab-chromium-'));
const result = { figures: 0, rendered: 0, failures: [], blocked: [], requests: [], console_errors: [], marks: {}, sae: [] };

// One feature browser: search, open, inspect, follow a neighbour. Returns what it saw.
async function checkFeatureBrowser(page, id, shotDir) {
  const root = page.locator(`#${id}`);
  const dataId = await root.getAttribute('data-data');
  // A latent to look for: the last one with top examples; the query is its first peak token.
  const target = await page.evaluate((dataId) => {
    const d = JSON.parse(document.getElementById(dataId).textContent);
    for (let k = d.latents.length - 1; k >= 0; k--) {
      const lat = d.latents[k];
      if (!lat.top.length) continue;
      const ex = lat.top[0];
      return { index: k, peak: d.strs[ex.t[ex.p]], label: lat.l, examples: lat.top.length + lat.q.length, neighbors: lat.nb.length };
    }
    return null;
  }, dataId);
  const out = { id, ok: false, target };
  if (!target) return out;
  out.query = target.peak.trim() || target.peak;
  await root.locator('.sae-search').fill(out.query);
  out.matches = Number(await root.locator('.sae-list').getAttribute('data-matches'));
  out.listed = await root.locator(`.sae-list li[data-index="${target.index}"]`).count();
  if (out.listed !== 1) return out;
  await root.locator(`.sae-list li[data-index="${target.index}"]`).click();
  const pageEl = root.locator('.sae-page');
  out.opened = Number(await pageEl.getAttribute('data-index'));
  out.title = await pageEl.locator('h3').textContent();
  out.tokens = await pageEl.locator('.sae-ex .sae-tok').count();
  out.peaks = await pageEl.locator('.sae-ex .sae-tok.peak').count();
  out.shaded = await pageEl.locator('.sae-ex .sae-tok[style*="background"]').count();
  out.peak_text = await pageEl.locator('.sae-ex .sae-tok.peak').first().textContent();
  out.peak_shaded = await pageEl.locator('.sae-ex .sae-tok.peak').first().evaluate((e) => getComputedStyle(e).backgroundColor);
  out.logit_rows = await pageEl.locator('table.sae-logits tbody tr').count();
  out.hist_bars = await pageEl.locator('svg.sae-hist rect').count();
  await root.screenshot({ path: join(shotDir, `${id}.png`) });
  await root.locator('xpath=ancestor::section[1]').screenshot({ path: join(shotDir, `section-${id}.png`) });
  if (target.neighbors > 0) {
    const nb = pageEl.locator('button.sae-nb').first();
    const j = Number(await nb.getAttribute('data-index'));
    await nb.click();
    out.neighbor = { index: j, opened: Number(await pageEl.getAttribute('data-index')) };
  }
  const visiblePeak = target.peak.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
  out.ok = out.matches >= 1 && out.opened === target.index && out.tokens > 0 && out.peaks === target.examples &&
           out.shaded > 0 && out.peak_text === visiblePeak && out.peak_shaded !== 'rgba(0, 0, 0, 0)' && out.logit_rows > 0 &&
           (!out.neighbor || out.neighbor.opened === out.neighbor.index);
  return out;
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  offline: true,
  viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    result.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('request', (req) => result.requests.push(req.url()));
  page.on('console', (msg) => { if (msg.type() === 'error') result.console_errors.push(msg.text()); });
  page.on('pageerror', (err) => result.console_errors.push(String(err)));
  const t0 = Date.now();
  await page.goto(pathToFileURL(resolve(htmlPath)).href, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.figures === 'done', null, { timeout: 120000 });
  result.render_ms = Date.now() - t0;
  const figs = await page.$$eval('div.figure[data-spec]', (els) => els.map((el) => {
    const root = el.querySelector('svg, canvas');
    // Data marks only (vega tags them role-mark); axes, legends and titles do not count.
    const marks = root && root.tagName.toLowerCase() === 'svg'
      ? root.querySelectorAll('g.role-mark > path, g.role-mark > rect, g.role-mark > line, g.role-mark > text, g.role-mark > circle, g.role-mark > g').length
      : (root ? 1 : 0);
    const box = root ? root.getBoundingClientRect() : { width: 0, height: 0 };
    return { id: el.dataset.spec, state: el.dataset.state || '', kind: root ? root.tagName.toLowerCase() : '',
             marks, width: box.width, height: box.height };
  }));
  result.figures = figs.length;
  for (const f of figs) {
    result.marks[f.id] = f.marks;
    if (f.state === 'rendered' && f.kind && f.marks > 0 && f.width > 10 && f.height > 10) result.rendered++;
    else result.failures.push(f);
  }
  result.tables = await page.$$eval('table.data', (ts) => ts.length);
  await page.screenshot({ path: join(shotDir, 'report-top.png') });
  await page.screenshot({ path: join(shotDir, 'report-full.png'), fullPage: true });
  for (const f of figs) {
    const el = await page.$(`figure#fig-${f.id}`);
    if (el) await el.screenshot({ path: join(shotDir, `fig-${f.id}.png`) });
  }
  const claims = await page.$('section#claims');
  if (claims) await claims.screenshot({ path: join(shotDir, 'claims.png') });
  const browsers = await page.$$eval('div.sae-browser', (els) => els.map((e) => e.id));
  if (browsers.length) await page.waitForFunction(() => document.body.dataset.features === 'ready', null, { timeout: 30000 });
  for (const id of browsers) result.sae.push(await checkFeatureBrowser(page, id, shotDir));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
const offFile = result.requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:') && !u.startsWith('blob:'));
result.non_file_requests = offFile;
const ok = result.figures > 0 && result.failures.length === 0 && offFile.length === 0 && result.blocked.length === 0 &&
           result.console_errors.length === 0 && result.sae.every((b) => b.ok);
console.log(JSON.stringify(result));
process.exit(ok ? 0 : 1);
