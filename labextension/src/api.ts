/**
 * Typed access to the server extension's REST API under `<base_url>/yolosnap/`.
 *
 * Every failure is thrown as an error whose `message` is the server's own `{"message": ...}`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type ImageState = 'not built' | 'building' | 'verified' | 'drifted';

export interface ISnapshotSummary {
  name: string;
  saved: string;
  python: string | null;
  torch: string | null;
  cuda: string | null;
  gpu: string | null;
  digest: string;
  image: { state: ImageState; tag: string | null };
  kernel_name: string;
}

export interface ISnapshotList {
  project: string;
  snapshots: ISnapshotSummary[];
  engine_error?: string;
}

export interface ISnapshotDetails extends ISnapshotSummary {
  manifest: { [key: string]: any };
}

export interface IDiff {
  identical: boolean;
  diff: { [key: string]: any };
  text: string;
}

export interface IBuildEvent {
  kind: string;
  message: string;
}

export interface IBuildStatus {
  state: 'building' | 'done' | 'failed' | 'idle';
  events: IBuildEvent[];
  next: number;
  error?: string | null;
  image?: { state: ImageState; tag: string | null } | null;
}

export interface IRestored {
  kernel_name: string;
  display_name: string;
  image: string;
}

/** `POST snapshots/NAME/export`: the archive written into the notebook's folder (`file`: from the server root). */
export interface IExported {
  file: string;
  bytes: number;
  digest: string;
  image_id: string;
  seconds: number;
}

/** `POST snapshots/NAME/push`: the pushed `repo:tag`, and the same image by the registry's digest. */
export interface IPushed {
  reference: string;
  by_digest: string;
  digest: string;
  seconds: number;
}

/** `GET snapshots/NAME/k8s`: the Job's YAML (for `kubectl apply -f`) and the pushed image it runs. */
export interface IK8sJob {
  yaml: string;
  image: string;
}

/** An error answered by the server (or the network), carrying the server's message and HTTP status. */
export class APIError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
    this.name = 'APIError';
  }
}

/**
 * Call `<base_url>/yolosnap/<endPoint>`; `query` values that are undefined are left out.
 * Resolves to the parsed JSON body (or undefined for an empty body such as a 204).
 */
export async function requestAPI<T = unknown>(
  endPoint: string,
  query: { [key: string]: string | number | undefined } = {},
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const params: { [key: string]: string } = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) {
      params[key] = String(value);
    }
  }
  const url =
    URLExt.join(settings.baseUrl, 'yolosnap', endPoint) +
    URLExt.objectToQueryString(params);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(`cannot reach the server: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = undefined;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message =
      (data && typeof data === 'object' && data.message) ||
      (typeof data === 'string' && data) ||
      `${response.status} ${response.statusText}`;
    throw new APIError(message, response.status);
  }
  return data as T;
}

/** The snapshot's path segment, escaped. */
export function snapshotPath(name: string, ...rest: string[]): string {
  return ['snapshots', encodeURIComponent(name), ...rest].join('/');
}
