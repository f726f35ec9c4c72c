/**
 * jupyter-yolosnap: the "Environment snapshots" sidebar and the "Run Selected Cells in Snapshot..." command.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker } from '@jupyterlab/notebook';
import { OutputArea } from '@jupyterlab/outputarea';
import { IStateDB } from '@jupyterlab/statedb';

import { ISnapshotList, requestAPI } from './api';
import { notebookFolder, SnapshotPanel, snapshotIcon } from './panel';

const RUN_IN_SNAPSHOT = 'yolosnap:run-selected-in-snapshot';

/** Loads the IPython extension that provides %%in_env (silently, once per kernel is enough but harmless again). */
const LOAD_EXTENSION = "get_ipython().extension_manager.load_extension('jupyter_yolosnap')";

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-yolosnap:plugin',
  description: 'Environment snapshots sidebar: list, build, restore and run cells in snapshots.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, IStateDB, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    state: IStateDB | null,
    palette: ICommandPalette | null
  ) => {
    let diffs = 0;
    const panel = new SnapshotPanel({
      tracker,
      kernelspecs: app.serviceManager.kernelspecs,
      state,
      restored: app.restored,
      openInMain: content => {
        const widget = new MainAreaWidget({ content });
        widget.id = `yolosnap-diff-${++diffs}`;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'yolosnap-panel');
    }

    app.commands.addCommand(RUN_IN_SNAPSHOT, {
      label: 'Run Selected Cells in Snapshot...',
      caption: "Run the selected code cells inside a snapshot's container (%%in_env)",
      icon: snapshotIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        try {
          await runSelectedInSnapshot(tracker, panel);
        } catch (error) {
          await showErrorMessage('Run in snapshot', error as Error);
        }
      }
    });
    if (palette) {
      palette.addItem({ command: RUN_IN_SNAPSHOT, category: 'Environment snapshots' });
    }
    app.contextMenu.addItem({ command: RUN_IN_SNAPSHOT, selector: '.jp-Notebook .jp-Cell', rank: 20 });
  }
};

/**
 * Ask which snapshot, then run every selected code cell as `%%in_env NAME` through the notebook's own
 * kernel, so the container's outputs land under those cells.
 */
async function runSelectedInSnapshot(tracker: INotebookTracker, panel: SnapshotPanel): Promise<void> {
  const notebook = tracker.currentWidget;
  if (!notebook) {
    return;
  }
  const list = await requestAPI<ISnapshotList>('snapshots', { path: notebookFolder(notebook) });
  const names = list.snapshots.map(s => s.name);
  if (names.length === 0) {
    throw new Error(`No snapshots in ${list.project || 'this folder'}: save one first.`);
  }
  const choice = await InputDialog.getItem({
    title: 'Run selected cells in snapshot',
    items: names,
    current: Math.max(0, names.indexOf(panel.selected ?? ''))
  });
  if (!choice.button.accept || !choice.value) {
    return;
  }
  const name = choice.value;
  const cells = notebook.content.widgets.filter(
    cell => cell.model.type === 'code' && notebook.content.isSelectedOrActive(cell)
  ) as CodeCell[];

  const sessionContext = notebook.sessionContext;
  await sessionContext.ready;
  const kernel = sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('The notebook has no running kernel.');
  }
  const load = await kernel.requestExecute({ code: LOAD_EXTENSION, silent: true, store_history: false }).done;
  if (load.content.status === 'error') {
    throw new Error(`Cannot load jupyter_yolosnap in this kernel: ${load.content.ename}: ${load.content.evalue}`);
  }
  for (const cell of cells) {
    const code = `%%in_env ${name}\n${cell.model.sharedModel.getSource()}`;
    cell.model.sharedModel.transact(() => cell.model.clearExecution());
    const reply = await OutputArea.execute(code, cell.outputArea, sessionContext);
    if (reply) {
      cell.model.executionCount = reply.content.execution_count;
      if (reply.content.status !== 'ok') {
        break;
      }
    }
  }
}

export default plugin;
