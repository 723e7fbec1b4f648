// End to end in a real browser: headless Chromium (driven by playwright-core) opens the
// demo single-page app served through the gateway, signs in on the hosted page, and
// calls two rows of the policy table through the gateway.
// usage: node spa-e2e.mjs APP_URL LOGIN PASSWORD
// Prints one JSON line: the status of each call and what the pages showed.
import { chromium } from 'playwright-core';

const [appUrl, login, password] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const out = {};
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  // Script errors only: Chromium also logs every non-2xx answer (the 403 we expect, the
  // favicon's 404) as "Failed to load resource".
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(appUrl);
  await page.click('#sign-in');
  // The hosted sign-in page of the identity provider.
  await page.waitForSelector('#username', { timeout: 15000 });
  out.signin_url = page.url();
  out.signin_title = await page.title();
  await page.fill('#username', login);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(appUrl), { timeout: 15000 }), page.click('button[type=submit]')]);
  await page.waitForSelector('#who', { state: 'visible', timeout: 15000 });
  out.signed_in_as = await page.textContent('#who');
  for (const row of ['list-products', 'delete-admin-users', 'update-product']) {
    await page.click(`#call-${row}`);
    await page.waitForSelector(`#result-${row}[data-status]`, { timeout: 15000 });
    out[row] = { status: Number(await page.getAttribute(`#result-${row}`, 'data-status')), text: await page.textContent(`#result-${row}`) };
  }
  out.error = await page.textContent('#error');
  out.console_errors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
