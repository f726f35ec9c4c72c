/**
 * Sharing a verified snapshot: Export (an archive in the notebook's folder), Push (to a registry) and the
 * Kubernetes Job that runs a command in the pushed image. Each asks its input in a dialog and reports through
 * the panel's status and error lines.
 */
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { APIError, IExported, IK8sJob, IPushed, requestAPI, snapshotPath } from './api';
import { h } from './dom';

/** Where the panel shows what a share action is doing. */
export interface IShareUI {
  /** The notebook folder the request is about. */
  path: string;
  /** A line saying what is happening ('' hides it). */
  status(text: string): void;
  /** An error line ('' hides it). */
  error(error: unknown): void;
}

/** A size as the status line shows it: "420 MB", "3.5 MB". */
function megabytes(bytes: number): string {
  const mb = bytes / 1e6;
  return `${mb >= 10 ? Math.round(mb) : mb.toFixed(1)} MB`;
}

/** Ask a file name and write the snapshot's archive into the notebook's folder (replacing only when asked). */
export async function exportArchive(name: string, ui: IShareUI): Promise<void> {
  const result = await InputDialog.getText({
    title: `Export ${name} to an archive in the notebook's folder`,
    label: 'File name (.tar.gz)',
    text: `${name}.tar.gz`
  });
  if (!result.button.accept || !result.value) {
    return;
  }
  const file = result.value.trim();
  const path = ui.path;
  ui.error('');
  let replace = false;
  for (;;) {
    ui.status(`Exporting ${name} to ${file} (the image is saved and compressed: a minute or so)...`);
    try {
      const exported = await requestAPI<IExported>(
        snapshotPath(name, 'export'),
        { path },
        { method: 'POST', body: JSON.stringify({ file, replace }) }
      );
      ui.status(`Exported to ${exported.file} (${megabytes(exported.bytes)})`);
      return;
    } catch (error) {
      ui.status('');
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
      ui.error(error);
      return;
    }
  }
}

/** Ask a registry reference and push the snapshot's verified image there; the status names it by digest. */
export async function push(name: string, ui: IShareUI): Promise<void> {
  const result = await InputDialog.getText({
    title: `Push ${name} to a registry`,
    label: 'Reference: REGISTRY/REPOSITORY:TAG (log in with docker login first)',
    placeholder: `registry.example.com/team/${name}:latest`
  });
  if (!result.button.accept || !result.value) {
    return;
  }
  const reference = result.value.trim();
  ui.error('');
  ui.status(`Pushing ${name} to ${reference}...`);
  try {
    const pushed = await requestAPI<IPushed>(
      snapshotPath(name, 'push'),
      { path: ui.path },
      { method: 'POST', body: JSON.stringify({ reference }) }
    );
    ui.status(`Pushed ${pushed.reference}: ${pushed.by_digest}`);
  } catch (error) {
    ui.status('');
    ui.error(error);
  }
}

/** Ask the command and show the Kubernetes Job that runs it in the pushed image (YAML for kubectl apply -f). */
export async function k8sJob(name: string, ui: IShareUI): Promise<void> {
  const result = await InputDialog.getText({
    title: `Kubernetes Job for ${name}`,
    label: 'Command to run in the image',
    text: 'python train.py'
  });
  if (!result.button.accept || !result.value) {
    return;
  }
  ui.error('');
  let job: IK8sJob;
  try {
    job = await requestAPI<IK8sJob>(snapshotPath(name, 'k8s'), { path: ui.path, command: result.value });
  } catch (error) {
    ui.error(error);
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
      ui.status(`Copied the Job of ${name} (kubectl apply -f -)`);
    } catch (error) {
      ui.error(`cannot copy to the clipboard here (${error}); select the YAML and copy it`);
    }
  }
}
