/**
 * Builds from the sidebar: Cancel during a build, build options (strategy, base) sent as the POST's JSON body,
 * and a failed build: said once (not as an alert and again as a log), with its one-line cause, its log tail
 * behind "Details", dismissable, and still there after a reload ("build failed" on the row).
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { buildStatus, ITEM, openPanel, PANEL, selectSnapshot, sse } from './helpers';

const ERROR = `${PANEL} .jp-yolosnap-error`;
const FAILURE = `${PANEL} .jp-yolosnap-failure`;
// Not a registry anyone serves: pulling this base fails at once.
const NO_BASE = '127.0.0.1:1/nowhere/base:1';

test.describe('Builds', () => {
  test('Cancel stops the running build', async ({ page }) => {
    let release = false;
    await page.route(/\/yolosnap\/snapshots\/uitest\/build\/events\?/, route =>
      route.fulfill({
        contentType: 'text/event-stream',
        body: sse(buildStatus('building', [{ kind: 'phase', message: 'building yolosnap/uitest' }]))
      })
    );
    await page.route(/\/yolosnap\/snapshots\/uitest\/build\?.*since=1/, route =>
      release || route.request().method() !== 'GET'
        ? route.continue()
        : route.fulfill({ json: buildStatus('building', [], { next: 1 }) })
    );
    await selectSnapshot(page);
    await page.click(`${PANEL} [data-action="build"]`);
    const cancel = page.locator(`${PANEL} [data-action="cancel"]`);
    await expect(cancel).toBeVisible();
    await expect(page.locator(`${PANEL} [data-action="build"]`)).toHaveAttribute('aria-disabled', 'true');
    const deleted = page.waitForRequest(r => r.method() === 'DELETE' && /\/snapshots\/uitest\/build\?/.test(r.url()));
    await cancel.click();
    await deleted;
    release = true;
    await expect(page.locator(`${PANEL} .jp-yolosnap-build`)).toHaveAttribute('data-state', /done|failed/, {
      timeout: 60_000
    });
    await expect(cancel).toBeHidden();
  });

  test('build options go to the server as the JSON body; a bad base is refused in one line', async ({ page }) => {
    await selectSnapshot(page);
    await page.click(`${PANEL} [data-action="build-options"]`);
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.locator('select[name="strategy"]')).toHaveValue('wheelhouse');
    await dialog.locator('select[name="strategy"]').selectOption('pinned');
    await dialog.locator('input[name="base"]').fill('not a reference!');
    const posted = page.waitForRequest(r => r.method() === 'POST' && /\/snapshots\/uitest\/build\?/.test(r.url()));
    await dialog.locator('.jp-mod-accept').click();
    expect((await posted).postDataJSON()).toEqual({ strategy: 'pinned', base: 'not a reference!' });
    await expect(page.locator(ERROR)).toContainText('is not an image reference');
    expect(((await page.locator(ERROR).textContent()) ?? '').includes('\n')).toBe(false);
    await expect(page.locator(`${PANEL} .jp-yolosnap-build`)).toBeHidden(); // nothing started
  });

  test('a failed build is shown once, with its cause and log, dismissable, and kept after a reload', async ({
    page,
    tmpPath
  }) => {
    const leftover = path.join(process.env.YOLOSNAP_UI_ROOT!, '.yolosnap', 'failing');
    try {
      await page.notebook.createNew('failing.ipynb');
      await expect
        .poll(() => page.evaluate(() => (window as any).jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.name), {
          timeout: 30_000
        })
        .toBe('python3');
      await openPanel(page);
      await page.click(`${PANEL} [data-action="save-current-kernel-as"]`);
      await page.locator('.jp-Dialog input').fill('failing');
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      const item = page.locator(`${PANEL} li.jp-yolosnap-item[data-name="failing"]`);
      await expect(item.locator('.jp-yolosnap-state')).toHaveText('not built', { timeout: 60_000 });
      await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText('failing');

      await page.click(`${PANEL} [data-action="build-options"]`);
      await page.locator('.jp-Dialog input[name="base"]').fill(NO_BASE);
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      const failure = page.locator(FAILURE);
      await expect(failure).toBeVisible({ timeout: 120_000 });
      await expect(failure.locator('.jp-yolosnap-failure-title')).toHaveText('Build failed');
      await expect(failure.locator('.jp-yolosnap-failure-text')).toContainText(NO_BASE);
      expect(((await failure.locator('.jp-yolosnap-failure-text').textContent()) ?? '').includes('\n')).toBe(false);
      // Once: no alert repeating it, no build log beside it.
      await expect(page.locator(ERROR)).toBeHidden();
      await expect(page.locator(`${PANEL} .jp-yolosnap-build`)).toBeHidden();
      await expect(item.locator('.jp-yolosnap-state')).toHaveText('build failed');
      const log = failure.locator('.jp-yolosnap-failure-log');
      await expect(log).toBeHidden();
      await failure.locator('[data-action="failure-details"]').click();
      await expect(log).toBeVisible();
      await expect(log).toContainText(NO_BASE);

      // After a reload the server still knows: the row says so and the details give the cause.
      // (a reset workspace: Galata waits for its Launcher; the failure comes from the server, not the workspace)
      await page.notebook.close(true);
      await page.goto(`tree/${tmpPath}?reset`);
      await openPanel(page);
      await expect(item.locator('.jp-yolosnap-state')).toHaveText('build failed', { timeout: 30_000 });
      await page.click(`${PANEL} li.jp-yolosnap-item[data-name="failing"]`);
      await expect(failure.locator('.jp-yolosnap-failure-text')).toContainText(NO_BASE);
      await failure.locator('[data-action="failure-details"]').click();
      await expect(log).toContainText(/\S/);

      await failure.locator('[data-action="failure-dismiss"]').click();
      await expect(failure).toBeHidden();
      await expect(page.locator(ERROR)).toBeHidden();

      await page.click(`${PANEL} [data-action="delete"]`);
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      await expect(item).toHaveCount(0);
      await expect(page.locator(ITEM)).toBeVisible();
    } finally {
      fs.rmSync(leftover, { recursive: true, force: true });
    }
  });
});
