// The dashboard in a real browser: headless Chromium (Debian's package)
// driven by playwright-core loads the page and shows a mount job.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CimqClient, type Daemon } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOT = path.resolve(import.meta.dirname, '../test-results/dashboard.png');

let env: TestEnv;
let daemon: Daemon;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the dashboard test needs Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  }
  env = await createTestEnv('dashboard');
  daemon = await env.startDaemon({ dashboard: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await env?.dispose();
});

it('shows a mounted job of the node in headless Chromium', async () => {
  const client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
  try {
    await client.mount({ containerId: 'dash-1', cimPath: env.cim('dash.cim') });
  } finally {
    await client.close();
  }
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const base = `http://127.0.0.1:${daemon.httpPort}/dashboard`;
  await page.goto(`${base}/queue/${encodeURIComponent(`{${env.node}}`)}?status=completed`);
  await expect.poll(async () => page.content(), { timeout: 15_000 }).toContain('dash-1');
  const body = await page.textContent('body');
  expect(body).toContain(`cimq node ${env.node}`);
  expect(body).toContain('mount');
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  expect(existsSync(SCREENSHOT)).toBe(true);
});
