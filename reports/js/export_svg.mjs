// Node side of the figure report: compiles each Vega-Lite spec with vega-lite and renders it
// to a standalone SVG with vega's headless View (renderer "none", toSVG). Bundled by esbuild
// into one file so it runs without node_modules.
//   node report_export_svg.cjs SPECS.json OUT_DIR      (SPECS.json: {"id": spec, ...})
// Not a server and not a PNG exporter.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

async function main() {
  const [specsPath, outDir] = process.argv.slice(2);
  if (!specsPath || !outDir) {
    console.error('usage: report_export_svg SPECS.json OUT_DIR');
    process.exit(2);
  }
  const specs = JSON.parse(readFileSync(specsPath, 'utf8'));
  let n = 0;
  for (const [id, spec] of Object.entries(specs)) {
    const compiled = vl.compile(spec).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    const svg = await view.toSVG();
    view.finalize();
    const file = join(outDir, id + '.svg');
    writeFileSync(file + '.tmp', svg);
    renameSync(file + '.tmp', file);
    n++;
  }
  console.log(JSON.stringify({ svgs: n }));
}

main().catch((err) => {
  console.error('report_export_svg: ' + (err && err.message ? err.message : err));
  process.exit(1);
});
