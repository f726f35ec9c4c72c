/**
 * The panel in JupyterLab's light and dark themes: every text of a snapshot row (name, state badge, facts), the
 * same row selected, the toolbar buttons (labels 4.5:1, icons 3:1), the search box, the diff's rows and the build
 * progress line reach WCAG AA contrast, measured from the computed colours in the browser.
 */
import { expect, test } from '@jupyterlab/galata';

import { AA_UI, buildStatus, expectReadable, ITEM, openPanel, PANEL, SNAPSHOT, sse } from './helpers';

const ROW_TEXTS = ['.jp-yolosnap-name', '.jp-yolosnap-state', '.jp-yolosnap-meta'].map(part => `${ITEM} ${part}`);
const LABELS = ['save-current-kernel-as', 'build', 'restore', 'export', 'push'].map(
  action => `${PANEL} [data-action="${action}"] .jp-ToolbarButtonComponent-label`
);
const ICONS = ['refresh', 'save-current-kernel-as', 'build', 'build-options', 'delete', 'kubernetes-job'].map(
  action => `${PANEL} [data-action="${action}"] svg .jp-icon3`
);
const DIFF_TEXTS = [
  '.jp-yolosnap-diff-summary',
  '.jp-yolosnap-diff-section-title',
  '.jp-yolosnap-count',
  '.jp-yolosnap-change-item',
  '.jp-yolosnap-change-values',
  '[data-action="diff-show-all"]',
  '[data-action="diff-open-main"]',
  '.jp-yolosnap-compare'
].map(part => `${PANEL} ${part}`);
const OTHER_TEXTS = ['.jp-yolosnap-search', '.jp-yolosnap-folder', '.jp-yolosnap-facts dt', '.jp-yolosnap-facts dd'].map(
  part => `${PANEL} ${part}`
);
const BUILD_TEXTS = ['.jp-yolosnap-build-line', '.jp-yolosnap-buildlog'].map(part => `${PANEL} ${part}`);

for (const theme of ['light', 'dark'] as const) {
  test(`row, badge and buttons reach AA contrast in the ${theme} theme`, async ({ page }) => {
    try {
      if (theme === 'dark') {
        await page.theme.setDarkTheme();
      }
      await page.notebook.createNew(`theme-${theme}.ipynb`); // a kernel to compare with: the diff has rows
      await openPanel(page);
      const item = page.locator(ITEM);
      await expect(item.locator('.jp-yolosnap-state')).toHaveText('verified');
      // The plain row: measured with the selection class taken off (a restored selection may have set it).
      const wasSelected = await item.evaluate(node => {
        const was = node.classList.contains('jp-mod-selected');
        node.classList.remove('jp-mod-selected');
        return was;
      });
      await expectReadable(page, ROW_TEXTS, `${theme}, not selected`);
      await item.evaluate((node, on) => node.classList.toggle('jp-mod-selected', on), wasSelected);
      await item.click();
      await expect(item).toHaveClass(/jp-mod-selected/);
      await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText(SNAPSHOT);
      await expectReadable(page, ROW_TEXTS, `${theme}, selected`);
      await expect(page.locator(`${PANEL} [data-action="export"] .jp-ToolbarButtonComponent-label`)).toBeVisible();
      await expectReadable(page, LABELS, `${theme}, button labels`);
      await expectReadable(page, ICONS, `${theme}, button icons`, 'fill', AA_UI);
      await expect(page.locator(`${PANEL} .jp-yolosnap-facts dd[data-fact="python"]`)).toBeVisible();
      await expectReadable(page, OTHER_TEXTS, `${theme}, search box and facts`);

      await expect(page.locator(`${PANEL} .jp-yolosnap-change`).first()).toBeVisible({ timeout: 60_000 });
      await expectReadable(page, DIFF_TEXTS, `${theme}, diff`);

      // A build in progress (its stream answered as a long build's): the progress line and the log.
      const events = [{ kind: 'phase', message: 'building yolosnap/uitest' },
                      { kind: 'step', message: 'RUN pip install', step: 3, total: 8 }];
      await page.route(/\/build\/events\?/, route =>
        route.fulfill({ contentType: 'text/event-stream', body: sse(buildStatus('building', events)) })
      );
      await page.route(/\/yolosnap\/snapshots\/uitest\/build\?.*since=2/, route =>
        route.fulfill({ contentType: 'application/json', body: JSON.stringify(buildStatus('building', [], { next: 2 })) })
      );
      await page.click(`${PANEL} [data-action="build"]`);
      await expect(page.locator(`${PANEL} .jp-yolosnap-build-line`)).toContainText('step 3/8');
      await expectReadable(page, BUILD_TEXTS, `${theme}, build progress`);
      await page.unrouteAll({ behavior: 'ignoreErrors' });
      await expect(page.locator(`${PANEL} .jp-yolosnap-build`)).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
    } finally {
      if (theme === 'dark') {
        await page.theme.setLightTheme(); // the theme is a user setting: the next tests expect the default
      }
    }
  });
}
