/**
 * The sidebar's native parts: JupyterLab toolbars with icon buttons usable at 250 px, the search box, the
 * details (facts that exist, the package table and its filter), the diff as HTML grouped by section (changed
 * only, show everything, open in the main area) and the compare choices.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { ITEM, openPanel, PANEL, selectSnapshot, SNAPSHOT } from './helpers';

const DIFF = `${PANEL} .jp-yolosnap-diff`;

/** A diff reply in the server's shape: 12 package rows, one python row, one informational source row. */
function fakeDiff(): object {
  const packages = Array.from({ length: 12 }, (_, i) => ({
    section: 'packages', item: `pkg-${String(i).padStart(2, '0')}`, old: `1.${i}.0`, new: `2.${i}.0`, kind: 'changed'
  }));
  const changes = [
    ...packages,
    { section: 'source', item: 'git commit', old: 'abc123', new: 'def456', kind: 'changed' },
    { section: 'python', item: 'version', old: '3.11.7', new: '3.12.1', kind: 'changed' },
    { section: 'env', item: 'CUDA_VISIBLE_DEVICES', old: null, new: '0', kind: 'added' },
    { section: 'packages', item: 'old-thing', old: '0.1', new: null, kind: 'removed' }
  ];
  return {
    identical: false,
    diff: { old: SNAPSHOT, new: 'kernel', identical: false, changes },
    text: 'unused by the panel',
    cached: false
  };
}

async function waitForKernel(page: IJupyterLabPageFixture): Promise<void> {
  await expect
    .poll(() => page.evaluate(() => (window as any).jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.name), {
      timeout: 30_000
    })
    .toBe('python3');
}

test.describe('The native sidebar', () => {
  test('JupyterLab toolbars with icon buttons, usable 250 px wide', async ({ page }) => {
    await page.sidebar.setWidth(250);
    await selectSnapshot(page);
    for (const action of ['refresh', 'save-current-kernel-as']) {
      const button = page.locator(`${PANEL} .jp-yolosnap-toolbar jp-button[data-action="${action}"]`);
      await expect(button).toBeVisible();
      await expect(button.locator('svg')).toBeVisible(); // a LabIcon
    }
    for (const action of ['build', 'build-options', 'restore', 'delete', 'export', 'push', 'kubernetes-job']) {
      const button = page.locator(`${PANEL} .jp-yolosnap-actions jp-button[data-action="${action}"]`);
      await expect(button, action).toBeVisible();
      await expect(button.locator('svg'), action).toBeVisible();
    }
    await expect(page.locator(`${PANEL} [data-action="cancel"]`)).toBeHidden(); // only during a build
    // Nothing sticks out sideways: every button lies inside the panel, and the panel does not scroll sideways.
    const panel = (await page.locator(PANEL).boundingBox())!;
    expect(panel.width).toBeLessThanOrEqual(252);
    for (const box of await page.locator(`${PANEL} jp-button[data-action]`).evaluateAll(nodes =>
      nodes.filter(n => (n as HTMLElement).offsetParent).map(n => n.getBoundingClientRect().right)
    )) {
      expect(box).toBeLessThanOrEqual(panel.x + panel.width + 1);
    }
    expect(await page.locator(PANEL).evaluate(n => n.scrollWidth <= n.clientWidth + 1)).toBe(true);
    // The refresh button reloads the list.
    const listed = page.waitForRequest(r => r.method() === 'GET' && /\/yolosnap\/snapshots\?/.test(r.url()));
    await page.click(`${PANEL} [data-action="refresh"]`);
    await listed;
  });

  test('the search box filters the snapshots by name, facts and package', async ({ page }) => {
    await openPanel(page); // nothing selected needed: a search reads the manifests for their package names
    const search = page.locator(`${PANEL} .jp-yolosnap-search`);
    const item = page.locator(ITEM);
    for (const [query, found] of [
      ['uit', true],
      ['nothing-like-this', false],
      ['3.11', true], // Python
      ['verified', true], // the image state
      ['six', true], // a package of the snapshot
      ['uitest 3.11', true],
      ['uitest zzz', false]
    ] as const) {
      await search.fill(query);
      if (found) {
        await expect(item, query).toBeVisible();
      } else {
        await expect(item, query).toHaveCount(0);
        await expect(page.locator(`${PANEL} .jp-yolosnap-empty`)).toHaveText(`No snapshot matches "${query}".`);
      }
    }
    await search.fill('');
    await expect(item).toBeVisible();
  });

  test('details: the facts there are, and a package table with a filter', async ({ page }) => {
    await selectSnapshot(page);
    const facts = page.locator(`${PANEL} .jp-yolosnap-facts`);
    await expect(facts.locator('dd[data-fact="python"]')).toHaveText(/^3\.11\.7 \(cpython, venv\)$/);
    await expect(facts.locator('dd[data-fact="os"]')).toContainText('Debian');
    await expect(facts.locator('dd[data-fact="image"]')).toHaveText(/^verified \(yolosnap\/uitest/);
    await expect(facts.locator('dd[data-fact="digest"]')).toHaveText(/^sha256:[0-9a-f]{64}$/);
    await expect(facts.locator('dd[data-fact="torch"]')).toHaveCount(0); // no torch in this snapshot: no fact
    await expect(facts.locator('dd[data-fact="gpu"]')).toHaveCount(0);
    for (const text of await facts.locator('dd').allTextContents()) {
      expect(text.trim()).not.toMatch(/^(-|\?|)$/); // no placeholders
    }
    const packages = page.locator(`${PANEL} details.jp-yolosnap-packages`);
    await packages.locator('summary').click();
    await expect(packages.locator('summary')).toHaveText(/^Packages \(\d+\)$/);
    await expect(packages.locator('tr[data-package="six"] td')).toHaveText([/^six$/, /^\d+\.\d+/, 'pip']);
    const filter = packages.locator('.jp-yolosnap-package-filter');
    await filter.fill('six');
    await expect(packages.locator('tbody tr')).toHaveCount(1);
    await filter.fill('no-such-package');
    await expect(packages.locator('tbody tr')).toHaveCount(0);
    await expect(packages.locator('.jp-yolosnap-package-note')).toHaveText('No package matches.');
  });

  test('details of a GPU snapshot: torch, CUDA/cuDNN and each GPU with its compute capability', async ({ page }) => {
    await page.route(/\/yolosnap\/snapshots\/uitest\?/, async route => {
      const response = await route.fetch();
      const body = await response.json();
      body.manifest.cuda = { torch: { version: '2.4.1+cu124', cuda: '12.4', cudnn: '90100' }, nvcc: null };
      body.manifest.gpu = {
        status: 'ok', driver_version: '550.54.15',
        gpus: [{ name: 'NVIDIA H100 80GB HBM3', compute_capability: '9.0', memory_total_mib: 81559 },
               { name: 'NVIDIA H100 80GB HBM3', compute_capability: '9.0', memory_total_mib: 81559 }]
      };
      await route.fulfill({ response, json: body });
    });
    await selectSnapshot(page);
    const facts = page.locator(`${PANEL} .jp-yolosnap-facts`);
    await expect(facts.locator('dd[data-fact="torch"]')).toHaveText('2.4.1+cu124');
    await expect(facts.locator('dd[data-fact="cuda"]')).toHaveText('12.4');
    await expect(facts.locator('dd[data-fact="cudnn"]')).toHaveText('90100');
    await expect(facts.locator('dd[data-fact="gpu 0"]')).toHaveText('NVIDIA H100 80GB HBM3 (compute 9.0, 80 GiB)');
    await expect(facts.locator('dd[data-fact="gpu 1"]')).toHaveText('NVIDIA H100 80GB HBM3 (compute 9.0, 80 GiB)');
    await expect(facts.locator('dd[data-fact="driver"]')).toHaveText('550.54.15');
  });

  test('the diff as HTML: sections in order with counts, changed only, show everything, open in the main area', async ({
    page
  }) => {
    await page.route(/\/yolosnap\/snapshots\/uitest\/diff\?/, route => route.fulfill({ json: fakeDiff() }));
    await page.sidebar.setWidth(250);
    await page.notebook.createNew('diff.ipynb');
    await waitForKernel(page);
    await selectSnapshot(page);
    const diff = page.locator(DIFF);
    await expect(diff).toHaveAttribute('data-identical', 'false');
    await expect(diff.locator('.jp-yolosnap-diff-summary')).toHaveText(`15 changes (${SNAPSHOT} → kernel)`);
    const sections = diff.locator('.jp-yolosnap-diff-section');
    // Changed only: the server's section order, the informational source left out, packages collapsed to 8.
    await expect(sections).toHaveCount(3);
    expect(await sections.evaluateAll(n => n.map(s => (s as HTMLElement).dataset.section))).toEqual(['python', 'packages', 'env']);
    const packages = diff.locator('[data-section="packages"]');
    await expect(packages.locator('.jp-yolosnap-count')).toHaveText('13');
    await expect(packages.locator('.jp-yolosnap-change')).toHaveCount(8);
    await expect(diff.locator('[data-section="python"] .jp-yolosnap-change')).toHaveText('version3.11.7 → 3.12.1');
    await expect(diff.locator('[data-section="env"] .jp-yolosnap-change')).toHaveAttribute('data-kind', 'added');
    await packages.locator('[data-action="diff-more"]').click();
    await expect(packages.locator('.jp-yolosnap-change')).toHaveCount(13);
    await expect(packages.locator('.jp-yolosnap-change[data-kind="removed"]')).toHaveText('old-thingremoved 0.1');
    // Everything: the source section too.
    await diff.locator('[data-action="diff-show-all"]').click();
    await expect(sections).toHaveCount(4);
    await expect(diff.locator('[data-section="source"] .jp-yolosnap-change')).toHaveText('git commitabc123 → def456');
    // No monospace table, nothing wider than the 250 px sidebar.
    expect(await diff.evaluate(n => getComputedStyle(n).fontFamily.includes('monospace'))).toBe(false);
    expect(await page.locator(PANEL).evaluate(n => n.scrollWidth <= n.clientWidth + 1)).toBe(true);

    await page.click(`${PANEL} [data-action="diff-open-main"]`);
    const main = page.locator('#jp-main-dock-panel .jp-yolosnap-diff-main');
    await expect(main).toBeVisible();
    await expect(main.locator('h2')).toHaveText(`${SNAPSHOT} vs the notebook kernel`);
    await expect(main.locator('.jp-yolosnap-diff-section')).toHaveCount(3);
    await expect(page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')).toContainText(`${SNAPSHOT} vs`);
  });

  test('the diff against the notebook kernel comes from the server cache the second time', async ({ page }) => {
    await page.notebook.createNew('cached.ipynb');
    await waitForKernel(page);
    await selectSnapshot(page);
    const diff = page.locator(DIFF);
    await expect(diff).toHaveAttribute('data-identical', /true|false/, { timeout: 60_000 });
    await page.click(`${PANEL} [data-action="refresh"]`);
    await expect(diff).toHaveAttribute('data-cached', 'true', { timeout: 30_000 });
    await expect(diff.locator('.jp-yolosnap-change').first()).toBeVisible();
  });

  test('compare with another snapshot or an earlier revision', async ({ page }) => {
    const leftover = path.join(process.env.YOLOSNAP_UI_ROOT!, '.yolosnap', 'other');
    // Two revisions of uitest, in the server's shape (a real second revision would change the snapshot).
    await page.route(/\/yolosnap\/snapshots\/uitest\/history\?/, async route => {
      const response = await route.fetch();
      const body = await response.json();
      const current = body.revisions[body.revisions.length - 1];
      await route.fulfill({
        json: { revisions: [{ ...current, number: 1, current: false, saved: '2025-01-01T00:00:00Z' },
                            { ...current, number: 2, current: true }] }
      });
    });
    try {
      await page.notebook.createNew('compare.ipynb');
      await waitForKernel(page);
      await openPanel(page);
      await page.click(`${PANEL} [data-action="save-current-kernel-as"]`);
      await page.locator('.jp-Dialog input').fill('other');
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      await expect(page.locator(`${PANEL} li.jp-yolosnap-item[data-name="other"]`)).toBeVisible({ timeout: 60_000 });
      await selectSnapshot(page);
      const compare = page.locator(`${PANEL} select.jp-yolosnap-compare`);
      await expect(compare).toHaveValue(''); // the notebook kernel by default
      await expect(compare.locator('option')).toHaveText(['the notebook kernel', 'snapshot other', /^uitest@1 · /]);

      const asked = page.waitForRequest(r => /\/snapshots\/uitest\/diff\?.*against=other/.test(r.url()));
      await compare.selectOption('other');
      await asked;
      const diff = page.locator(DIFF);
      await expect(diff).toHaveAttribute('data-identical', 'false', { timeout: 60_000 });
      await expect(diff.locator('[data-section="packages"]')).toBeVisible();

      const revision = page.waitForRequest(r => /\/snapshots\/uitest\/diff\?.*against=uitest%401/.test(r.url()));
      await compare.selectOption('uitest@1');
      await revision;
      await expect(diff.locator('.jp-yolosnap-diff-message, .jp-yolosnap-diff-summary').first()).toBeVisible({ timeout: 60_000 });

      // Another snapshot selected: back to the notebook kernel.
      await selectSnapshot(page, 'other');
      await expect(compare).toHaveValue('');
      await page.click(`${PANEL} [data-action="delete"]`);
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      await expect(page.locator(`${PANEL} li.jp-yolosnap-item[data-name="other"]`)).toHaveCount(0);
    } finally {
      fs.rmSync(leftover, { recursive: true, force: true });
    }
  });
});
