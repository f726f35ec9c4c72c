/** Small DOM helpers shared by the panel's views. */

/** An element with a class, text and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.append(...children);
  return node;
}

/** A small borderless text button (inside the details: toggles, "show N more", dismiss). */
export function linkButton(label: string, action: string, onClick: () => void, title = ''): HTMLButtonElement {
  const node = h('button', 'jp-yolosnap-link', label);
  node.type = 'button';
  node.dataset.action = action;
  if (title) {
    node.title = title;
  }
  node.addEventListener('click', onClick);
  return node;
}

/** A time as the panel shows it: the browser's locale, or the text itself when it is not a date. */
export function timeText(iso: string): string {
  const date = new Date(iso);
  return isNaN(date.getTime()) ? iso : date.toLocaleString();
}
