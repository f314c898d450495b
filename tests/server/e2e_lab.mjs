// Browser test of the lab: playwright-core drives Debian's chromium (headless) against a running
// `circuitlab serve`. Steps: the page opens on the most capable model (DEFAULT_MODEL), a word
// outside its vocabulary shows its real text marked as unseen, attention grid after a prompt,
// zeroing a head changes predictions, the default patching example draws a heatmap, the default
// steering example gives a steered text that differs from the plain one. Screenshots go to ARTIFACTS.
// usage: node e2e_lab.mjs URL ARTIFACTS_DIR N_LAYERS N_HEADS DEFAULT_MODEL OOV_WORD
import { check, openLab, shotOf } from './lab_browser.mjs';

const [url, artifacts, nLayers, nHeads, defaultModel, oovWord] = process.argv.slice(2);
const L = Number(nLayers), H = Number(nHeads);
const shot = shotOf(artifacts);
const { page, consoleErrors, close } = await openLab(artifacts);
try {
  // 1. Load the page, enter a prompt, see the attention grid.
  await page.goto(url);
  await page.waitForSelector('[data-testid=model-picker] option', { state: 'attached' });
  // The page opens on the most capable model and runs its own example prompt.
  await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.startsWith('ran'));
  const picked = await page.locator('[data-testid=model-picker]').inputValue();
  check(picked === defaultModel, `the lab opened on "${picked}", expected the most capable model "${defaultModel}"`);
  check(await page.locator('[data-testid=token-strip] .tok.oov').count() === 0, 'the default prompt is in the vocabulary');
  await page.fill('[data-testid=prompt]', `When${oovWord} and John went to the store, John gave a drink to`);
  await page.click('[data-testid=run]');
  await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.startsWith('ran'));
  // A word outside the compact vocabulary: its real text, marked, with the tooltip saying so.
  const oov = page.locator('[data-testid=token-strip] .tok.oov');
  check(await oov.count() >= 1, 'an out-of-vocabulary token is marked');
  const oovText = await oov.first().innerText();
  check(oovText === oovWord, `the unseen token shows its real text: "${oovText}", expected "${oovWord}"`);
  const oovTitle = await oov.first().getAttribute('title');
  check(oovTitle.includes("not in this model's vocabulary"), `the unseen token's tooltip: "${oovTitle}"`);
  check(!(await page.locator('[data-testid=token-strip]').innerText()).includes('other'), 'no input token reads "(other)"');
  const heads = await page.locator('[data-testid=attn-head]').count();
  check(heads === L * H, `attention grid has ${heads} heads, expected ${L * H}`);
  const nTok = await page.locator('[data-testid=token-strip] .tok').count();
  check(nTok > 5, `token strip shows ${nTok} tokens`);
  check(await page.locator('[data-testid=resid-table] td').count() === (L + 1) * nTok, 'residual heatmap is (L+1) x T');
  await shot(page, '01-attention-grid.png');

  // Click to enlarge a head, hover a token: the strip recolours by where it attends.
  await page.locator('[data-testid=attn-head]').nth(1).click();
  await page.waitForSelector('[data-testid=attn-large]');
  await page.locator('[data-testid=token-strip] .tok').nth(nTok - 1).hover();
  await page.waitForFunction(() => (document.querySelector('#attn-detail')?.textContent ?? '').includes('attends to'));
  await shot(page, '02-head-enlarged-hover.png');

  // 2. Zero a head: the predictions change (re-run happens on the toggle).
  const before = await page.locator('[data-testid=predictions]').innerText();
  await page.mouse.move(0, 0);
  await page.click('[data-testid=toggle-L0H0]');
  if (L > 1) await page.click('[data-testid=toggle-L1H0]');
  await page.waitForFunction((b) => {
    const t = document.querySelector('[data-testid=predictions]')?.innerText ?? '';
    const s = document.querySelector('[data-testid=status]')?.textContent ?? '';
    return s.startsWith('ran') && t !== b;
  }, before);
  const loss = await page.locator('[data-testid=loss]').innerText();
  check(loss.includes('clean') && loss.includes('Δ'), `loss line shows the delta: "${loss}"`);
  const changed = await page.locator('[data-testid=pred].changed').count();
  await shot(page, '03-head-zeroed.png');
  console.log(`zeroing changed ${changed} top-1 predictions; ${loss}`);

  // 3. The default patching example (filled in for this model) runs and draws a heatmap.
  await page.click('[data-testid=patch-run]');
  await page.waitForSelector('[data-testid=patch-table]');
  const summary = await page.locator('#patch-summary').innerText();
  check(!(await page.locator('#patch-summary.error').count()), `patching failed: ${summary}`);
  const cols = await page.locator('[data-testid=patch-table] th.col').count();
  const cells = await page.locator('[data-testid=patch-table] td').count();
  check(cols > 5 && cells === L * cols, `patching heatmap has ${cells} cells, expected ${L} x ${cols}`);
  console.log('patching:', summary.split('.')[0]);
  await page.locator('[data-testid=patch-table]').scrollIntoViewIfNeeded();
  await shot(page, '04-patching-heatmap.png');

  // 4. The default steering example (words, layer, coefficient chosen for this model): two
  // generations side by side, and the vector changes the text.
  await page.click('[data-testid=steer-run]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=generation]').length === 2);
  const gens = await page.locator('[data-testid=generation]').allInnerTexts();
  check(gens.every(g => g.length > 0), 'both generations are non-empty');
  check(gens[0] !== gens[1], `the steered generation equals the plain one: ${JSON.stringify(gens)}`);
  await page.locator('[data-testid=steer-steered]').scrollIntoViewIfNeeded();
  await shot(page, '05-steering.png');
  console.log('generations:', JSON.stringify(gens));
  check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
  console.log('e2e ok');
} catch (e) {
  await shot(page, 'failure.png').catch(() => {});
  console.error('e2e FAILED:', e.message);
  process.exitCode = 1;
} finally {
  await close();
}
