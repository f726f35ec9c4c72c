/**
 * The selected snapshot's facts (only those its manifest has) and its package table with a filter box.
 */
import { h } from './dom';
import { Fact, packageRows } from './state';

/** Show at most this many package rows; the filter finds the others. */
const PACKAGE_ROWS = 300;

/** The facts as a definition list; each value carries `data-fact` (its label, lower case). */
export function factList(facts: Fact[]): HTMLDListElement {
  const list = h('dl', 'jp-yolosnap-facts');
  for (const [term, value] of facts) {
    const dd = h('dd', '', value);
    dd.dataset.fact = term.toLowerCase();
    list.append(h('dt', '', term), dd);
  }
  return list;
}

/** A collapsible table of the manifest's packages (name, version, installer) with a filter box. */
export function packageTable(manifest: { [key: string]: any }): HTMLDetailsElement {
  const all = packageRows(manifest);
  const filter = h('input', 'jp-yolosnap-package-filter jp-mod-styled');
  filter.type = 'search';
  filter.placeholder = 'Filter packages';
  filter.setAttribute('aria-label', 'Filter packages');
  const body = h('tbody', '');
  const note = h('div', 'jp-yolosnap-package-note');
  const draw = () => {
    const rows = packageRows(manifest, filter.value);
    body.replaceChildren(
      ...rows.slice(0, PACKAGE_ROWS).map(p => {
        const tr = h('tr', '', h('td', '', p.name), h('td', '', p.version), h('td', '', p.installer));
        tr.dataset.package = p.name;
        return tr;
      })
    );
    note.textContent =
      rows.length === 0
        ? 'No package matches.'
        : rows.length > PACKAGE_ROWS
        ? `${rows.length - PACKAGE_ROWS} more: filter to find them.`
        : '';
    note.hidden = !note.textContent;
  };
  filter.addEventListener('input', draw);
  draw();
  const table = h(
    'table',
    'jp-yolosnap-packages-table',
    h('thead', '', h('tr', '', h('th', '', 'Name'), h('th', '', 'Version'), h('th', '', 'Installer'))),
    body
  );
  const details = h(
    'details',
    'jp-yolosnap-packages',
    h('summary', '', `Packages (${all.length})`),
    filter,
    table,
    note
  );
  return details;
}
