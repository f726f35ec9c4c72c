/**
 * The "Environment snapshots" sidebar in a real browser, against a server whose root holds a project with the
 * snapshot `uitest` saved and built (scripts/ui-test.sh prepares it).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import { buildStatus, sse } from './helpers';

const SNAPSHOT = 'uitest';
const PANEL = '#yolosnap-panel';
const TAB = 'li.lm-TabBar-tab[data-id="yolosnap-panel"]';
const ITEM = `${PANEL} li.jp-yolosnap-item[data-name="${SNAPSHOT}"]`;
const SCREENSHOT = path.resolve(__dirname, '..', '..', 'docs', 'panel.png');
const PROBE = "import os, platform; print(os.path.exists('/.dockerenv'), platform.python_version())";
// The first kernel of a snapshot adds ipykernel to its image (one layer, once, about 30 s): give it time.
const CONTAINER_TIMEOUT = 150_000;

async function openPanel(page: IJupyterLabPageFixture): Promise<void> {
  if (!(await page.locator(PANEL).isVisible())) {
    await page.click(TAB);
  }
  await expect(page.locator(PANEL)).toBeVisible();
}

/** The kernel name of the notebook in the main area, read from the app Galata exposes. */
async function kernelName(page: IJupyterLabPageFixture): Promise<string | undefined> {
  return page.evaluate(() => {
    const widget = (window as any).jupyterapp.shell.currentWidget;
    return widget?.sessionContext?.session?.kernel?.name;
  });
}

async function cellText(page: IJupyterLabPageFixture, index: number): Promise<string> {
  return ((await page.notebook.getCellTextOutput(index)) ?? []).join('\n');
}

/** A new notebook on the plain python3 kernel, then "Save current kernel as..." NAME in the panel. */
async function saveNewKernelAs(page: IJupyterLabPageFixture, notebook: string, name: string): Promise<void> {
  await page.notebook.createNew(notebook);
  await expect.poll(() => kernelName(page), { timeout: 30_000 }).toBe('python3');
  await openPanel(page);
  await page.click(`${PANEL} [data-action="save-current-kernel-as"]`);
  await page.locator('.jp-Dialog input').fill(name);
  await page.locator('.jp-Dialog .jp-mod-accept').click();
}

test.describe('Environment snapshots sidebar', () => {
  test('lists the built snapshot as verified', async ({ page, tmpPath }) => {
    await openPanel(page);
    const item = page.locator(ITEM);
    await expect(item).toBeVisible();
    await expect(item.locator('.jp-yolosnap-state')).toHaveText('verified');
    await expect(item.locator('.jp-yolosnap-meta')).toContainText('Python 3.11.7');
    // only the facts there are: this CPU snapshot has no torch, CUDA or GPU to show (no "torch -")
    await expect(item.locator('.jp-yolosnap-meta')).toHaveText(/^saved .+ · Python 3\.11\.7$/);
    // JupyterLab saves the state database into the workspace a moment after a change.
    const saved = page.waitForRequest(
      r =>
        r.method() === 'PUT' &&
        r.url().includes('/api/workspaces/') &&
        (r.postData() ?? '').includes(`"jupyter-yolosnap:panel":{"selected":"${SNAPSHOT}"`)
    );
    await item.click();
    await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText(SNAPSHOT);
    await expect(page.locator(`${PANEL} .jp-yolosnap-facts`)).toContainText('yolosnap-uitest');
    await expect(page.locator(`${PANEL} .jp-yolosnap-error`)).toBeHidden();
    // For the README: the panel down to its last line, at a readable sidebar width.
    await page.sidebar.setWidth(340);
    const panel = (await page.locator(PANEL).boundingBox())!;
    const last = (await page.locator(`${PANEL} .jp-yolosnap-diff`).boundingBox())!;
    await page.screenshot({
      path: SCREENSHOT,
      clip: { x: panel.x, y: panel.y, width: panel.width, height: last.y + last.height + 8 - panel.y }
    });

    // The selection survives a reload (IStateDB); not page.reload(): Galata's first URL resets the workspace.
    await saved;
    await page.goto(`tree/${tmpPath}`);
    await openPanel(page);
    await expect(page.locator(ITEM)).toHaveClass(/jp-mod-selected/);
    await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText(SNAPSHOT);
  });

  test('Build follows the build to its end', async ({ page }) => {
    await openPanel(page);
    await page.click(ITEM);
    const stream = page.waitForRequest(/\/yolosnap\/snapshots\/uitest\/build\/events\?/);
    await page.click(`${PANEL} [data-action="build"]`);
    await stream; // followed through the server-sent events stream, not a poll
    const build = page.locator(`${PANEL} .jp-yolosnap-build`);
    await expect(build).toHaveAttribute('data-state', 'done', { timeout: CONTAINER_TIMEOUT });
    await expect(build.locator('.jp-yolosnap-build-line')).toContainText('build done');
    await expect(build).toHaveAttribute('data-transport', 'stream'); // the stream itself carried it to the end
    await expect(build.locator('.jp-yolosnap-progress')).toHaveAttribute('aria-valuenow', '100');
    await expect(page.locator(ITEM).locator('.jp-yolosnap-state')).toHaveText('verified');
    await expect(page.locator(`${PANEL} .jp-yolosnap-error`)).toBeHidden();
    await expect(page.locator(`${PANEL} [data-action="cancel"]`)).toBeHidden();
  });

  test('a running build shows its phase and time, marks the image building and follows the log tail', async ({
    page
  }) => {
    // The real build of uitest ends at once (it is built); its event stream is answered as a long build's
    // would be, in the server's own shape, then its polls (the stream ended: the panel falls back to polling)
    // say 'building' until the test lets them through to the server.
    let release = false;
    const events = [{ kind: 'phase', message: 'installing pins' },
                    ...Array.from({ length: 8 }, (_, i) => ({ kind: 'log', message: `step ${i + 1}/8` }))];
    await page.route(/\/yolosnap\/snapshots\/uitest\/build\/events\?/, route =>
      route.fulfill({ contentType: 'text/event-stream', body: sse(buildStatus('building', events)) })
    );
    await page.route(/\/yolosnap\/snapshots\/uitest\/build\?.*since=9/, route =>
      release || route.request().method() !== 'GET'
        ? route.continue()
        : route.fulfill({ contentType: 'application/json', body: JSON.stringify(buildStatus('building', [], { next: 9 })) })
    );
    await page.addStyleTag({ content: '.jp-yolosnap-buildlog { max-height: 48px !important; }' });
    await openPanel(page);
    await page.click(ITEM);
    await page.click(`${PANEL} [data-action="build"]`);
    const build = page.locator(`${PANEL} .jp-yolosnap-build`);
    const log = build.locator('.jp-yolosnap-buildlog');
    await expect(build).toHaveAttribute('data-state', 'building');
    await expect(build.locator('.jp-yolosnap-build-line')).toHaveText(/^building · installing pins · \d+ s$/);
    await expect(build).toHaveAttribute('data-transport', 'poll'); // the stream ended before the build: polling
    await expect(page.locator(`${PANEL} dd[data-fact="image"]`)).toHaveText('building');
    await expect(page.locator(ITEM).locator('.jp-yolosnap-state')).toHaveText('building');
    await expect(page.locator(`${PANEL} [data-action="cancel"]`)).toBeVisible();
    const atBottom = () => log.evaluate(n => n.scrollHeight > n.clientHeight && n.scrollTop + n.clientHeight >= n.scrollHeight - 2);
    expect(await atBottom()).toBe(true); // overflowing, and scrolled to its last line
    release = true;
    await expect(build).toHaveAttribute('data-state', 'done', { timeout: CONTAINER_TIMEOUT });
    await expect(build.locator('.jp-yolosnap-build-line')).toHaveText(/^build done/);
    await expect(page.locator(ITEM).locator('.jp-yolosnap-state')).toHaveText('verified');
    await expect(page.locator(`${PANEL} dd[data-fact="image"]`)).toContainText('verified');
  });

  test('a long build watched live: the progress bar moves, the log opens whole, then verified', async ({ page }) => {
    // Step 2 of 8 from the stream, then step 6 of 8 from the next poll, then the server's own answer (done).
    let release = false;
    const lines = Array.from({ length: 30 }, (_, i) => ({ kind: 'log', message: `line ${i + 1}` }));
    const first = [{ kind: 'phase', message: 'building yolosnap/uitest' }, { kind: 'step', message: 'FROM base', step: 2, total: 8 },
                   ...lines];
    await page.route(/\/yolosnap\/snapshots\/uitest\/build\/events\?/, route =>
      route.fulfill({ contentType: 'text/event-stream', body: sse(buildStatus('building', first)) })
    );
    await page.route(/\/yolosnap\/snapshots\/uitest\/build\?.*since=32/, route =>
      release || route.request().method() !== 'GET'
        ? route.continue()
        : route.fulfill({
            contentType: 'application/json',
            body: JSON.stringify(buildStatus('building', [{ kind: 'step', message: 'RUN pip install', step: 6, total: 8 }],
                                             { next: 32 }))
          })
    );
    await openPanel(page);
    await page.click(ITEM);
    await page.click(`${PANEL} [data-action="build"]`);
    const build = page.locator(`${PANEL} .jp-yolosnap-build`);
    const bar = build.locator('.jp-yolosnap-progress');
    await expect(bar).toHaveAttribute('aria-valuenow', '25');
    await expect(bar).toHaveAttribute('aria-valuenow', '75');
    await expect(build.locator('.jp-yolosnap-build-line')).toContainText('step 6/8');
    // The log shows its tail; the toggle opens it whole.
    const log = build.locator('.jp-yolosnap-buildlog');
    await expect(log).not.toContainText('line 1\n');
    await build.locator('[data-action="build-log-toggle"]').click();
    await expect(log).toContainText('line 1\n');
    await expect(log).toContainText('RUN pip install');
    release = true;
    await expect(build).toHaveAttribute('data-state', 'done', { timeout: CONTAINER_TIMEOUT });
    await expect(bar).toHaveAttribute('aria-valuenow', '100');
    await expect(page.locator(ITEM).locator('.jp-yolosnap-state')).toHaveText('verified');
  });

  test('Save current kernel as... then Delete', async ({ page }) => {
    await saveNewKernelAs(page, 'save.ipynb', 'scratch');
    const item = page.locator(`${PANEL} li.jp-yolosnap-item[data-name="scratch"]`);
    await expect(item).toBeVisible({ timeout: 60_000 });
    await expect(item.locator('.jp-yolosnap-state')).toHaveText('not built');
    await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText('scratch');
    // Saved from this very kernel: the diff against it is empty.
    await expect(page.locator(`${PANEL} .jp-yolosnap-diff`)).toHaveAttribute('data-identical', 'true', {
      timeout: 60_000
    });

    await page.click(`${PANEL} [data-action="delete"]`);
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    await expect(item).toHaveCount(0);
    await expect(page.locator(ITEM)).toBeVisible();
    await expect(page.locator(`${PANEL} .jp-yolosnap-error`)).toBeHidden();
  });

  test("the server's errors show in the panel", async ({ page }) => {
    await saveNewKernelAs(page, 'errors.ipynb', '../escape');
    const error = page.locator(`${PANEL} .jp-yolosnap-error`);
    await expect(error).toBeVisible({ timeout: 30_000 });
    await expect(error).toContainText("invalid snapshot name '../escape'");
    await expect(page.locator(`${PANEL} li.jp-yolosnap-item`)).toHaveCount(1); // nothing was saved
    // Selecting a snapshot starts afresh: the earlier error does not stay on screen.
    await page.click(ITEM);
    await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText(SNAPSHOT);
    await expect(error).toBeHidden();
  });

  test('the diff follows a notebook whose kernel starts after it is opened', async ({ page }) => {
    await openPanel(page);
    await page.click(ITEM);
    const diff = page.locator(`${PANEL} .jp-yolosnap-diff`);
    await expect(diff).toHaveText('Open a notebook with a running kernel to compare.');
    await page.notebook.createNew('follow.ipynb'); // current at once; its kernel comes a moment later
    await expect(diff).toHaveAttribute('data-identical', /true|false/, { timeout: 60_000 });
    await expect(diff).not.toHaveText('Open a notebook with a running kernel to compare.');
  });

  test('Restore switches the notebook to a kernel inside the container', async ({ page }) => {
    await page.notebook.createNew('restore.ipynb');
    await openPanel(page);
    await page.click(ITEM);
    await expect(page.locator(ITEM).locator('.jp-yolosnap-here')).toHaveCount(0); // the notebook runs python3
    await page.click(`${PANEL} [data-action="restore"]`);
    await expect
      .poll(() => kernelName(page), { timeout: CONTAINER_TIMEOUT })
      .toBe(`yolosnap-${SNAPSHOT}`);
    await expect(page.locator(`${PANEL} .jp-yolosnap-error`)).toBeHidden();
    // The panel says which snapshot this notebook now runs in.
    await expect(page.locator(ITEM).locator('.jp-yolosnap-here')).toHaveText('running here');

    await page.notebook.setCell(0, 'code', PROBE);
    await page.notebook.runCell(0, { wait: false });
    await expect
      .poll(() => cellText(page, 0), { timeout: CONTAINER_TIMEOUT })
      .toContain('True 3.11.7');
  });

  test('Run Selected Cells in Snapshot... runs the cell in the container', async ({ page }) => {
    await page.notebook.createNew('in_env.ipynb');
    await expect.poll(() => kernelName(page), { timeout: 30_000 }).toBe('python3');
    await page.notebook.setCell(0, 'code', PROBE);
    await page.notebook.selectCells(0);

    const cell = await page.notebook.getCellLocator(0);
    await cell!.click({ button: 'right' });
    await page.locator('.lm-Menu-itemLabel', { hasText: 'Run Selected Cells in Snapshot...' }).click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.locator('select').selectOption(SNAPSHOT);
    await dialog.locator('.jp-mod-accept').click();

    await expect
      .poll(() => cellText(page, 0), { timeout: CONTAINER_TIMEOUT })
      .toContain('True 3.11.7');
  });
});
