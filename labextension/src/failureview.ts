/**
 * A failed build, said once: "Build failed", when, the one-line cause, and its log tail behind "Details"
 * (fetched from the server for a failure this page did not watch); "Dismiss" hides it until the next failure.
 */
import { h, linkButton, timeText } from './dom';
import { FAILURE_LOG_LINES, IFailure } from './state';

export class FailureView {
  readonly node = h('div', 'jp-yolosnap-failure');

  /**
   * @param onDismiss called with the failure's key when the user dismisses it
   * @param fetchLog the server's log of the snapshot's last build, for a failure without a log here
   */
  constructor(
    private _onDismiss: (key: string) => void,
    private _fetchLog: (name: string) => Promise<string[]>
  ) {
    this.node.hidden = true;
  }

  /** Show `failure` (null hides the view); the same failure again keeps the Details toggle as it was. */
  show(failure: IFailure | null): void {
    this.node.hidden = !failure;
    if (!failure) {
      this.node.replaceChildren();
      delete this.node.dataset.key;
      return;
    }
    if (this.node.dataset.key === failure.key) {
      return;
    }
    this.node.dataset.key = failure.key;
    const log = h('pre', 'jp-yolosnap-failure-log', failure.log.join('\n'));
    log.hidden = true;
    const toggle = linkButton('Details', 'failure-details', () => {
      log.hidden = !log.hidden;
      toggle.textContent = log.hidden ? 'Details' : 'Hide details';
      toggle.setAttribute('aria-expanded', String(!log.hidden));
      if (!log.hidden && !log.textContent) {
        void this._load(failure.name, log);
      }
    });
    toggle.setAttribute('aria-expanded', 'false');
    const dismiss = linkButton('Dismiss', 'failure-dismiss', () => this._onDismiss(failure.key),
      'Hide this failure until the next one');
    this.node.replaceChildren(
      h(
        'div',
        'jp-yolosnap-failure-head',
        h('span', 'jp-yolosnap-failure-title', 'Build failed'),
        failure.finished ? h('span', 'jp-yolosnap-failure-time', timeText(failure.finished)) : ''
      ),
      h('div', 'jp-yolosnap-failure-text', failure.error),
      h('div', 'jp-yolosnap-failure-tools', toggle, dismiss),
      log
    );
  }

  private async _load(name: string, log: HTMLPreElement): Promise<void> {
    log.textContent = 'Reading the log...';
    try {
      const lines = await this._fetchLog(name);
      log.textContent = lines.length
        ? lines.slice(-FAILURE_LOG_LINES).join('\n')
        : 'The server has no log of this build any more.';
    } catch (error) {
      log.textContent = (error as Error).message;
    }
  }
}
