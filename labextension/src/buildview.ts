/**
 * A build as the panel shows it: a line with the state, phase, step and elapsed time, a progress bar, and the
 * log (its tail, or all of it), fed by BuildFollower from the server-sent-events stream
 * `snapshots/NAME/build/events` (or, when the stream fails, by polling `snapshots/NAME/build`).
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IBuildOptions, IBuildStatus, requestAPI, snapshotPath, streamUrl } from './api';
import { h, linkButton } from './dom';
import { applyStatus, IBuildProgress, newProgress, progressFraction, progressLine } from './state';

const POLL_MS = 1000;
const TAIL_LINES = 12;

/** The DOM of one build's progress; `show` redraws it. */
export class BuildView {
  readonly node = h('div', 'jp-yolosnap-build');

  constructor() {
    this._line = h('div', 'jp-yolosnap-build-line');
    this._line.setAttribute('aria-live', 'polite');
    this._fill = h('div', 'jp-yolosnap-progress-fill');
    this._bar = h('div', 'jp-yolosnap-progress', this._fill);
    this._bar.setAttribute('role', 'progressbar');
    this._bar.setAttribute('aria-valuemin', '0');
    this._bar.setAttribute('aria-valuemax', '100');
    this._toggle = linkButton('Show the whole log', 'build-log-toggle', () => {
      this._whole = !this._whole;
      this._drawLog();
    });
    this._log = h('pre', 'jp-yolosnap-buildlog');
    this.node.append(this._line, this._bar, this._toggle, this._log);
    this.node.hidden = true;
  }

  /** Draw `progress` (null hides the view). */
  show(progress: IBuildProgress | null): void {
    this._progress = progress;
    this.node.hidden = !progress;
    if (!progress) {
      return;
    }
    this.node.dataset.state = progress.state;
    this.tick();
    const fraction = progressFraction(progress);
    this._bar.classList.toggle('jp-mod-indeterminate', fraction === null && progress.state === 'building');
    const percent = fraction === null ? (progress.state === 'building' ? 0 : 100) : Math.round(fraction * 100);
    this._fill.style.width = `${fraction === null && progress.state === 'building' ? 30 : percent}%`;
    if (fraction === null && progress.state === 'building') {
      this._bar.removeAttribute('aria-valuenow');
    } else {
      this._bar.setAttribute('aria-valuenow', String(percent));
    }
    this._drawLog();
  }

  /** Redraw the line (the elapsed time moves on its own). */
  tick(): void {
    if (this._progress) {
      this._line.textContent = progressLine(this._progress, Date.now());
    }
  }

  private _drawLog(): void {
    const lines = this._progress?.log ?? [];
    this._toggle.hidden = lines.length <= TAIL_LINES;
    this._toggle.textContent = this._whole ? 'Show the last lines' : `Show the whole log (${lines.length} lines)`;
    this._log.classList.toggle('jp-mod-whole', this._whole);
    this._log.textContent = (this._whole ? lines : lines.slice(-TAIL_LINES)).join('\n');
    this._log.hidden = lines.length === 0;
    this._log.scrollTop = this._log.scrollHeight; // the log follows its tail
  }

  private _progress: IBuildProgress | null = null;
  private _whole = false;
  private _line: HTMLDivElement;
  private _bar: HTMLDivElement;
  private _fill: HTMLDivElement;
  private _toggle: HTMLButtonElement;
  private _log: HTMLPreElement;
}

/**
 * Follows one snapshot's build until it is no longer building: the event stream first, polling once a second
 * if the stream cannot be opened or breaks. `onProgress` gets every new state; `done` resolves with the last.
 */
export class BuildFollower {
  constructor(
    readonly name: string,
    private _path: string,
    private _onProgress: (progress: IBuildProgress) => void
  ) {
    this.progress = newProgress();
    this.done = new Promise(resolve => (this._resolve = resolve));
    this._stream();
  }

  progress: IBuildProgress;
  readonly done: Promise<IBuildProgress>;
  /** How the follower gets its events now (tests and the DOM's data-transport read it). */
  transport: 'stream' | 'poll' = 'stream';

  /** Stop following (the build itself goes on). */
  dispose(): void {
    this._disposed = true;
    this._source?.close();
    this._source = null;
    window.clearTimeout(this._timer);
  }

  private _apply(status: IBuildStatus): void {
    this.progress = applyStatus(this.progress, status, Date.now());
    this._onProgress(this.progress);
    if (status.state !== 'building') {
      this.dispose();
      this._resolve(this.progress);
    }
  }

  private _stream(): void {
    if (typeof EventSource === 'undefined') {
      this._poll();
      return;
    }
    const url = streamUrl(snapshotPath(this.name, 'build', 'events'), { path: this._path, since: this.progress.next });
    const source = new EventSource(url);
    this._source = source;
    source.onmessage = event => {
      try {
        this._apply(JSON.parse(event.data) as IBuildStatus);
      } catch (error) {
        console.warn('jupyter-yolosnap: unreadable build event', error);
      }
    };
    source.onerror = () => {
      // A stream that cannot be opened (or ends before the build did): poll instead, from where it stopped.
      source.close();
      if (this._source === source && !this._disposed) {
        this._source = null;
        this._poll();
      }
    };
  }

  private async _poll(): Promise<void> {
    this.transport = 'poll';
    if (this._disposed) {
      return;
    }
    try {
      const status = await requestAPI<IBuildStatus>(snapshotPath(this.name, 'build'), {
        path: this._path,
        since: this.progress.next
      });
      if (this._disposed) {
        return;
      }
      this._apply(status);
    } catch (error) {
      this._apply({ state: 'failed', events: [], next: this.progress.next, error: (error as Error).message });
      return;
    }
    if (!this._disposed) {
      this._timer = window.setTimeout(() => void this._poll(), POLL_MS);
    }
  }

  private _source: EventSource | null = null;
  private _timer = 0;
  private _disposed = false;
  private _resolve: (progress: IBuildProgress) => void = () => undefined;
}

/** The body of the build options dialog: strategy and base image. */
export class BuildOptionsBody extends Widget implements Dialog.IBodyWidget<IBuildOptions> {
  constructor() {
    super();
    this.addClass('jp-yolosnap-options');
    this._strategy = h('select', 'jp-mod-styled');
    for (const [value, text] of [
      ['wheelhouse', 'wheelhouse (the default: wheels built here)'],
      ['pinned', 'pinned (install the pinned versions from the index)']
    ]) {
      const option = h('option', '', text);
      option.value = value;
      this._strategy.append(option);
    }
    this._strategy.name = 'strategy';
    this._base = h('input', 'jp-mod-styled');
    this._base.name = 'base';
    this._base.placeholder = 'default: chosen from the snapshot';
    this.node.append(
      h('label', '', 'Strategy', this._strategy),
      h('label', '', 'Base image (optional)', this._base)
    );
  }

  getValue(): IBuildOptions {
    const options: IBuildOptions = { strategy: this._strategy.value as IBuildOptions['strategy'] };
    const base = this._base.value.trim();
    if (base) {
      options.base = base;
    }
    return options;
  }

  private _strategy: HTMLSelectElement;
  private _base: HTMLInputElement;
}
