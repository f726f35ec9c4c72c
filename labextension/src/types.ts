/**
 * The shapes of the server's replies (see jupyter_yolosnap/server/handlers.py). No imports: the pure state
 * module (state.ts) and its unit tests use these without loading JupyterLab.
 */
export type ImageState = 'not built' | 'building' | 'verified' | 'drifted';

/** A failed build the server remembers (it outlives the server process and the page). */
export interface ILastBuild {
  state: 'failed';
  error: string;
  finished: string;
}

export interface ISnapshotSummary {
  name: string;
  saved: string;
  python: string | null;
  torch: string | null;
  cuda: string | null;
  gpu: string | null;
  digest: string;
  /** `id` and `size` (bytes) of the image the tag points to, when there is one. */
  image: { state: ImageState; tag: string | null; id?: string | null; size?: number | null };
  kernel_name: string;
  last_build?: ILastBuild | null;
}

export interface ISnapshotList {
  project: string;
  snapshots: ISnapshotSummary[];
  unreadable?: { name: string; message: string }[];
  engine_error?: string;
}

export interface ISnapshotDetails extends ISnapshotSummary {
  manifest: { [key: string]: any };
}

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface IChange {
  section: string;
  item: string;
  old: string | null;
  new: string | null;
  kind: ChangeKind;
}

export interface IDiff {
  identical: boolean;
  diff: { old: string; new: string; identical: boolean; changes: IChange[] };
  text: string;
  cached?: boolean;
}

/** One revision of a snapshot (`GET snapshots/NAME/history`), oldest first; referred to as `NAME@NUMBER`. */
export interface IRevision {
  number: number;
  saved: string;
  digest: string;
  python: string | null;
  torch: string | null;
  packages: number;
  current: boolean;
}

export interface IHistory {
  revisions: IRevision[];
}

export interface IBuildEvent {
  kind: string;
  message: string;
  step?: number;
  total?: number;
}

export type BuildState = 'building' | 'done' | 'failed' | 'idle';

export interface IBuildStatus {
  state: BuildState;
  events: IBuildEvent[];
  next: number;
  error?: string | null;
  image?: { state: ImageState; tag: string | null } | null;
  /** When the build started, in epoch seconds. */
  started?: number;
  /** How long it has run (or ran), in seconds. */
  elapsed?: number;
  /** A failure remembered from an earlier server or page, not this page's build. */
  persisted?: boolean;
}

/** The options a build may be given (the POST body). */
export interface IBuildOptions {
  strategy?: 'wheelhouse' | 'pinned';
  base?: string;
}
