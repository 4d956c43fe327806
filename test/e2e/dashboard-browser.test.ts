/// <reference lib="dom" />
// The dashboard in a real browser: Debian's Chromium driven by playwright-core. Three agents run
// in this process on loopback (like `demo`), each with its control server. The master's page must
// list every member, draw a line per member in the chart and keep updating; a member's page shows
// the cluster as the master reported it; after the master stops, a survivor's page shows the new
// master and the election. Saves test-artifacts/dashboard.png (and docs/dashboard.png, which the
// README shows, with UPDATE_SCREENSHOTS=1: `npm run screenshots`).
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostClock } from '../../src/clock/host.ts';
import { buildRunConfig } from '../../src/daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../../src/daemon/daemon.ts';
import { ARTIFACTS_DIR } from '../../lab/netns/agents.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`SKIPPED dashboard browser test: ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`);
const DOCS_SCREENSHOT = fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url));

// The launch flags this machine needs (closed network: no background connections).
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface Member {
  id: string;
  daemon: RunningDaemon;
  running: boolean;
}

function url(member: Member): string {
  return `http://127.0.0.1:${member.daemon.httpPort}/`;
}

async function waitFor<T>(what: string, probe: () => T | null | Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function bodyNumber(page: Page, name: string): Promise<number> {
  return Number((await page.locator('body').getAttribute(`data-${name}`)) ?? '0');
}

/** Pixels of the chart canvas close to a colour: the member's line was drawn. */
async function pixelsOfColour(page: Page, hex: string): Promise<number> {
  return page.evaluate((colour) => {
    const canvas = document.querySelector('#chart canvas') as HTMLCanvasElement | null;
    if (!canvas) return 0;
    const context = canvas.getContext('2d');
    if (!context) return 0;
    const target = [1, 3, 5].map((at) => parseInt(colour.slice(at, at + 2), 16));
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let count = 0;
    for (let index = 0; index < data.length; index += 4) {
      if (data[index + 3]! > 200 && target.every((value, channel) => Math.abs(data[index + channel]! - value) < 40)) count += 1;
    }
    return count;
  }, hex);
}

describe.skipIf(!hasChromium)('dashboard in headless Chromium', () => {
  const members: Member[] = [];
  let browser: Browser;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    const hostClock = new HostClock();
    for (let index = 1; index <= 3; index += 1) {
      const id = `dash-${index}`;
      const config = buildRunConfig({
        'node-id': id,
        port: 0,
        bind: '127.0.0.1',
        mdns: false,
        http: '127.0.0.1:0',
        clock: 'virtual',
        'poll-interval': 0.5,
        'discovery-window': 0.5,
        'virtual-offset': String(0.2 * index),
        'virtual-drift': String(30 * index - 60),
      });
      members.push({ id, daemon: await startDaemon(config, pino({ level: 'silent' }), hostClock), running: true });
    }
    for (const member of members) for (const other of members) if (other !== member) member.daemon.agent.addPeer(other.daemon.listen);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(members.filter((member) => member.running).map((member) => member.daemon.stop()));
  });

  async function open(member: Member): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    page.on('pageerror', (error) => pageErrors.push(`${member.id}: ${error.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) pageErrors.push(`${member.id}: HTTP ${response.status()} for ${response.url()}`);
    });
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(`${member.id} console: ${message.text()}`);
    });
    await page.goto(url(member));
    return page;
  }

  function masterOf(): Member {
    const master = members.find((member) => member.running && member.daemon.agent.status().role === 'master');
    if (!master) throw new Error('no master');
    return master;
  }

  it('the master lists every member, draws a line per member and keeps updating', async () => {
    const master = await waitFor(
      'a master followed by all, all synchronized',
      () => {
        const statuses = members.map((member) => member.daemon.agent.status());
        const masters = statuses.filter((status) => status.role === 'master');
        return masters.length === 1 && statuses.every((status) => status.masterId === masters[0]!.nodeId && status.clock.synchronized) ? masterOf() : null;
      },
      20_000,
    );
    const page = await open(master);
    await page.waitForSelector('body[data-members="3"]', { timeout: 10_000 });
    const rows = page.locator('#members tbody tr');
    expect(await rows.count()).toBe(3);
    for (const member of members) await expect.poll(() => page.locator(`#members tr[data-node-id="${member.id}"]`).count()).toBe(1);
    expect(await page.locator(`#members tr[data-node-id="${master.id}"] td`).nth(1).textContent()).toBe('master');
    // Members' offsets and delays are numbers with units (not placeholders).
    for (const member of members.filter((candidate) => candidate !== master)) {
      const cells = page.locator(`#members tr[data-node-id="${member.id}"] td`);
      expect(await cells.nth(2).textContent()).toMatch(/^[+−]?[\d.]+ (ns|µs|ms|s)$/);
      expect(await cells.nth(3).textContent()).toMatch(/^[\d.]+ (ns|µs|ms)$/);
      expect(await cells.nth(4).textContent()).toMatch(/ago$/);
    }
    expect(await page.locator('#master').textContent()).toBe(master.id);
    expect(await page.locator('#term').textContent()).toBe(String(master.daemon.agent.status().term));
    // No --upstream: the cluster keeps its own time, and says so.
    expect(await page.locator('#reference').textContent()).toBe('cluster (own time)');
    // The chart: one series per member, several rounds, and each member's colour on the canvas.
    await expect.poll(() => bodyNumber(page, 'points'), { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    expect(await bodyNumber(page, 'series')).toBe(3);
    expect(await page.locator('#chart canvas').count()).toBe(1);
    for (const member of members) {
      const swatch = await page.locator(`#members tr[data-node-id="${member.id}"] .swatch`).evaluate((node) => getComputedStyle(node).backgroundColor);
      const [r, g, b] = (swatch.match(/\d+/g) ?? []).map(Number);
      const hex = `#${[r, g, b].map((value) => (value ?? 0).toString(16).padStart(2, '0')).join('')}`;
      await expect.poll(() => pixelsOfColour(page, hex), { timeout: 5000 }).toBeGreaterThan(20);
    }
    // It updates: more points and more refreshes a few rounds later, without reloading.
    const points = await bodyNumber(page, 'points');
    const updates = await bodyNumber(page, 'updates');
    await expect.poll(() => bodyNumber(page, 'points'), { timeout: 10_000 }).toBeGreaterThan(points + 1);
    expect(await bodyNumber(page, 'updates')).toBeGreaterThan(updates);
    expect(await page.locator('#connection').textContent()).toMatch(/^live/);
    await expect.poll(() => page.locator('#events li', { hasText: 'elected master' }).count()).toBeGreaterThan(0);
    // For the README's picture: let the chart show convergence to the steady state.
    if (process.env.UPDATE_SCREENSHOTS === '1') await expect.poll(() => bodyNumber(page, 'points'), { timeout: 40_000 }).toBeGreaterThanOrEqual(60);
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const screenshot = `${ARTIFACTS_DIR}/dashboard.png`;
    await page.screenshot({ path: screenshot, fullPage: true });
    if (process.env.UPDATE_SCREENSHOTS === '1') copyFileSync(screenshot, DOCS_SCREENSHOT);
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("a member's page shows the cluster as the master reported it, and follows a failover", async () => {
    const master = masterOf();
    const member = members.find((candidate) => candidate !== master)!;
    const page = await open(member);
    // The member pulls the master's view once someone reads its page.
    await page.waitForSelector('body[data-members="3"]', { timeout: 10_000 });
    expect(await page.locator('#master').textContent()).toBe(master.id);
    const self = page.locator(`#members tr[data-node-id="${member.id}"]`);
    expect(await self.locator('td').nth(0).textContent()).toContain('this agent');
    expect(await self.locator('td').nth(2).textContent()).toMatch(/^[+−]?[\d.]+ (ns|µs|ms|s)$/);
    await expect.poll(() => bodyNumber(page, 'points'), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#view-note').textContent()).toContain(`as ${master.id} last reported it`);

    // Stop the master without a goodbye: the page must show the new master and the election.
    master.running = false;
    await master.daemon.agent.stopAbruptly();
    await master.daemon.stop(); // its control server
    await expect.poll(async () => (await page.locator('#master').textContent()) !== master.id, { timeout: 20_000, interval: 250 }).toBe(true);
    const newMaster = masterOf();
    expect(await page.locator('#master').textContent()).toBe(newMaster.id);
    // The old master is still listed by the new one, as not answering.
    await expect.poll(() => page.locator(`#members tr[data-node-id="${master.id}"]`, { hasText: 'not answering' }).count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => page.locator('#events li', { hasText: `${newMaster.id} elected master` }).count(), { timeout: 5000 }).toBeGreaterThan(0);
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
