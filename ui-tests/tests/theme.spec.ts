/**
 * The panel in JupyterLab's light and dark themes: every text of a snapshot row (name, state badge, facts), the
 * same row selected, and the panel's buttons reach WCAG AA contrast (4.5:1), measured from the computed colours
 * in the browser (backgrounds composited up the tree, as the eye sees them).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

const SNAPSHOT = 'uitest';
const PANEL = '#yolosnap-panel';
const TAB = 'li.lm-TabBar-tab[data-id="yolosnap-panel"]';
const ITEM = `${PANEL} li.jp-yolosnap-item[data-name="${SNAPSHOT}"]`;
const AA = 4.5;
const ROW_TEXTS = ['.jp-yolosnap-name', '.jp-yolosnap-state', '.jp-yolosnap-meta'].map(part => `${ITEM} ${part}`);
const BUTTONS = [
  `${PANEL} button[data-action="save-current-kernel-as"]`,
  `${PANEL} button[data-action="build"]`,
  `${PANEL} .jp-yolosnap-share button[data-action="export"]`
];

/** The contrast ratio of each selector's text against its effective background (-1: not found). */
async function contrasts(page: IJupyterLabPageFixture, selectors: string[]): Promise<Record<string, number>> {
  return page.evaluate(wanted => {
    type RGBA = [number, number, number, number];
    const parse = (text: string): RGBA => {
      const match = text.match(/rgba?\(([^)]+)\)/);
      if (!match) {
        return [0, 0, 0, 0];
      }
      const parts = match[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
    };
    const over = (top: RGBA, bottom: RGBA): RGBA => {
      const a = top[3];
      return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat(1) as RGBA;
    };
    const background = (element: Element): RGBA => {
      const chain: Element[] = [];
      for (let node: Element | null = element; node; node = node.parentElement) {
        chain.push(node);
      }
      let color: RGBA = [255, 255, 255, 1];
      for (const node of chain.reverse()) {
        const fill = parse(getComputedStyle(node).backgroundColor);
        if (fill[3] > 0) {
          color = over(fill, color);
        }
      }
      return color;
    };
    const luminance = (c: RGBA): number => {
      const channel = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
      };
      return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
    };
    const found: Record<string, number> = {};
    for (const selector of wanted) {
      const element = document.querySelector(selector);
      if (!element) {
        found[selector] = -1;
        continue;
      }
      const back = background(element);
      const fore = over(parse(getComputedStyle(element).color), back);
      const [light, dark] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
      found[selector] = Math.round(((light + 0.05) / (dark + 0.05)) * 100) / 100;
    }
    return found;
  }, selectors);
}

async function expectReadable(page: IJupyterLabPageFixture, selectors: string[], what: string): Promise<void> {
  const found = await contrasts(page, selectors);
  for (const [selector, ratio] of Object.entries(found)) {
    expect(ratio, `${what}: ${selector} is missing`).toBeGreaterThan(0);
    expect(ratio, `${what}: contrast of ${selector} is ${ratio}:1`).toBeGreaterThanOrEqual(AA);
  }
}

for (const theme of ['light', 'dark'] as const) {
  test(`row, badge and buttons reach AA contrast in the ${theme} theme`, async ({ page }) => {
    try {
      if (theme === 'dark') {
        await page.theme.setDarkTheme();
      }
      if (!(await page.locator(PANEL).isVisible())) {
        await page.click(TAB);
      }
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
      await expectReadable(page, BUTTONS, `${theme}, buttons`);
    } finally {
      if (theme === 'dark') {
        await page.theme.setLightTheme(); // the theme is a user setting: the next tests expect the default
      }
    }
  });
}
