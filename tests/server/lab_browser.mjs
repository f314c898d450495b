// Shared by the lab's browser tests (e2e_lab.mjs, e2e_features.mjs): Debian's chromium launched
// headless through playwright-core with the launch flags of the env notes, a page whose console
// errors are collected, and small helpers. Not a test itself.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Returns {page, consoleErrors, close}; close() ends the browser and removes its profile.
export async function openLab(artifacts) {
  fs.mkdirSync(artifacts, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuitlab-chromium-'));
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args,
    viewport: { width: 1400, height: 1000 },
  });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  const consoleErrors = [];
  page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', e => consoleErrors.push(String(e)));
  page.setDefaultTimeout(60000);
  const close = async () => {
    await ctx.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, consoleErrors, close };
}

export function check(cond, msg) { if (!cond) throw new Error(msg); }

// A full-page screenshot into the artifacts folder.
export function shotOf(artifacts) {
  return (page, name) => page.screenshot({ path: path.join(artifacts, name), fullPage: true });
}
