/**
 * Sharing a verified snapshot from the sidebar: Export (an archive in the notebook's folder), Push (to a
 * registry), Kubernetes Job (its YAML), against the snapshot `uitest` that scripts/ui-test.sh saves and builds.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

const SNAPSHOT = 'uitest';
const PANEL = '#yolosnap-panel';
const TAB = 'li.lm-TabBar-tab[data-id="yolosnap-panel"]';
const ITEM = `${PANEL} li.jp-yolosnap-item[data-name="${SNAPSHOT}"]`;
const STATUS = `${PANEL} .jp-yolosnap-status`;
const ERROR = `${PANEL} .jp-yolosnap-error`;
// docker save of the image, compressed: some seconds; a cold engine can take longer.
const EXPORT_TIMEOUT = 120_000;
const NO_PUSH =
  `a cluster pulls the image from a registry: push snapshot '${SNAPSHOT}' first ` +
  `(yolosnap push ${SNAPSHOT} REGISTRY/REPO:TAG), or pass --image REGISTRY/REPO@sha256:DIGEST`;

/** `text` as a regular expression that matches it literally. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function openPanel(page: IJupyterLabPageFixture): Promise<void> {
  if (!(await page.locator(PANEL).isVisible())) {
    await page.click(TAB);
  }
  await expect(page.locator(PANEL)).toBeVisible();
}

/** Select the snapshot and click one of its share actions. */
async function share(page: IJupyterLabPageFixture, action: string): Promise<void> {
  await openPanel(page);
  await page.click(ITEM);
  await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText(SNAPSHOT);
  const button = page.locator(`${PANEL} .jp-yolosnap-share [data-action="${action}"]`);
  await expect(button).toBeVisible();
  await button.click();
}

/** The dialog's text field: check its default, type `value` (when given), accept. */
async function answer(page: IJupyterLabPageFixture, expected: string, value?: string): Promise<void> {
  const input = page.locator('.jp-Dialog input');
  await expect(input).toHaveValue(expected);
  if (value !== undefined) {
    await input.fill(value);
  }
  await page.locator('.jp-Dialog .jp-mod-accept').click();
}

test.describe('Sharing a verified snapshot', () => {
  test('Export writes the archive into the notebook folder', async ({ page, tmpPath }) => {
    await page.notebook.createNew('export.ipynb'); // the panel's folder is the notebook's: tmpPath
    await share(page, 'export');
    await answer(page, `${SNAPSHOT}.tar.gz`);
    const status = page.locator(STATUS);
    await expect(status).toHaveText(new RegExp(`^Exported to ${literal(tmpPath)}/${SNAPSHOT}\\.tar\\.gz \\([0-9.]+ MB\\)$`), {
      timeout: EXPORT_TIMEOUT
    });
    await expect(page.locator(ERROR)).toBeHidden();
    expect(await page.contents.fileExists(`${tmpPath}/${SNAPSHOT}.tar.gz`)).toBe(true);

    // The same file again: the panel asks before replacing it.
    await share(page, 'export');
    await answer(page, `${SNAPSHOT}.tar.gz`);
    const confirm = page.locator('.jp-Dialog', { hasText: 'Replace it?' });
    await expect(confirm).toContainText(`${tmpPath}/${SNAPSHOT}.tar.gz already exists. Replace it?`);
    await confirm.locator('.jp-mod-accept').click();
    await expect(status).toHaveText(new RegExp(`^Exported to ${literal(tmpPath)}/${SNAPSHOT}\\.tar\\.gz `), {
      timeout: EXPORT_TIMEOUT
    });

    // A name that is not a plain file name: the server's one line, and nothing written.
    await share(page, 'export');
    await answer(page, `${SNAPSHOT}.tar.gz`, '../escape.tar.gz');
    await expect(page.locator(ERROR)).toHaveText(/^file '\.\.\/escape\.tar\.gz' must be a plain file name ending in \.tar\.gz/);
    expect(await page.contents.fileExists('escape.tar.gz')).toBe(false);
  });

  test('Kubernetes Job before any push says to push first', async ({ page }) => {
    await share(page, 'kubernetes-job');
    await answer(page, 'python train.py');
    await expect(page.locator(ERROR)).toHaveText(NO_PUSH);
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);
  });

  test('Kubernetes Job after a push shows the YAML of the Job', async ({ page }) => {
    // A push as registry.json records it (a real push needs a registry): the Job then runs that image.
    const root = process.env.YOLOSNAP_UI_ROOT;
    expect(root, 'scripts/ui-test.sh sets YOLOSNAP_UI_ROOT').toBeTruthy();
    const manifest = JSON.parse(fs.readFileSync(path.join(root!, '.yolosnap', SNAPSHOT, 'snapshot.json'), 'utf8'));
    const records = path.join(root!, '.yolosnap', SNAPSHOT, 'registry.json');
    const digest = 'sha256:' + 'a'.repeat(64);
    const record = {
      op: 'push',
      reference: `registry.example.com/team/${SNAPSHOT}:v1`,
      digest,
      image: 'sha256:' + 'b'.repeat(64),
      snapshot_digest: manifest.digest,
      at: '2025-01-01T00:00:00Z'
    };
    fs.writeFileSync(records, JSON.stringify({ records: [record] }));
    try {
      await share(page, 'kubernetes-job');
      await answer(page, 'python train.py', 'python train.py --epochs 3');
      const dialog = page.locator('.jp-Dialog');
      const yaml = dialog.locator('pre.jp-yolosnap-k8s');
      await expect(yaml).toContainText('kind: Job');
      await expect(yaml).toContainText(`image: registry.example.com/team/${SNAPSHOT}@${digest}`);
      await expect(yaml).toContainText('--epochs');
      await dialog.locator('.jp-mod-reject').click(); // Close
      await expect(dialog).toHaveCount(0);
      await expect(page.locator(ERROR)).toBeHidden();
    } finally {
      fs.rmSync(records, { force: true });
    }
  });

  test('Push to an unreachable registry shows one line', async ({ page }) => {
    await share(page, 'push');
    await answer(page, '', '127.0.0.1:1/team/x:y');
    const error = page.locator(ERROR);
    await expect(error).toHaveText(/^pushing 127\.0\.0\.1:1\/team\/x:y failed: cannot reach the registry 127\.0\.0\.1:1/, {
      timeout: EXPORT_TIMEOUT
    });
    expect((await error.textContent())!.includes('\n')).toBe(false);
    await expect(page.locator(STATUS)).toBeHidden();
  });

  test('the share actions are hidden for a snapshot that is not built', async ({ page }) => {
    await page.notebook.createNew('unbuilt.ipynb');
    await expect
      .poll(() => page.evaluate(() => (window as any).jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.name), {
        timeout: 30_000
      })
      .toBe('python3');
    // A failure here must not leave `unbuilt` behind for the next spec's list.
    const leftover = path.join(process.env.YOLOSNAP_UI_ROOT!, '.yolosnap', 'unbuilt');
    try {
      await openPanel(page);
      await page.click(`${PANEL} [data-action="save-current-kernel-as"]`);
      await page.locator('.jp-Dialog input').fill('unbuilt');
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      const item = page.locator(`${PANEL} li.jp-yolosnap-item[data-name="unbuilt"]`);
      await expect(item.locator('.jp-yolosnap-state')).toHaveText('not built', { timeout: 60_000 });
      await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText('unbuilt');
      await expect(page.locator(`${PANEL} .jp-yolosnap-share:visible`)).toHaveCount(0);
      await expect(page.locator(`${PANEL} [data-action="build"]`)).toBeVisible();

      await page.click(`${PANEL} [data-action="delete"]`);
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      await expect(item).toHaveCount(0);
    } finally {
      fs.rmSync(leftover, { recursive: true, force: true });
    }
  });
});
