// Browser test of the lab's Features panel: playwright-core drives Debian's chromium (headless)
// against a running `circuitlab serve` whose default model has an SAE beside it with a
// features.json. Steps: open the Features panel (the prompt's latents appear), click a token
// and see its features, open a feature's page, search a feature by text and open it, steer with
// it and see two generations that differ. Screenshots go to ARTIFACTS.
// usage: node e2e_features.mjs URL ARTIFACTS_DIR QUERY EXPECTED_LABEL
import path from 'node:path';

import { check, openLab, shotOf } from './lab_browser.mjs';

const [url, artifacts, query, expectedLabel] = process.argv.slice(2);
const shot = shotOf(artifacts);
const shotPanel = (page, name) => page.locator('#features-section').screenshot({ path: path.join(artifacts, name) });
const { page, consoleErrors, close } = await openLab(artifacts);
try {
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.startsWith('ran'));
  // 1. Open the panel: the SAE of the default model is picked and the prompt's latents appear.
  await page.click('[data-testid=features-open]');
  await page.waitForSelector('[data-testid=feat-token]');
  const sae = await page.locator('[data-testid=feat-sae]').inputValue();
  check(sae !== '', 'an SAE is picked');
  const nTok = await page.locator('[data-testid=feat-token]').count();
  const nMain = await page.locator('[data-testid=token-strip] .tok').count();
  check(nTok === nMain, `the panel shows ${nTok} tokens, the prompt has ${nMain}`);
  check(await page.locator('[data-testid=feat-latents] [data-testid=feat-latent]').count() > 0, 'the last token has latents');

  // 2. Click a token: its features are listed.
  await page.locator('[data-testid=feat-token]').nth(2).click();
  await page.waitForFunction(() => (document.querySelector('[data-testid=feat-latents]')?.textContent ?? '').startsWith('token 2'));
  const rows = page.locator('[data-testid=feat-latents] [data-testid=feat-latent]');
  check(await rows.count() > 0, 'token 2 has latents');
  await shotPanel(page, '10-features-token.png');

  // 3. Click a feature: its page (density, histogram, examples, logit effects, neighbours).
  const idx = await rows.first().getAttribute('data-index');
  await rows.first().click();
  await page.waitForFunction((i) => (document.querySelector('[data-testid=feat-page-title]')?.textContent ?? '').startsWith(`feature #${i}`), idx);
  check(await page.locator('[data-testid=feat-hist] rect').count() > 0, 'the page draws the histogram');
  check(await page.locator('[data-testid=feat-page] [data-testid=feat-example]').count() > 0, 'the page shows examples');
  check((await page.locator('[data-testid=feat-logits]').innerText()).includes('promoted'), 'logit effects shown');
  check(await page.locator('[data-testid=feat-index]').inputValue() === idx, 'the intervention form takes the open feature');
  await shotPanel(page, '11-features-page.png');

  // 4. Search a feature by text and open the best match.
  await page.fill('[data-testid=feat-query]', query);
  await page.click('[data-testid=feat-search]');
  await page.waitForSelector('[data-testid=feat-results] [data-testid=feat-latent]');
  const first = page.locator('[data-testid=feat-results] [data-testid=feat-latent]').first();
  const firstText = await first.innerText();
  check(firstText.includes(expectedLabel), `the best match for "${query}" is "${firstText}", expected "${expectedLabel}"`);
  await first.click();
  await page.waitForFunction((l) => (document.querySelector('[data-testid=feat-page-title]')?.textContent ?? '').includes(l), expectedLabel);
  await shotPanel(page, '12-features-search.png');

  // 5. Steer with it: the unchanged generation beside the steered one, and they differ.
  await page.click('[data-testid=feat-run]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=feat-generation]').length === 2);
  const gens = await page.locator('[data-testid=feat-generation]').allInnerTexts();
  check(gens.every(g => g.length > 0), 'both generations are non-empty');
  check(gens[0] !== gens[1], `steering with the feature changed nothing: ${JSON.stringify(gens)}`);
  const effect = await page.locator('[data-testid=feat-effect]').innerText();
  check(effect.includes('prompt logits moved'), `effect line: "${effect}"`);
  await page.locator('[data-testid=feat-changed]').scrollIntoViewIfNeeded();
  await shotPanel(page, '13-features-steer.png');
  console.log('feature generations:', JSON.stringify(gens));

  // 6. Ablate it: same shape, two generations.
  await page.selectOption('[data-testid=feat-kind]', 'ablate');
  await page.click('[data-testid=feat-run]');
  await page.waitForFunction(() => (document.querySelector('#feat-changed-title')?.textContent ?? '').includes('ablated'));
  check(await page.locator('[data-testid=feat-generation]').count() === 2, 'ablation shows two generations');
  await shot(page, '14-features-full.png');
  check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
  console.log('e2e features ok');
} catch (e) {
  await shot(page, 'features-failure.png').catch(() => {});
  console.error('e2e FAILED:', e.message);
  process.exitCode = 1;
} finally {
  await close();
}
