/**
 * Shared by the sidebar's specs: opening the panel, measuring contrast, and answering the build's event
 * stream (server-sent events) in the server's own shape.
 */
import { expect, IJupyterLabPageFixture } from '@jupyterlab/galata';

export const SNAPSHOT = 'uitest';
export const PANEL = '#yolosnap-panel';
export const TAB = 'li.lm-TabBar-tab[data-id="yolosnap-panel"]';
export const ITEM = `${PANEL} li.jp-yolosnap-item[data-name="${SNAPSHOT}"]`;
/** WCAG AA: text 4.5:1, user-interface components and icons 3:1. */
export const AA = 4.5;
export const AA_UI = 3;

export async function openPanel(page: IJupyterLabPageFixture): Promise<void> {
  if (!(await page.locator(PANEL).isVisible())) {
    await page.click(TAB);
  }
  await expect(page.locator(PANEL)).toBeVisible();
}

/** Select uitest and wait for its details. */
export async function selectSnapshot(page: IJupyterLabPageFixture, name = SNAPSHOT): Promise<void> {
  await openPanel(page);
  await page.click(`${PANEL} li.jp-yolosnap-item[data-name="${name}"]`);
  await expect(page.locator(`${PANEL} .jp-yolosnap-details-title`)).toHaveText(name);
}

/** A build status as the server answers it (GET .../build, or one event-stream message). */
export function buildStatus(state: string, events: object[], extra: object = {}): object {
  return { state, events, next: events.length, error: null, image: null, ...extra };
}

/** An event-stream body of these messages (the connection then ends, as the server's does). */
export function sse(...messages: object[]): string {
  return messages.map((m, i) => `id: ${i + 1}\ndata: ${JSON.stringify(m)}\n\n`).join('');
}

/**
 * The contrast ratio of each selector's colour (`color`, or `fill` for icons) against its effective background
 * (-1: not found), measured from the computed colours (backgrounds composited up the tree, as the eye sees them).
 */
export async function contrasts(
  page: IJupyterLabPageFixture,
  selectors: string[],
  property: 'color' | 'fill' = 'color'
): Promise<Record<string, number>> {
  return page.evaluate(
    ([wanted, prop]) => {
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
        for (let node: Element | null = element; node; node = node.parentElement ?? ((node.getRootNode() as ShadowRoot).host ?? null)) {
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
      for (const selector of wanted as string[]) {
        const element = document.querySelector(selector);
        if (!element) {
          found[selector] = -1;
          continue;
        }
        const back = background(element);
        const style = getComputedStyle(element) as any;
        const fore = over(parse(style[prop as string]), back);
        const [light, dark] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
        found[selector] = Math.round(((light + 0.05) / (dark + 0.05)) * 100) / 100;
      }
      return found;
    },
    [selectors, property] as const
  );
}

export async function expectReadable(
  page: IJupyterLabPageFixture,
  selectors: string[],
  what: string,
  property: 'color' | 'fill' = 'color',
  minimum = AA
): Promise<void> {
  const found = await contrasts(page, selectors, property);
  for (const [selector, ratio] of Object.entries(found)) {
    expect(ratio, `${what}: ${selector} is missing`).toBeGreaterThan(0);
    expect(ratio, `${what}: contrast of ${selector} is ${ratio}:1`).toBeGreaterThanOrEqual(minimum);
  }
}
