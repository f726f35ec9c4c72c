/**
 * The panel's state handling, kept free of the DOM and of JupyterLab so it is unit tested on its own
 * (labextension/test/state.spec.ts): stale replies, selection, search, the failed state, diff grouping,
 * build progress from events, and the facts shown for a manifest.
 */
import { BuildState, IBuildStatus, IChange, ILastBuild, IRevision, ISnapshotSummary } from './types';

/**
 * Counts requests of one kind: a reply is used only when no newer request started since (a slow reply for
 * an earlier folder or snapshot must not overwrite a newer one).
 */
export class Generation {
  /** Start a request: its number. */
  next(): number {
    return ++this._current;
  }

  /** Whether the request numbered `n` is still the latest. */
  isCurrent(n: number): boolean {
    return n === this._current;
  }

  private _current = 0;
}

/** The selection after a new listing: kept while the snapshot is listed, else nothing is selected. */
export function keepSelection(selected: string | null, names: readonly string[]): string | null {
  return selected !== null && names.includes(selected) ? selected : null;
}

/** The words a snapshot is found by: its name, state and summary facts, and any package names known for it. */
export function searchWords(s: ISnapshotSummary, packages: readonly string[] = []): string[] {
  return [s.name, s.image.state, s.python, s.torch, s.cuda, s.gpu, ...packages]
    .filter((w): w is string => !!w)
    .map(w => w.toLowerCase());
}

/**
 * The snapshots matching `query`: every whitespace-separated term must occur in one of the snapshot's search
 * words ("torch 2.4" finds a snapshot whose torch is 2.4.1). `packages` maps a snapshot to its package names,
 * for the snapshots whose manifest was read.
 */
export function filterSnapshots(
  snapshots: readonly ISnapshotSummary[],
  query: string,
  packages: ReadonlyMap<string, readonly string[]> = new Map()
): ISnapshotSummary[] {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (terms.length === 0) {
    return [...snapshots];
  }
  return snapshots.filter(s => {
    const words = searchWords(s, packages.get(s.name));
    return terms.every(term => words.some(word => word.includes(term)));
  });
}

/** A build failure to show: from this page's build, or remembered by the server (`last_build`). */
export interface IFailure {
  name: string;
  /** The one-line cause. */
  error: string;
  /** When it failed (ISO time), when known. */
  finished: string | null;
  /** The end of the build log, when this page saw the build. */
  log: string[];
  /** Identifies this failure, so dismissing it hides it until the next one. */
  key: string;
}

/**
 * The failure to show for a snapshot: this page's failed build first, else the server's `last_build`; none while
 * a build runs, once the image is verified, or when this failure was dismissed.
 */
export function failureOf(
  summary: ISnapshotSummary,
  progress: IBuildProgress | null,
  dismissed: ReadonlySet<string>
): IFailure | null {
  let failure: IFailure | null = null;
  if (progress && progress.state === 'building') {
    return null;
  }
  if (progress && progress.state === 'failed') {
    // The server's time once the listing has it: the same key as after a reload, so a dismissal holds there too.
    const finished = (isFailed(summary.last_build) ? summary.last_build.finished : progress.finished) ?? null;
    failure = {
      name: summary.name,
      error: progress.error || 'the build failed (see its log)',
      finished,
      log: progress.log.slice(-FAILURE_LOG_LINES),
      key: `${summary.name}|${finished ?? progress.startedMs ?? ''}`
    };
  } else if (isFailed(summary.last_build) && summary.image.state !== 'verified' && summary.image.state !== 'building') {
    const last = summary.last_build;
    failure = { name: summary.name, error: last.error, finished: last.finished, log: [], key: `${summary.name}|${last.finished}` };
  }
  return failure && !dismissed.has(failure.key) ? failure : null;
}

function isFailed(last: ILastBuild | null | undefined): last is ILastBuild {
  return !!last && last.state === 'failed';
}

/** The state a row shows: 'building' while a build runs here, 'build failed' for a failure not yet fixed. */
export function rowState(summary: ISnapshotSummary, progress: IBuildProgress | null): string {
  if (progress?.state === 'building' || summary.image.state === 'building') {
    return 'building';
  }
  const failed = progress?.state === 'failed' || isFailed(summary.last_build);
  if (failed && summary.image.state !== 'verified') {
    return 'build failed';
  }
  return summary.image.state;
}

export const FAILURE_LOG_LINES = 20;

/** Diff sections in display order; `source` is informational (a commit is not drift). */
export const SECTIONS = [
  'python',
  'packages',
  'cuda',
  'gpu',
  'native libraries',
  'os',
  'system packages',
  'env',
  'source'
];
export const INFORMATIONAL = new Set(['source']);

const SECTION_TITLES: { [section: string]: string } = {
  python: 'Python',
  packages: 'Packages',
  cuda: 'CUDA',
  gpu: 'GPU',
  'native libraries': 'Native libraries',
  os: 'OS',
  'system packages': 'System packages',
  env: 'Environment variables',
  source: 'Source (informational)'
};

/** A section's heading: "GPU", "Environment variables"; an unknown section as the server names it. */
export function sectionTitle(section: string): string {
  return SECTION_TITLES[section] ?? section;
}
/** "Changed only" collapses a section to this many rows, behind a "show N more". */
export const COLLAPSED_ROWS = 8;

export interface IDiffSection {
  section: string;
  /** How many changes the section has. */
  count: number;
  /** The rows to show. */
  rows: IChange[];
  /** How many rows are behind "show N more" (0: none). */
  hidden: number;
  informational: boolean;
}

/**
 * The changes grouped by section, in SECTIONS order (unknown sections after, in the order met). "Changed only"
 * (`all` false) leaves out the informational sections and shows at most COLLAPSED_ROWS rows of a section unless
 * it is in `expanded`.
 */
export function groupDiff(
  changes: readonly IChange[],
  all: boolean,
  expanded: ReadonlySet<string> = new Set()
): IDiffSection[] {
  const bySection = new Map<string, IChange[]>();
  for (const change of changes) {
    const rows = bySection.get(change.section) ?? [];
    rows.push(change);
    bySection.set(change.section, rows);
  }
  const order = [...SECTIONS.filter(s => bySection.has(s)), ...[...bySection.keys()].filter(s => !SECTIONS.includes(s))];
  const groups: IDiffSection[] = [];
  for (const section of order) {
    const rows = bySection.get(section)!;
    const informational = INFORMATIONAL.has(section);
    if (informational && !all) {
      continue;
    }
    const shown = all || expanded.has(section) ? rows : rows.slice(0, COLLAPSED_ROWS);
    groups.push({ section, count: rows.length, rows: shown, hidden: rows.length - shown.length, informational });
  }
  return groups;
}

/** How many changes the "changed only" view leaves out entirely (the informational sections). */
export function informationalCount(changes: readonly IChange[]): number {
  return changes.filter(c => INFORMATIONAL.has(c.section)).length;
}

/** What a build looks like so far, folded from its status replies (polled or streamed). */
export interface IBuildProgress {
  state: BuildState;
  /** The last phase event's message. */
  phase: string;
  /** The last Dockerfile step seen, and of how many. */
  step: number | null;
  total: number | null;
  /** Every event as a line, oldest first. */
  log: string[];
  error: string | null;
  /** When it started (epoch ms): the server's `started`, else when this page first saw it. */
  startedMs: number | null;
  /** The server's elapsed seconds at the last reply (a finished build's duration). */
  elapsedS: number | null;
  /** When the last reply came (epoch ms). */
  seenMs: number | null;
  /** ISO time of the end, for a finished build. */
  finished: string | null;
  /** Where the next poll starts. */
  next: number;
  /** A failure remembered by the server rather than a build of this page. */
  persisted: boolean;
}

export function newProgress(): IBuildProgress {
  return {
    state: 'building',
    phase: '',
    step: null,
    total: null,
    log: [],
    error: null,
    startedMs: null,
    elapsedS: null,
    seenMs: null,
    finished: null,
    next: 0,
    persisted: false
  };
}

/** `progress` after one status reply (`events` are the new ones since the last reply). Returns a new object. */
export function applyStatus(progress: IBuildProgress, status: IBuildStatus, nowMs: number): IBuildProgress {
  const p: IBuildProgress = { ...progress, log: [...progress.log] };
  for (const event of status.events) {
    if (event.kind === 'phase') {
      p.phase = event.message;
    }
    if (event.kind === 'step' && event.total) {
      p.step = event.step ?? null;
      p.total = event.total;
    }
    p.log.push(event.kind === 'step' && event.total ? `[${event.step}/${event.total}] ${event.message}` : event.message);
  }
  p.state = status.state;
  p.next = Math.max(p.next, status.next ?? p.next);
  p.error = status.error ?? (status.state === 'failed' ? p.error : null);
  p.persisted = !!status.persisted;
  if (typeof status.started === 'number') {
    p.startedMs = status.started * 1000;
  } else if (p.startedMs === null) {
    p.startedMs = nowMs;
  }
  if (typeof status.elapsed === 'number') {
    p.elapsedS = status.elapsed;
  }
  p.seenMs = nowMs;
  if (status.state !== 'building' && p.finished === null) {
    p.finished = new Date(nowMs).toISOString();
    if (p.elapsedS === null && p.startedMs !== null) {
      p.elapsedS = (nowMs - p.startedMs) / 1000;
    }
  }
  return p;
}

/** The completed fraction 0..1 (the Dockerfile steps), or null while it cannot be told (no steps yet). */
export function progressFraction(p: IBuildProgress): number | null {
  if (p.state === 'done') {
    return 1;
  }
  if (p.step !== null && p.total) {
    return Math.min(1, Math.max(0, p.step / p.total));
  }
  return null;
}

/** Seconds since the build started, at `nowMs` (a finished build: its duration). */
export function elapsedSeconds(p: IBuildProgress, nowMs: number): number | null {
  if (p.state !== 'building') {
    return p.elapsedS;
  }
  if (p.elapsedS !== null && p.seenMs !== null) {
    return p.elapsedS + (nowMs - p.seenMs) / 1000;
  }
  return p.startedMs === null ? null : (nowMs - p.startedMs) / 1000;
}

/** "42 s", "3 min 05 s", "1 h 02 min". */
export function durationText(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** The one line above the progress bar: state, phase, step and elapsed time. */
export function progressLine(p: IBuildProgress, nowMs: number): string {
  const words: { [state: string]: string } = {
    building: 'building',
    done: 'build done',
    failed: 'build failed',
    idle: 'no build'
  };
  const parts = [words[p.state] ?? p.state];
  if (p.phase) {
    parts.push(p.phase);
  }
  if (p.state === 'building' && p.step !== null && p.total) {
    parts.push(`step ${p.step}/${p.total}`);
  }
  const elapsed = elapsedSeconds(p, nowMs);
  if (elapsed !== null) {
    parts.push(durationText(elapsed));
  }
  return parts.join(' · ');
}

/** A fact of the details list: its label and text. */
export type Fact = [string, string];

function text(value: unknown): string {
  return value === null || value === undefined ? '' : String(value).trim();
}

/**
 * The facts of a manifest the details show, only those that exist: Python, CUDA (torch's build, else the
 * system toolkit) and cuDNN, torch, the GPUs, the OS, the image and the digest.
 */
export function manifestFacts(manifest: { [key: string]: any }, summary: ISnapshotSummary): Fact[] {
  const facts: Fact[] = [];
  const add = (label: string, value: string) => {
    if (value) {
      facts.push([label, value]);
    }
  };
  const python = manifest.python ?? {};
  const detail = [python.implementation, python.environment].map(text).filter(Boolean).join(', ');
  add('Python', text(python.version ?? summary.python) + (detail && python.version ? ` (${detail})` : ''));
  const cuda = manifest.cuda ?? {};
  const torch = cuda.torch ?? {};
  add('torch', text(torch.version ?? summary.torch));
  const cudaVersion = text(torch.cuda ?? summary.cuda) || (cuda.nvcc?.version ? `${text(cuda.nvcc.version)} (nvcc)` : '');
  add('CUDA', cudaVersion);
  add('cuDNN', text(torch.cudnn));
  const gpus: any[] = Array.isArray(manifest.gpu?.gpus) ? manifest.gpu.gpus : [];
  gpus.forEach((gpu, i) => {
    const cc = text(gpu?.compute_capability);
    const memory = typeof gpu?.memory_total_mib === 'number' ? `${Math.round(gpu.memory_total_mib / 1024)} GiB` : '';
    const extra = [cc ? `compute ${cc}` : '', memory].filter(Boolean).join(', ');
    add(gpus.length > 1 ? `GPU ${i}` : 'GPU', text(gpu?.name) + (extra ? ` (${extra})` : ''));
  });
  if (gpus.length > 0) {
    add('Driver', text(manifest.gpu?.driver_version));
  }
  const os = manifest.os ?? {};
  const libc = os.libc?.version ? `${text(os.libc.name) || 'libc'} ${text(os.libc.version)}` : '';
  add('OS', [text(os.pretty_name) || [text(os.id), text(os.version_id)].filter(Boolean).join(' '), libc].filter(Boolean).join(', '));
  const image = summary.image;
  add('Image', image.state === 'building' ? 'building' : `${image.state}${image.tag ? ` (${image.tag})` : ''}`);
  if (image.state !== 'building' && image.id) {
    const size = typeof image.size === 'number' && image.size > 0 ? `, ${(image.size / 1e9).toFixed(2)} GB` : '';
    add('Image id', `${text(image.id).replace(/^sha256:/, '').slice(0, 12)}${size}`);
  }
  add('Kernel', text(summary.kernel_name));
  add('Digest', text(summary.digest));
  return facts;
}

export interface IPackageRow {
  name: string;
  version: string;
  installer: string;
}

/** The names of a manifest's packages (what the search box matches). */
export function packageNames(manifest: { [key: string]: any }): string[] {
  return (Array.isArray(manifest.packages) ? manifest.packages : []).map((p: any) => text(p?.name)).filter(Boolean);
}

/** The manifest's packages, sorted by name, those whose name (or version) contains `query`. */
export function packageRows(manifest: { [key: string]: any }, query = ''): IPackageRow[] {
  const q = query.trim().toLowerCase();
  const all: IPackageRow[] = (Array.isArray(manifest.packages) ? manifest.packages : []).map((p: any) => ({
    name: text(p?.name),
    version: text(p?.version),
    installer: text(p?.installer) || text(p?.source)
  }));
  return all
    .filter(p => !q || p.name.toLowerCase().includes(q) || p.version.toLowerCase().includes(q))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A revision's reference for `?against=`: `NAME@NUMBER`. */
export function revisionRef(name: string, revision: number): string {
  return `${name}@${revision}`;
}

/** One choice of what the diff compares with: `ref` '' is the notebook kernel. */
export interface ICompareChoice {
  ref: string;
  text: string;
  group: '' | 'Another snapshot' | 'An earlier revision';
  revision?: IRevision;
}

/** The notebook kernel first, then the other snapshots, then this snapshot's earlier revisions, newest first. */
export function compareChoices(name: string, names: readonly string[], revisions: readonly IRevision[]): ICompareChoice[] {
  const choices: ICompareChoice[] = [{ ref: '', text: 'the notebook kernel', group: '' }];
  for (const other of names.filter(n => n !== name)) {
    choices.push({ ref: other, text: `snapshot ${other}`, group: 'Another snapshot' });
  }
  for (const revision of revisions.filter(r => !r.current).reverse()) {
    const ref = revisionRef(name, revision.number);
    choices.push({ ref, text: ref, group: 'An earlier revision', revision });
  }
  return choices;
}

/** The choices by group, in order (the ungrouped notebook kernel first). */
export function groupChoices(choices: readonly ICompareChoice[]): [string, ICompareChoice[]][] {
  const groups = new Map<string, ICompareChoice[]>();
  for (const choice of choices) {
    groups.set(choice.group, [...(groups.get(choice.group) ?? []), choice]);
  }
  return [...groups.entries()];
}
