/**
 * The sidebar compared with committed screenshots in the light and dark themes
 * (tests/screenshots.spec.ts-snapshots/; rewrite them with `scripts/ui-test.sh screenshots --update-snapshots`).
 * The server's answers are fixed fixtures in its own shapes (a verified CPU snapshot and a GPU snapshot whose
 * build failed, a diff), so the pictures do not depend on this machine's environment; dates are masked.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

import { openPanel, PANEL } from './helpers';

const DIGEST = 'sha256:' + '0123456789abcdef'.repeat(4);
const summaries = [
  {
    name: 'uitest', saved: '2026-01-02T03:04:05Z', python: '3.11.7', torch: null, cuda: null, gpu: null,
    digest: DIGEST, image: { state: 'verified', tag: 'yolosnap/uitest:0123456789ab' }, kernel_name: 'yolosnap-uitest',
    last_build: null
  },
  {
    name: 'train', saved: '2026-01-02T03:04:05Z', python: '3.12.4', torch: '2.4.1+cu124', cuda: '12.4',
    gpu: 'NVIDIA H100 80GB HBM3', digest: DIGEST, image: { state: 'not built', tag: null }, kernel_name: 'yolosnap-train',
    last_build: { state: 'failed', error: 'base image nvcr.io/x:1 could not be pulled', finished: '2026-01-02T03:05:00Z' }
  }
];
const manifest = {
  python: { version: '3.12.4', implementation: 'cpython', environment: 'venv' },
  cuda: { torch: { version: '2.4.1+cu124', cuda: '12.4', cudnn: '90100' } },
  gpu: { driver_version: '550.54.15', gpus: [{ name: 'NVIDIA H100 80GB HBM3', compute_capability: '9.0', memory_total_mib: 81559 }] },
  os: { pretty_name: 'Debian GNU/Linux 12 (bookworm)', libc: { name: 'glibc', version: '2.36' } },
  packages: [
    { name: 'torch', version: '2.4.1+cu124', installer: 'pip' },
    { name: 'numpy', version: '2.1.0', installer: 'pip' }
  ]
};
const diff = {
  identical: false,
  text: '',
  diff: {
    old: 'train', new: 'kernel', identical: false,
    changes: [
      { section: 'python', item: 'version', old: '3.12.4', new: '3.11.7', kind: 'changed' },
      { section: 'packages', item: 'torch', old: '2.4.1+cu124', new: null, kind: 'removed' },
      { section: 'packages', item: 'numpy', old: '2.1.0', new: '1.26.4', kind: 'changed' },
      { section: 'packages', item: 'six', old: null, new: '1.16.0', kind: 'added' },
      { section: 'gpu', item: 'devices', old: 'NVIDIA H100 80GB HBM3', new: null, kind: 'removed' }
    ]
  }
};

async function fixtures(page: IJupyterLabPageFixture): Promise<void> {
  await page.route(/\/yolosnap\/snapshots\?/, route =>
    route.fulfill({ json: { project: '/project', snapshots: summaries, unreadable: [] } })
  );
  await page.route(/\/yolosnap\/snapshots\/train\?/, route => route.fulfill({ json: { ...summaries[1], manifest } }));
  await page.route(/\/yolosnap\/snapshots\/train\/history\?/, route => route.fulfill({ json: { revisions: [] } }));
  await page.route(/\/yolosnap\/snapshots\/train\/diff\?/, route => route.fulfill({ json: diff }));
}

// Tall enough for the whole panel, its diff included.
test.use({ viewport: { width: 1024, height: 1280 } });

for (const theme of ['light', 'dark'] as const) {
  test(`the panel looks as committed in the ${theme} theme`, async ({ page }) => {
    try {
      await fixtures(page);
      if (theme === 'dark') {
        await page.theme.setDarkTheme();
      }
      await page.notebook.createNew(`shot-${theme}.ipynb`); // a kernel, so the diff is asked for
      await page.sidebar.setWidth(300);
      await openPanel(page);
      await page.click(`${PANEL} li.jp-yolosnap-item[data-name="train"]`);
      await expect(page.locator(`${PANEL} .jp-yolosnap-diff-section`)).toHaveCount(3, { timeout: 60_000 });
      await expect(page.locator(`${PANEL} .jp-yolosnap-failure`)).toBeVisible();
      await expect(page.locator(`${PANEL} [data-action="build"] svg`)).toBeVisible();
      const panel = page.locator(PANEL);
      await expect(panel).toHaveScreenshot(`panel-${theme}.png`, {
        mask: [
          panel.locator('.jp-yolosnap-meta'),
          panel.locator('.jp-yolosnap-failure-time'),
          panel.locator('.jp-yolosnap-folder')
        ],
        maxDiffPixelRatio: 0.01,
        animations: 'disabled'
      });
    } finally {
      if (theme === 'dark') {
        await page.theme.setLightTheme();
      }
    }
  });
}
