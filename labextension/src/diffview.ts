/**
 * The difference between two environments as HTML: one block per section (in the order of the server's
 * SECTIONS) with its count, each change as the item and "old -> new", readable in a 250 px sidebar. "Changed
 * only" (the default) leaves out the informational `source` section and collapses long sections behind
 * "show N more"; "Show everything" lists every row. DiffWidget shows the same view in the main area.
 */
import { Widget } from '@lumino/widgets';

import { IChange, IDiff } from './types';
import { h, linkButton } from './dom';
import { groupDiff, informationalCount, sectionTitle } from './state';

export class DiffView {
  readonly node = h('div', 'jp-yolosnap-diff');

  /** A message instead of a diff ("Comparing...", "Open a notebook..."). */
  message(text: string): void {
    this._diff = null;
    delete this.node.dataset.identical;
    delete this.node.dataset.cached;
    this.node.replaceChildren(h('div', 'jp-yolosnap-diff-message', text));
  }

  /** Show `diff`; `identicalText` says what "no difference" means here. */
  show(diff: IDiff, identicalText: string): void {
    this._diff = diff;
    this._identicalText = identicalText;
    this.node.dataset.identical = String(diff.identical);
    this.node.dataset.cached = String(!!diff.cached);
    this._draw();
  }

  get diff(): IDiff | null {
    return this._diff;
  }

  get identicalText(): string {
    return this._identicalText;
  }

  private _draw(): void {
    const diff = this._diff;
    if (!diff) {
      return;
    }
    const changes = diff.diff?.changes ?? [];
    const drift = changes.length - informationalCount(changes);
    const nodes: Node[] = [];
    if (diff.identical) {
      nodes.push(h('div', 'jp-yolosnap-diff-message', this._identicalText));
    } else {
      nodes.push(
        h(
          'div',
          'jp-yolosnap-diff-summary',
          `${drift} ${drift === 1 ? 'change' : 'changes'}`,
          h('span', 'jp-yolosnap-diff-labels', ` (${diff.diff.old} \u2192 ${diff.diff.new})`)
        )
      );
    }
    const collapsed = groupDiff(changes, false).some(group => group.hidden > 0);
    if (changes.length > drift || collapsed) {
      const toggle = linkButton(this._all ? 'Changed only' : 'Show everything', 'diff-show-all', () => {
        this._all = !this._all;
        this._draw();
      });
      toggle.setAttribute('aria-pressed', String(this._all));
      nodes.push(toggle);
    }
    for (const group of groupDiff(changes, this._all, this._expanded)) {
      const section = h(
        'section',
        'jp-yolosnap-diff-section',
        h(
          'h5',
          'jp-yolosnap-diff-section-title',
          sectionTitle(group.section),
          h('span', 'jp-yolosnap-count', String(group.count))
        ),
        h('ul', 'jp-yolosnap-changes', ...group.rows.map(change => this._row(change)))
      );
      section.dataset.section = group.section;
      if (group.hidden > 0) {
        section.append(
          linkButton(`show ${group.hidden} more`, 'diff-more', () => {
            this._expanded.add(group.section);
            this._draw();
          })
        );
      }
      nodes.push(section);
    }
    this.node.replaceChildren(...nodes);
  }

  private _row(change: IChange): HTMLLIElement {
    const values = h('div', 'jp-yolosnap-change-values');
    if (change.kind === 'added') {
      values.append(h('span', 'jp-yolosnap-change-kind', 'added '), h('span', 'jp-yolosnap-change-new', change.new ?? ''));
    } else if (change.kind === 'removed') {
      values.append(h('span', 'jp-yolosnap-change-kind', 'removed '), h('span', 'jp-yolosnap-change-old', change.old ?? ''));
    } else {
      values.append(
        h('span', 'jp-yolosnap-change-old', change.old ?? ''),
        h('span', 'jp-yolosnap-change-arrow', ' \u2192 '),
        h('span', 'jp-yolosnap-change-new', change.new ?? '')
      );
    }
    const row = h('li', 'jp-yolosnap-change', h('div', 'jp-yolosnap-change-item', change.item), values);
    row.dataset.kind = change.kind;
    return row;
  }

  private _diff: IDiff | null = null;
  private _identicalText = '';
  private _all = false;
  private _expanded = new Set<string>();
}

/** The same diff in the main area (wrapped in a MainAreaWidget by the panel). */
export class DiffWidget extends Widget {
  constructor(title: string, diff: IDiff, identicalText: string) {
    super();
    this.addClass('jp-yolosnap-diff-main');
    this.title.label = title;
    this.title.closable = true;
    const view = new DiffView();
    view.show(diff, identicalText);
    this.node.append(h('h2', 'jp-yolosnap-diff-main-title', title), view.node);
  }
}
