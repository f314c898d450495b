// Browser runtime of the circuitlab figure report: vega + vega-lite + vega-embed from npm,
// bundled by esbuild into one IIFE that the report inlines. It renders every
// <div class="figure" data-spec="ID"> from the inline JSON block #circuitlab-specs, and the SAE
// feature browsers (feature_browser.js) from their inline blocks.
// Not a general viewer: no network, no data loading, no editor links.
import embed from 'vega-embed';
import { initFeatureBrowsers } from './feature_browser.js';

async function renderAll() {
  const block = document.getElementById('circuitlab-specs');
  if (!block) return;
  const specs = JSON.parse(block.textContent);
  const figures = document.querySelectorAll('div.figure[data-spec]');
  const jobs = [];
  for (const el of figures) {
    const spec = specs[el.dataset.spec];
    if (!spec) {
      el.textContent = 'missing figure spec ' + el.dataset.spec;
      el.dataset.state = 'error';
      continue;
    }
    jobs.push(
      embed(el, spec, { renderer: 'svg', actions: false, tooltip: true })
        .then(() => { el.dataset.state = 'rendered'; })
        .catch((err) => {
          el.dataset.state = 'error';
          el.textContent = 'figure failed to render: ' + err;
        })
    );
  }
  await Promise.all(jobs);
  document.body.dataset.figures = 'done';
}

function start() {
  initFeatureBrowsers();
  renderAll();
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
