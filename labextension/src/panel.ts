/**
 * The "Environment snapshots" sidebar: the snapshots of the current notebook's folder, one selected
 * snapshot's details and diff against the notebook's kernel, and Save / Build / Restore / Delete; for a verified
 * snapshot also Export (an archive in the notebook's folder), Push (to a registry) and Kubernetes Job (its YAML).
 */
import { Dialog, InputDialog, ISessionContext, showDialog } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { KernelSpec } from '@jupyterlab/services';
import { IStateDB } from '@jupyterlab/statedb';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  APIError,
  IBuildStatus,
  IDiff,
  IExported,
  IK8sJob,
  IPushed,
  IRestored,
  ISnapshotDetails,
  ISnapshotList,
  ISnapshotSummary,
  requestAPI,
  snapshotPath
} from './api';

const STATE_KEY = 'jupyter-yolosnap:panel';
const BUILD_POLL_MS = 1000;
const BUILD_LOG_LINES = 12;

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
}

/** Small DOM helper: an element with a class, text and children. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.append(...children);
  return node;
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const node = h('button', 'jp-Button jp-mod-styled jp-mod-reject jp-yolosnap-button', label);
  node.title = title;
  node.dataset.action = label.replace(/\W+/g, '-').replace(/-$/, '').toLowerCase();
  node.addEventListener('click', onClick);
  return node;
}

/** A size as the status line shows it: "420 MB", "3.5 MB". */
function megabytes(bytes: number): string {
  const mb = bytes / 1e6;
  return `${mb >= 10 ? Math.round(mb) : mb.toFixed(1)} MB`;
}

function savedText(saved: string): string {
  const date = new Date(saved);
  return isNaN(date.getTime()) ? saved : date.toLocaleString();
}

export class SnapshotPanel extends Widget {
  constructor(options: ISnapshotPanelOptions) {
    super();
    this._tracker = options.tracker;
    this._kernelspecs = options.kernelspecs;
    this._state = options.state;
    this.id = 'yolosnap-panel';
    this.addClass('jp-yolosnap-panel');
    this.title.icon = snapshotIcon;
    this.title.caption = 'Environment snapshots';

    const header = h(
      'div',
      'jp-yolosnap-header',
      h('h2', 'jp-yolosnap-title', 'Environment snapshots'),
      button('Refresh', 'Reload the snapshot list', () => void this.refresh()),
      button('Save current kernel as...', "Snapshot the current notebook's kernel", () => void this.save())
    );
    this._folderNode = h('div', 'jp-yolosnap-folder');
    this._statusNode = h('div', 'jp-yolosnap-status');
    this._statusNode.hidden = true;
    this._errorNode = h('div', 'jp-yolosnap-error');
    this._errorNode.setAttribute('role', 'alert');
    this._errorNode.hidden = true;
    this._listNode = h('ul', 'jp-yolosnap-list');
    this._detailsNode = h('div', 'jp-yolosnap-details');
    this.node.append(header, this._folderNode, this._statusNode, this._errorNode, this._listNode, this._detailsNode);

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

  /** Reload the list (and the selected snapshot's details) for the current notebook's folder. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    const path = notebookFolder(this._tracker.currentWidget);
    this._folderNode.textContent = `Folder: /${path}`;
    try {
      const list = await requestAPI<ISnapshotList>('snapshots', { path });
      if (generation !== this._generation) {
        return;
      }
      this._snapshots = list.snapshots;
      this._project = list.project;
      this._showError(list.engine_error ? `Docker engine: ${list.engine_error}` : '');
      this._renderList();
      await this._renderDetails();
    } catch (error) {
      if (generation === this._generation) {
        this._snapshots = [];
        this._renderList();
        this._detailsNode.replaceChildren();
        this._showError(error);
      }
    }
  }

  /** Select a snapshot (null clears), remembered across reloads; the previous selection's error goes. */
  async select(name: string | null): Promise<void> {
    if (name !== this._selected) {
      this._showError('');
    }
    this._selected = name;
    if (this._state) {
      await this._state.save(STATE_KEY, { selected: name });
    }
    this._renderList();
    await this._renderDetails();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private async _restoreState(restored: Promise<void>): Promise<void> {
    if (!this._state) {
      return;
    }
    try {
      await restored;
      const value = (await this._state.fetch(STATE_KEY)) as { selected?: string | null } | undefined;
      this._selected = value?.selected ?? null;
    } catch (error) {
      this._showError(error);
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

  private _renderList(): void {
    const items = this._snapshots.map(s => this._renderItem(s));
    if (items.length === 0) {
      items.push(
        h('li', 'jp-yolosnap-empty', 'No snapshots here yet: use "Save current kernel as..." or %snapshot save NAME.')
      );
    }
    this._listNode.replaceChildren(...items);
  }

  private _renderItem(s: ISnapshotSummary): HTMLLIElement {
    const state = s.image.state;
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
          `saved ${savedText(s.saved)}`,
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
    item.classList.toggle('jp-mod-selected', s.name === this._selected);
    item.addEventListener('click', () => void this.select(s.name));
    return item;
  }

  private async _renderDetails(): Promise<void> {
    const name = this._selected;
    const summary = this._snapshots.find(s => s.name === name);
    if (!name || !summary) {
      this._detailsNode.replaceChildren();
      return;
    }
    const path = notebookFolder(this._tracker.currentWidget);
    this._buildLog = h('pre', 'jp-yolosnap-buildlog');
    this._buildLog.hidden = !this._building.has(name);
    if (summary.image.state === 'building') {
      void this.follow(name, path);
    }
    const facts = h('dl', 'jp-yolosnap-facts');
    const diff = h('pre', 'jp-yolosnap-diff', 'Comparing with the notebook kernel...');
    // Sharing needs the verified image: offered only for a verified snapshot.
    const share = summary.image.state !== 'verified' ? [] : [h(
      'div',
      'jp-yolosnap-actions jp-yolosnap-share',
      button('Export', "Write this snapshot and its verified image into one .tar.gz in the notebook's folder", () =>
        void this.exportArchive(name)
      ),
      button('Push', "Push this snapshot's verified image (its manifest inside) to a registry", () =>
        void this.push(name)
      ),
      button('Kubernetes Job', 'Show the Kubernetes Job that runs a command in the pushed image', () =>
        void this.k8sJob(name)
      )
    )];
    this._detailsNode.replaceChildren(
      h('h3', 'jp-yolosnap-details-title', name),
      h(
        'div',
        'jp-yolosnap-actions',
        button('Build', "Build and verify this snapshot's image", () => void this.build(name)),
        button('Restore', "Switch the notebook's kernel to one running in this snapshot's image", () =>
          void this.restore(name)
        ),
        button('Delete', 'Delete this snapshot', () => void this.remove(name))
      ),
      ...share,
      this._buildLog,
      facts,
      h('h4', '', 'Difference from the notebook kernel'),
      diff
    );
    const addFact = (term: string, value: string) => {
      const dd = h('dd', '', value);
      dd.dataset.fact = term.toLowerCase();
      facts.append(h('dt', '', term), dd);
    };
    try {
      const details = await requestAPI<ISnapshotDetails>(snapshotPath(name), { path });
      const m = details.manifest ?? {};
      addFact('Saved', savedText(details.saved));
      addFact('Image', `${details.image.state}${details.image.tag ? ` (${details.image.tag})` : ''}`);
      addFact('Kernel', details.kernel_name);
      addFact('Packages', String((m.packages ?? []).length));
      if (m.os?.id) {
        addFact('OS', `${m.os.id} ${m.os.version_id ?? ''}`.trim());
      }
      addFact('Digest', details.digest);
    } catch (error) {
      this._showError(error);
    }
    const kernel = this._tracker.currentWidget?.sessionContext.session?.kernel;
    if (!kernel) {
      diff.textContent = 'Open a notebook with a running kernel to compare.';
      return;
    }
    try {
      const result = await requestAPI<IDiff>(snapshotPath(name, 'diff'), { path, kernel_id: kernel.id });
      diff.textContent = result.identical ? 'Identical to the notebook kernel.' : result.text;
      diff.dataset.identical = String(result.identical);
    } catch (error) {
      if (error instanceof APIError && error.status === 409) {
        // Not a failure: e.g. the kernel itself runs in a snapshot's container, so there is nothing to compare.
        diff.textContent = error.message;
      } else {
        diff.textContent = '';
        this._showError(error);
      }
    }
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

  /** Start building the snapshot's image and follow the build log until it ends. */
  async build(name: string): Promise<void> {
    const path = notebookFolder(this._tracker.currentWidget);
    this._showError('');
    try {
      await requestAPI(snapshotPath(name, 'build'), { path }, { method: 'POST' });
    } catch (error) {
      this._showError(error);
      return;
    }
    await this.follow(name, path);
  }

  /** Poll the build of `name` every second, showing its state and last events, until it is no longer building. */
  async follow(name: string, path: string): Promise<void> {
    if (this._building.has(name)) {
      return;
    }
    this._building.add(name);
    const lines: string[] = [];
    let since = 0;
    let state = 'building';
    let failure = '';
    const began = Date.now();
    try {
      for (;;) {
        const status = await requestAPI<IBuildStatus>(snapshotPath(name, 'build'), { path, since });
        since = status.next;
        state = status.state;
        lines.push(...status.events.map(e => `${e.kind}: ${e.message}`));
        this._showBuild(name, state, lines, began);
        if (state !== 'building') {
          if (state === 'failed') {
            failure = `Build of ${name} failed: ${status.error ?? 'see the log'}`;
          }
          break;
        }
        await new Promise(resolve => setTimeout(resolve, BUILD_POLL_MS));
      }
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    } finally {
      this._building.delete(name);
    }
    await this.refresh();
    this._showBuild(name, state, lines, began);
    if (failure) {
      this._showError(failure);
    }
  }

  private _showBuild(name: string, state: string, lines: string[], began?: number): void {
    if (this._selected !== name || !this._buildLog) {
      return;
    }
    // The head line: the state, the build's current phase and how long it has run.
    const phase = [...lines].reverse().find(line => line.startsWith('phase: '));
    const head = [`build ${state}`];
    if (phase) {
      head.push(phase.slice('phase: '.length));
    }
    if (began !== undefined) {
      head.push(`${Math.round((Date.now() - began) / 1000)} s`);
    }
    this._buildLog.hidden = false;
    this._buildLog.dataset.state = state;
    this._buildLog.textContent = [head.join(' · '), ...lines.slice(-BUILD_LOG_LINES)].join('\n');
    this._buildLog.scrollTop = this._buildLog.scrollHeight; // the log follows its tail: the last line shows
    if (state === 'building') {
      const item = this._listNode.querySelector(`li[data-name="${CSS.escape(name)}"] .jp-yolosnap-state`);
      if (item) {
        item.textContent = 'building';
      }
      const image = this._detailsNode.querySelector<HTMLElement>('dd[data-fact="image"]');
      if (image) {
        image.textContent = 'building';
      }
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

  /** Ask a file name and write the snapshot's archive into the notebook's folder (replacing only when asked). */
  async exportArchive(name: string): Promise<void> {
    const result = await InputDialog.getText({
      title: `Export ${name} to an archive in the notebook's folder`,
      label: 'File name (.tar.gz)',
      text: `${name}.tar.gz`
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const file = result.value.trim();
    const path = notebookFolder(this._tracker.currentWidget);
    this._showError('');
    let replace = false;
    for (;;) {
      this._showStatus(`Exporting ${name} to ${file} (the image is saved and compressed: a minute or so)...`);
      try {
        const exported = await requestAPI<IExported>(
          snapshotPath(name, 'export'),
          { path },
          { method: 'POST', body: JSON.stringify({ file, replace }) }
        );
        this._showStatus(`Exported to ${exported.file} (${megabytes(exported.bytes)})`);
        return;
      } catch (error) {
        this._showStatus('');
        if (!replace && error instanceof APIError && error.status === 409 && /already exists/.test(error.message)) {
          const answer = await showDialog({
            title: 'Replace the archive?',
            body: `${error.message.split(';')[0]}. Replace it?`,
            buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })]
          });
          if (answer.button.accept) {
            replace = true;
            continue;
          }
          return;
        }
        this._showError(error);
        return;
      }
    }
  }

  /** Ask a registry reference and push the snapshot's verified image there; the status names it by digest. */
  async push(name: string): Promise<void> {
    const result = await InputDialog.getText({
      title: `Push ${name} to a registry`,
      label: 'Reference: REGISTRY/REPOSITORY:TAG (log in with docker login first)',
      placeholder: `registry.example.com/team/${name}:latest`
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const reference = result.value.trim();
    this._showError('');
    this._showStatus(`Pushing ${name} to ${reference}...`);
    try {
      const pushed = await requestAPI<IPushed>(
        snapshotPath(name, 'push'),
        { path: notebookFolder(this._tracker.currentWidget) },
        { method: 'POST', body: JSON.stringify({ reference }) }
      );
      this._showStatus(`Pushed ${pushed.reference}: ${pushed.by_digest}`);
    } catch (error) {
      this._showStatus('');
      this._showError(error);
    }
  }

  /** Ask the command and show the Kubernetes Job that runs it in the pushed image (YAML for kubectl apply -f). */
  async k8sJob(name: string): Promise<void> {
    const result = await InputDialog.getText({
      title: `Kubernetes Job for ${name}`,
      label: 'Command to run in the image',
      text: 'python train.py'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    this._showError('');
    let job: IK8sJob;
    try {
      job = await requestAPI<IK8sJob>(snapshotPath(name, 'k8s'), {
        path: notebookFolder(this._tracker.currentWidget),
        command: result.value
      });
    } catch (error) {
      this._showError(error);
      return;
    }
    const body = new Widget({ node: h('pre', 'jp-yolosnap-k8s', job.yaml) });
    const answer = await showDialog({
      title: `Kubernetes Job for ${name} (kubectl apply -f)`,
      body,
      buttons: [Dialog.cancelButton({ label: 'Close' }), Dialog.okButton({ label: 'Copy' })]
    });
    if (answer.button.accept) {
      try {
        await navigator.clipboard.writeText(job.yaml);
        this._showStatus(`Copied the Job of ${name} (kubectl apply -f -)`);
      } catch (error) {
        this._showError(`cannot copy to the clipboard here (${error}); select the YAML and copy it`);
      }
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
      await requestAPI(snapshotPath(name), { path: notebookFolder(this._tracker.currentWidget) }, { method: 'DELETE' });
      if (this._selected === name) {
        await this.select(null);
      }
      await this.refresh();
    } catch (error) {
      this._showError(error);
    }
  }

  /** The snapshots of the last listing. */
  get snapshots(): readonly ISnapshotSummary[] {
    return this._snapshots;
  }

  get project(): string {
    return this._project;
  }

  private _tracker: INotebookTracker;
  private _watched: ISessionContext | null = null;
  private _kernelspecs: KernelSpec.IManager;
  private _state: IStateDB | null;
  private _ready: Promise<void>;
  private _generation = 0;
  private _snapshots: ISnapshotSummary[] = [];
  private _project = '';
  private _selected: string | null = null;
  private _building = new Set<string>();
  private _buildLog: HTMLPreElement | null = null;
  private _folderNode: HTMLDivElement;
  private _errorNode: HTMLDivElement;
  private _statusNode: HTMLDivElement;
  private _listNode: HTMLUListElement;
  private _detailsNode: HTMLDivElement;
}
