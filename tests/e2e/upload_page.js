#!/usr/bin/env node
// Drive imgfs' upload page (.links/upload/.../index.html) in Debian's
// headless Chromium, through playwright-core.
//
//   node upload_page.js PAGE.html SCREENSHOT.png [--no-js] IMAGE...
//
// Opens PAGE.html as a file:// page, chooses the images in its file input
// and uploads them (with JavaScript: the page's own XHR uploads, waiting
// until every file is done or refused; --no-js: the plain form, one image).
// Prints one JSON object: {"files": [{"name", "state", "status"}...],
// "summary", "folder", "limit", "expires"} and saves a full-page screenshot.
'use strict';

const path = require('path');
const fs = require('fs');
const os = require('os');
const { chromium } = require(path.join(__dirname, '..', 'node', 'node_modules',
                                       'playwright-core'));

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

async function withJs(page, images, timeoutMs) {
  await page.setInputFiles('#upload input[type=file]', images);
  await page.waitForFunction(
    (n) => {
      const items = document.querySelectorAll('#files li');
      return items.length === n && Array.from(items).every(
        (li) => li.dataset.state === 'done' || li.dataset.state === 'failed');
    }, images.length, { timeout: timeoutMs });
}

async function withoutJs(page, images, timeoutMs) {
  await page.setInputFiles('#upload input[type=file]', images[0]);
  const answer = page.waitForResponse(
    (r) => r.request().method() === 'POST', { timeout: timeoutMs });
  await page.click('#upload button[type=submit]');
  const r = await answer;
  return { status: r.status() };
}

async function main() {
  const args = process.argv.slice(2);
  const noJs = args.includes('--no-js');
  const [pagePath, shot, ...images] = args.filter((a) => a !== '--no-js');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'imgfs-chromium-'));
  const timeoutMs = Number(process.env.UPLOAD_PAGE_TIMEOUT_MS || 60000);
  // A fresh profile directory (--user-data-dir) per run.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    javaScriptEnabled: !noJs,
  });
  const consoleErrors = [];
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto('file://' + path.resolve(pagePath));
    let post = null;
    if (noJs)
      post = await withoutJs(page, images, timeoutMs);
    else
      await withJs(page, images, timeoutMs);
    await page.screenshot({ path: shot, fullPage: true });
    const result = await page.evaluate(() => ({
      files: Array.from(document.querySelectorAll('#files li')).map((li) => ({
        name: li.querySelector('.name').textContent,
        state: li.dataset.state,
        status: li.querySelector('.status').textContent,
      })),
      summary: document.getElementById('summary').textContent,
      folder: document.getElementById('folder').textContent,
      limit: document.getElementById('limit').textContent,
      expires: document.getElementById('expires').getAttribute('datetime'),
      dropVisible: !document.getElementById('drop').hidden,
    }));
    result.post = post;
    result.errors = consoleErrors;
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
