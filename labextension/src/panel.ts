/**
 * The "Environment snapshots" sidebar: a toolbar (Refresh, Save current kernel as...), a search box over the
 * snapshots of the current notebook's folder, and the selected snapshot's actions (Build, Cancel, Restore,
 * Delete; Export, Push, Kubernetes Job once verified), build progress, facts, packages and its difference from
 * the notebook kernel, another snapshot or an earlier revision. The pure state handling is in state.ts.
 */
import { Dialog, InputDialog, ISessionContext, showDialog } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { KernelSpec } from '@jupyterlab/services';
import { IStateDB } from '@jupyterlab/statedb';
import {
  addIcon,
  buildIcon,
  deleteIcon,
  downloadIcon,
  fileUploadIcon,
  kernelIcon,
  LabIcon,
  launchIcon,
  refreshIcon,
  settingsIcon,
  stopIcon,
  tabIcon,
  Toolbar,
  ToolbarButton
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';

import {
  APIError,
  IBuildOptions,
  IBuildStatus,
  IDiff,
  IHistory,
  IRestored,
  ISnapshotDetails,
  ISnapshotList,
  ISnapshotSummary,
  requestAPI,
  snapshotPath
} from './api';
import { BuildFollower, BuildOptionsBody, BuildView } from './buildview';
import { factList, packageTable } from './details';
import { FailureView } from './failureview';
import { DiffView, DiffWidget } from './diffview';
import { h, timeText } from './dom';
import { exportArchive, IShareUI, k8sJob, push } from './share';
import {
  compareChoices,
  failureOf,
  filterSnapshots,
  Generation,
  groupChoices,
  IBuildProgress,
  ICompareChoice,
  keepSelection,
  manifestFacts,
  packageNames,
  rowState
} from './state';

const STATE_KEY = 'jupyter-yolosnap:panel';

export const snapshotIcon = new LabIcon({
  name: 'jupyter-yolosnap:snapshot',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M12 2 3 7v10l9 5 9-5V7l-9-5zm0 2.3 6.6 3.7L12 11.7 5.4 8 12 4.3zM5 ' +
    '9.7l6 3.4v6.6l-6-3.4V9.7zm8 10v-6.6l6-3.4v6.6l-6 3.4z"/></svg>'
});

/** The notebook folder a request is about: the current notebook's folder, else the server root. */
export function notebookFolder(panel: NotebookPanel | null): string {
  return panel ? PathExt.dirname(panel.context.path) : '';
}

export interface ISnapshotPanelOptions {
  tracker: INotebookTracker;
  kernelspecs: KernelSpec.IManager;
  state: IStateDB | null;
  /** Resolves once the workspace (and so the state database) is loaded: `app.restored`. */
  restored: Promise<void>;
  /** Show a widget in the main area (the diff's "Open in main area"). */
  openInMain?: (widget: Widget) => void;
}

/** A toolbar button with an icon (and a label when given); `data-action` names it for tests and styles. */
function toolButton(
  action: string,
  icon: LabIcon,
  tooltip: string,
  onClick: () => void,
  label?: string
): ToolbarButton {
  return new ToolbarButton({ icon, tooltip, label, onClick, dataset: { action } });
}

/** A plain button that looks like a toolbar button (for places that are DOM, not widgets). */
function iconButton(action: string, icon: LabIcon, label: string, title: string, onClick: () => void): HTMLButtonElement {
  const node = h('button', 'jp-yolosnap-iconbutton', icon.element({ tag: 'span', className: 'jp-yolosnap-icon' }), label);
  node.type = 'button';
  node.dataset.action = action;
  node.title = title;
  node.addEventListener('click', onClick);
  return node;
}

export class SnapshotPanel extends Panel {
  constructor(options: ISnapshotPanelOptions) {
    super();
    this._tracker = options.tracker;
    this._kernelspecs = options.kernelspecs;
    this._state = options.state;
    this._openInMain = options.openInMain ?? null;
    this.id = 'yolosnap-panel';
    this.addClass('jp-yolosnap-panel');
    this.title.icon = snapshotIcon;
    this.title.caption = 'Environment snapshots';

    const head = new Widget({ node: h('div', 'jp-yolosnap-header', h('h2', 'jp-yolosnap-title', 'Environment snapshots')) });
    const toolbar = new Toolbar();
    toolbar.addClass('jp-yolosnap-toolbar');
    toolbar.addItem('refresh', toolButton('refresh', refreshIcon, 'Reload the snapshot list', () => void this.refresh()));
    toolbar.addItem(
      'save',
      toolButton('save-current-kernel-as', addIcon, "Save current kernel as... (snapshot the notebook's kernel)", () =>
        void this.save(), 'Save kernel as...')
    );

    this._folderNode = h('div', 'jp-yolosnap-folder');
    this._statusNode = h('div', 'jp-yolosnap-status');
    this._statusNode.hidden = true;
    this._errorNode = h('div', 'jp-yolosnap-error');
    this._errorNode.setAttribute('role', 'alert');
    this._errorNode.hidden = true;
    this._searchNode = h('input', 'jp-yolosnap-search jp-mod-styled');
    this._searchNode.type = 'search';
    this._searchNode.placeholder = 'Filter snapshots';
    this._searchNode.title = 'Filter the snapshots by name, Python, torch, CUDA, GPU, image state or package';
    this._searchNode.setAttribute('aria-label', 'Filter snapshots');
    this._searchNode.addEventListener('input', () => {
      this._renderList();
      void this._readPackages();
    });
    this._listNode = h('ul', 'jp-yolosnap-list');
    this._listNode.setAttribute('role', 'listbox');
    this._listNode.setAttribute('aria-label', 'Snapshots');
    const body = new Widget({
      node: h('div', 'jp-yolosnap-body', this._folderNode, this._statusNode, this._errorNode, this._searchNode, this._listNode)
    });

    this._titleNode = h('h3', 'jp-yolosnap-details-title');
    this._detailsHead = new Widget({ node: this._titleNode });
    this._actions = new Toolbar();
    this._actions.addClass('jp-yolosnap-actions');
    const act = (action: string, icon: LabIcon, tooltip: string, run: (name: string) => void, label?: string) => {
      const button = toolButton(action, icon, tooltip, () => this._selected && run(this._selected), label);
      this._actions.addItem(action, button);
      return button;
    };
    this._buildButton = act('build', buildIcon, "Build and verify this snapshot's image", n => void this.build(n), 'Build');
    this._cancelButton = act('cancel', stopIcon, 'Cancel the running build', n => void this.cancel(n), 'Cancel');
    act('build-options', settingsIcon, 'Build with options (strategy, base image)...', n => void this.buildWithOptions(n));
    this._restoreButton = act(
      'restore',
      kernelIcon,
      "Switch the notebook's kernel to one running in this snapshot's image",
      n => void this.restore(n),
      'Restore'
    );
    act('delete', deleteIcon, 'Delete this snapshot', n => void this.remove(n));
    // Sharing needs the verified image: offered only for a verified snapshot.
    this._shareButtons = [
      act('export', downloadIcon, "Export: write this snapshot and its verified image into one .tar.gz in the notebook's folder",
        n => void exportArchive(n, this._shareUI()), 'Export'),
      act('push', fileUploadIcon, "Push this snapshot's verified image (its manifest inside) to a registry",
        n => void push(n, this._shareUI()), 'Push'),
      act('kubernetes-job', launchIcon, 'Kubernetes Job: show the Job that runs a command in the pushed image',
        n => void k8sJob(n, this._shareUI()))
    ];
    this._shareButtons.forEach(b => b.addClass('jp-yolosnap-share'));

    this._failureView = new FailureView(
      key => {
        this._dismissed.add(key);
        void this._saveState();
        this._renderState();
      },
      name => this._failureLog(name)
    );
    this._buildView = new BuildView();
    this._factsNode = h('div', 'jp-yolosnap-factbox');
    this._compareNode = h('select', 'jp-yolosnap-compare jp-mod-styled');
    this._compareNode.setAttribute('aria-label', 'Compare with');
    this._compareNode.addEventListener('change', () => {
      this._against = this._compareNode.value;
      void this._renderDiff();
    });
    this._diffView = new DiffView();
    this._openButton = iconButton('diff-open-main', tabIcon, 'Open in main area', 'Open this difference in the main area',
      () => this._openDiffInMain());
    const diffHead = h(
      'div',
      'jp-yolosnap-diff-head',
      h('h4', '', 'Difference from'),
      this._compareNode,
      this._openButton
    );
    this._detailsBody = new Widget({
      node: h(
        'div',
        'jp-yolosnap-details',
        this._failureView.node,
        this._buildView.node,
        this._factsNode,
        diffHead,
        this._diffView.node
      )
    });
    for (const widget of [head, toolbar, body, this._detailsHead, this._actions, this._detailsBody]) {
      this.addWidget(widget);
    }
    this._showDetails(false);

    // The diff follows the current notebook's kernel: a notebook switched to, and its kernel starting or changing
    // after the switch (a new notebook's kernel starts a moment after it becomes current).
    this._tracker.currentChanged.connect(() => {
      this._watchKernel();
      void this.refresh();
    }, this);
    this._watchKernel();
    this._ready = this._restoreState(options.restored).then(() => this.refresh());
  }

  /** Resolves after the first listing. */
  get ready(): Promise<void> {
    return this._ready;
  }

  get selected(): string | null {
    return this._selected;
  }

  /** The snapshots of the last listing. */
  get snapshots(): readonly ISnapshotSummary[] {
    return this._snapshots;
  }

  get project(): string {
    return this._project;
  }

  dispose(): void {
    this._followers.forEach(f => f.dispose());
    window.clearInterval(this._ticker);
    super.dispose();
  }

  /** Reload the list (and the selected snapshot's details) for the current notebook's folder. */
  async refresh(): Promise<void> {
    const generation = this._listGeneration.next();
    const path = this._path();
    this._folderNode.textContent = `Folder: /${path}`;
    try {
      const list = await requestAPI<ISnapshotList>('snapshots', { path });
      if (!this._listGeneration.isCurrent(generation)) {
        return;
      }
      this._snapshots = list.snapshots;
      this._project = list.project;
      // A snapshot deleted meanwhile (another page, the CLI) is no longer selected; not saved, so a notebook of
      // another folder does not lose the remembered selection.
      this._selected = keepSelection(this._selected, list.snapshots.map(s => s.name));
      this._showError(list.engine_error ? `Docker engine: ${list.engine_error}` : '');
      for (const s of list.snapshots) {
        if (s.image.state === 'building') {
          this._follow(s.name, path); // a build started elsewhere (another page, the CLI through this server)
        }
      }
      this._renderList();
      await this._renderDetails();
    } catch (error) {
      if (this._listGeneration.isCurrent(generation)) {
        this._snapshots = [];
        this._renderList();
        this._showDetails(false);
        this._showError(error);
      }
    }
  }

  /** Select a snapshot (null clears), remembered across reloads; the previous selection's error goes. */
  async select(name: string | null): Promise<void> {
    if (name !== this._selected) {
      this._showError('');
      this._against = '';
    }
    this._selected = name;
    await this._saveState();
    this._renderList();
    await this._renderDetails();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private _path(): string {
    return notebookFolder(this._tracker.currentWidget);
  }

  private _shareUI(): IShareUI {
    return { path: this._path(), status: text => this._showStatus(text), error: error => this._showError(error) };
  }

  private async _restoreState(restored: Promise<void>): Promise<void> {
    if (!this._state) {
      return;
    }
    try {
      await restored;
      const value = (await this._state.fetch(STATE_KEY)) as { selected?: string | null; dismissed?: string[] } | undefined;
      this._selected = value?.selected ?? null;
      this._dismissed = new Set(Array.isArray(value?.dismissed) ? value!.dismissed : []);
    } catch (error) {
      this._showError(error);
    }
  }

  private async _saveState(): Promise<void> {
    if (this._state) {
      const dismissed = [...this._dismissed].slice(-50); // the latest are enough
      await this._state.save(STATE_KEY, { selected: this._selected, dismissed });
    }
  }

  /** Follow the current notebook's session: when its kernel changes, the details (and the diff) are redone. */
  private _watchKernel(): void {
    const context = this._tracker.currentWidget?.sessionContext ?? null;
    if (context === this._watched) {
      return;
    }
    this._watched?.kernelChanged.disconnect(this._onKernelChanged, this);
    this._watched = context;
    this._watched?.kernelChanged.connect(this._onKernelChanged, this);
  }

  private _onKernelChanged(): void {
    this._renderList(); // the "running here" badge moves with the kernel
    void this._renderDetails();
  }

  /** A line saying what the panel is waiting for ('' hides it). */
  private _showStatus(text: string): void {
    this._statusNode.textContent = text;
    this._statusNode.hidden = !text;
  }

  private _showError(error: unknown): void {
    const text = error ? (error instanceof Error ? error.message : String(error)) : '';
    this._errorNode.textContent = text;
    this._errorNode.hidden = !text;
  }

  private _showDetails(visible: boolean): void {
    this._detailsHead.setHidden(!visible);
    this._actions.setHidden(!visible);
    this._detailsBody.setHidden(!visible);
  }

  private _renderList(): void {
    const query = this._searchNode.value;
    const packages = new Map<string, string[]>();
    for (const s of this._snapshots) {
      packages.set(s.name, this._packageNames.get(s.digest) ?? []);
    }
    const shown = filterSnapshots(this._snapshots, query, packages);
    const items = shown.map(s => this._renderItem(s));
    if (this._snapshots.length === 0) {
      items.push(
        h('li', 'jp-yolosnap-empty', 'No snapshots here yet: use "Save kernel as..." or %snapshot save NAME.')
      );
    } else if (items.length === 0) {
      items.push(h('li', 'jp-yolosnap-empty', `No snapshot matches "${query.trim()}".`));
    }
    this._searchNode.hidden = this._snapshots.length === 0 && !query;
    this._listNode.replaceChildren(...items);
  }

  /** The package names of the listed snapshots not read yet (once per manifest digest), for the search box. */
  private async _readPackages(): Promise<void> {
    const path = this._path();
    const unread = this._snapshots.filter(s => !this._packageNames.has(s.digest) && !this._reading.has(s.digest));
    if (!this._searchNode.value.trim() || unread.length === 0) {
      return;
    }
    unread.forEach(s => this._reading.add(s.digest));
    await Promise.all(
      unread.map(async s => {
        try {
          const details = await requestAPI<ISnapshotDetails>(snapshotPath(s.name), { path });
          this._packageNames.set(details.digest, packageNames(details.manifest ?? {}));
        } catch {
          // an unreadable snapshot is found by its name and facts only
        } finally {
          this._reading.delete(s.digest);
        }
      })
    );
    this._renderList();
  }

  private _renderItem(s: ISnapshotSummary): HTMLLIElement {
    const state = rowState(s, this._progress.get(s.name) ?? null);
    // The snapshot the current notebook's kernel runs in (a restored kernel is yolosnap-NAME), by name.
    const here = this._tracker.currentWidget?.sessionContext.session?.kernel?.name === s.kernel_name;
    const item = h(
      'li',
      'jp-yolosnap-item',
      h(
        'div',
        'jp-yolosnap-item-head',
        h('span', 'jp-yolosnap-name', s.name),
        h(
          'span',
          'jp-yolosnap-badges',
          ...(here ? [h('span', 'jp-yolosnap-here', 'running here')] : []),
          h('span', `jp-yolosnap-state jp-yolosnap-state-${state.replace(' ', '-')}`, state)
        )
      ),
      h(
        'div',
        'jp-yolosnap-meta',
        // Only the facts there are: a CPU snapshot says nothing of torch, CUDA or GPUs.
        [
          `saved ${timeText(s.saved)}`,
          `Python ${s.python ?? '?'}`,
          s.torch ? `torch ${s.torch}` : '',
          s.cuda ? `CUDA ${s.cuda}` : '',
          s.gpu ? `GPU ${s.gpu}` : ''
        ]
          .filter(Boolean)
          .join(' · ')
      )
    );
    item.dataset.name = s.name;
    item.dataset.state = state;
    item.tabIndex = 0;
    item.setAttribute('role', 'option');
    item.setAttribute('aria-selected', String(s.name === this._selected));
    item.classList.toggle('jp-mod-selected', s.name === this._selected);
    item.addEventListener('click', () => void this.select(s.name));
    item.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        void this.select(s.name);
      }
    });
    return item;
  }

  /** The selected snapshot's summary with what this page knows better (a build running here). */
  private _summary(name: string | null): ISnapshotSummary | null {
    const summary = this._snapshots.find(s => s.name === name);
    if (!summary) {
      return null;
    }
    const progress = this._progress.get(summary.name);
    return progress?.state === 'building' ? { ...summary, image: { ...summary.image, state: 'building' } } : summary;
  }

  /** Buttons, failure and build progress of the selected snapshot, from what is known now (no request). */
  private _renderState(): void {
    const summary = this._summary(this._selected);
    if (!summary) {
      return;
    }
    const progress = this._progress.get(summary.name) ?? null;
    const building = progress?.state === 'building' || summary.image.state === 'building';
    this._buildButton.enabled = !building;
    this._restoreButton.enabled = !building;
    this._cancelButton.setHidden(!building);
    this._shareButtons.forEach(b => b.setHidden(summary.image.state !== 'verified'));
    const failure = failureOf(summary, progress, this._dismissed);
    this._failureView.show(failure);
    // A failed build shows once: in the failure box (its log tail behind "Details"), not again as a log.
    this._buildView.show(failure || progress?.state === 'failed' ? null : progress);
    const image = this._factsNode.querySelector<HTMLElement>('dd[data-fact="image"]');
    if (image && building) {
      image.textContent = 'building';
    }
  }

  /** The log tail of a failure this page did not watch: what the server still has of it. */
  private async _failureLog(name: string): Promise<string[]> {
    const status = await requestAPI<IBuildStatus>(snapshotPath(name, 'build'), { path: this._path(), since: 0 });
    return status.events.map(e => e.message);
  }

  private async _renderDetails(): Promise<void> {
    const generation = this._detailsGeneration.next();
    const name = this._selected;
    const summary = this._summary(name);
    if (!name || !summary) {
      this._showDetails(false);
      return;
    }
    this._showDetails(true);
    this._titleNode.textContent = name;
    this._renderState();
    const path = this._path();
    try {
      const [details, history] = await Promise.all([
        requestAPI<ISnapshotDetails>(snapshotPath(name), { path }),
        requestAPI<IHistory>(snapshotPath(name, 'history'), { path }).catch(() => ({ revisions: [] }) as IHistory)
      ]);
      if (!this._detailsGeneration.isCurrent(generation)) {
        return;
      }
      const manifest = details.manifest ?? {};
      this._packageNames.set(details.digest, packageNames(manifest));
      const open = this._factsNode.querySelector('details')?.open ?? false;
      const packages = packageTable(manifest);
      packages.open = open;
      this._factsNode.replaceChildren(factList(manifestFacts(manifest, this._summary(name) ?? details)), packages);
      this._renderCompare(name, history);
      this._renderState();
    } catch (error) {
      if (this._detailsGeneration.isCurrent(generation)) {
        this._factsNode.replaceChildren();
        this._showError(error);
      }
    }
    await this._renderDiff();
  }

  /** The compare choices: the notebook kernel, the other snapshots, this snapshot's earlier revisions. */
  private _renderCompare(name: string, history: IHistory): void {
    const choices = compareChoices(name, this._snapshots.map(s => s.name), history.revisions);
    const option = (choice: ICompareChoice) => {
      const node = h('option', '', choice.revision ? `${choice.text} · ${timeText(choice.revision.saved)}` : choice.text);
      node.value = choice.ref;
      return node;
    };
    const nodes: HTMLElement[] = [];
    for (const [label, group] of groupChoices(choices)) {
      if (label) {
        const node = h('optgroup', '', ...group.map(option));
        node.label = label;
        nodes.push(node);
      } else {
        nodes.push(...group.map(option));
      }
    }
    if (!choices.some(c => c.ref === this._against)) {
      this._against = '';
    }
    this._compareNode.replaceChildren(...nodes);
    this._compareNode.value = this._against;
  }

  /** The diff of the selected snapshot against the chosen environment ("Open in main area" once there is one). */
  private async _renderDiff(): Promise<void> {
    this._openButton.disabled = true;
    await this._fetchDiff();
    this._openButton.disabled = !this._diffView.diff;
  }

  private async _fetchDiff(): Promise<void> {
    const generation = this._diffGeneration.next();
    const name = this._selected;
    if (!name) {
      return;
    }
    const against = this._against;
    const query: { [key: string]: string | undefined } = { path: this._path() };
    let identicalText = `Identical to ${against}.`;
    if (against) {
      query.against = against;
    } else {
      const kernel = this._tracker.currentWidget?.sessionContext.session?.kernel;
      if (!kernel) {
        this._diffView.message('Open a notebook with a running kernel to compare.');
        return;
      }
      query.kernel_id = kernel.id;
      identicalText = 'Identical to the notebook kernel.';
    }
    this._diffView.message(against ? `Comparing with ${against}...` : 'Comparing with the notebook kernel...');
    try {
      const result = await requestAPI<IDiff>(snapshotPath(name, 'diff'), query);
      if (this._diffGeneration.isCurrent(generation)) {
        this._diffView.show(result, identicalText);
      }
    } catch (error) {
      if (!this._diffGeneration.isCurrent(generation)) {
        return;
      }
      if (error instanceof APIError && error.status === 409) {
        // Not a failure: e.g. the kernel itself runs in a snapshot's container, so there is nothing to compare.
        this._diffView.message(error.message);
      } else {
        this._diffView.message('');
        this._showError(error);
      }
    }
  }

  private _openDiffInMain(): void {
    const diff = this._diffView.diff;
    if (!diff || !this._openInMain) {
      return;
    }
    const against = this._against || 'the notebook kernel';
    this._openInMain(new DiffWidget(`${this._selected} vs ${against}`, diff, this._diffView.identicalText));
  }

  /** Ask a name and snapshot the current notebook's kernel under it. */
  async save(): Promise<void> {
    const notebook = this._tracker.currentWidget;
    const kernel = notebook?.sessionContext.session?.kernel;
    if (!notebook || !kernel) {
      this._showError('Open a notebook with a running kernel first.');
      return;
    }
    const result = await InputDialog.getText({
      title: "Save the notebook's kernel environment as",
      placeholder: 'snapshot name, e.g. train'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const name = result.value.trim();
    this._showError('');
    this._showStatus(`Saving ${name}: capturing the kernel's environment...`);
    try {
      await requestAPI<ISnapshotSummary>(
        'snapshots',
        { path: notebookFolder(notebook) },
        { method: 'POST', body: JSON.stringify({ name, kernel_id: kernel.id }) }
      );
      this._showStatus('');
      await this.select(name);
      await this.refresh();
    } catch (error) {
      this._showStatus('');
      this._showError(error);
    }
  }

  /** Ask the build options, then build with them. */
  async buildWithOptions(name: string): Promise<void> {
    const answer = await showDialog({
      title: `Build ${name} with options`,
      body: new BuildOptionsBody(),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Build' })]
    });
    if (answer.button.accept && answer.value) {
      await this.build(name, answer.value);
    }
  }

  /** Start building the snapshot's image (with `options` as the JSON body) and follow it until it ends. */
  async build(name: string, options?: IBuildOptions): Promise<void> {
    const path = this._path();
    this._showError('');
    try {
      const init: RequestInit = { method: 'POST' };
      if (options && Object.keys(options).length) {
        init.body = JSON.stringify(options);
      }
      await requestAPI(snapshotPath(name, 'build'), { path }, init);
    } catch (error) {
      this._showError(error);
      return;
    }
    this._progress.delete(name);
    await this._follow(name, path, true)?.done;
  }

  /** Cancel the running build (the server answers once it stopped). */
  async cancel(name: string): Promise<void> {
    this._cancelButton.enabled = false;
    try {
      await requestAPI(snapshotPath(name, 'build'), { path: this._path() }, { method: 'DELETE' });
    } catch (error) {
      this._showError(error);
    } finally {
      this._cancelButton.enabled = true;
    }
  }

  /** Follow the build of `name` (once per snapshot); returns the follower. */
  private _follow(name: string, path: string, fresh = false): BuildFollower | null {
    const current = this._followers.get(name);
    if (current && !fresh) {
      return current;
    }
    current?.dispose();
    const follower = new BuildFollower(name, path, progress => this._onProgress(name, progress));
    this._followers.set(name, follower);
    this._progress.set(name, follower.progress);
    this._renderList();
    this._renderState();
    if (!this._ticker) {
      this._ticker = window.setInterval(() => this._buildView.tick(), 1000);
    }
    void follower.done.then(async () => {
      if (this._followers.get(name) === follower) {
        this._followers.delete(name);
      }
      if (this._followers.size === 0) {
        window.clearInterval(this._ticker);
        this._ticker = 0;
      }
      await this.refresh();
    });
    return follower;
  }

  private _onProgress(name: string, progress: IBuildProgress): void {
    const before = this._progress.get(name)?.state;
    this._progress.set(name, progress);
    this._buildView.node.dataset.transport = this._followers.get(name)?.transport ?? '';
    if (before !== progress.state) {
      this._renderList();
    }
    if (this._selected === name) {
      this._renderState();
    }
  }

  /** Install the snapshot's kernelspec and switch the current notebook to it. */
  async restore(name: string): Promise<void> {
    const notebook = this._tracker.currentWidget;
    if (!notebook) {
      this._showError('Open a notebook to restore the snapshot into.');
      return;
    }
    this._showError('');
    this._showStatus(`Restoring ${name}: preparing its kernel image (the first time adds ipykernel)...`);
    try {
      const restored = await requestAPI<IRestored>(
        snapshotPath(name, 'restore'),
        { path: notebookFolder(notebook) },
        { method: 'POST' }
      );
      await this._kernelspecs.refreshSpecs();
      this._showStatus(`Restoring ${name}: starting ${restored.display_name}...`);
      await notebook.sessionContext.changeKernel({ name: restored.kernel_name });
      this._showStatus('');
      await this.refresh();
    } catch (error) {
      this._showStatus('');
      this._showError(error);
    }
  }

  /** Delete the snapshot after a confirmation. */
  async remove(name: string): Promise<void> {
    const answer = await showDialog({
      title: 'Delete snapshot',
      body: `Delete the snapshot "${name}" (its snapshot.json and history)?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(snapshotPath(name), { path: this._path() }, { method: 'DELETE' });
      if (this._selected === name) {
        await this.select(null);
      }
      await this.refresh();
    } catch (error) {
      this._showError(error);
    }
  }

  private _tracker: INotebookTracker;
  private _watched: ISessionContext | null = null;
  private _kernelspecs: KernelSpec.IManager;
  private _state: IStateDB | null;
  private _openInMain: ((widget: Widget) => void) | null;
  private _ready: Promise<void>;
  private _listGeneration = new Generation();
  private _detailsGeneration = new Generation();
  private _diffGeneration = new Generation();
  private _snapshots: ISnapshotSummary[] = [];
  private _project = '';
  private _selected: string | null = null;
  /** What the diff compares with: '' the notebook kernel, else a snapshot name or NAME@N. */
  private _against = '';
  private _dismissed = new Set<string>();
  /** Package names by manifest digest, for the search box. */
  private _packageNames = new Map<string, string[]>();
  private _reading = new Set<string>();
  private _followers = new Map<string, BuildFollower>();
  private _progress = new Map<string, IBuildProgress>();
  private _ticker = 0;
  private _folderNode: HTMLDivElement;
  private _errorNode: HTMLDivElement;
  private _statusNode: HTMLDivElement;
  private _searchNode: HTMLInputElement;
  private _listNode: HTMLUListElement;
  private _titleNode: HTMLHeadingElement;
  private _detailsHead: Widget;
  private _actions: Toolbar;
  private _buildButton: ToolbarButton;
  private _cancelButton: ToolbarButton;
  private _restoreButton: ToolbarButton;
  private _shareButtons: ToolbarButton[];
  private _detailsBody: Widget;
  private _failureView: FailureView;
  private _buildView: BuildView;
  private _factsNode: HTMLDivElement;
  private _compareNode: HTMLSelectElement;
  private _diffView: DiffView;
  private _openButton: HTMLButtonElement;
}
