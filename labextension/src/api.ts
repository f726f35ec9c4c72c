/**
 * Typed access to the server extension's REST API under `<base_url>/yolosnap/`.
 *
 * Every failure is thrown as an error whose `message` is the server's own `{"message": ...}`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export * from './types';

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
  const url = apiUrl(endPoint, query, settings);

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

/** The URL of `<base_url>/yolosnap/<endPoint>?<query>`; `query` values that are undefined are left out. */
export function apiUrl(
  endPoint: string,
  query: { [key: string]: string | number | undefined } = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const params: { [key: string]: string } = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) {
      params[key] = String(value);
    }
  }
  return URLExt.join(settings.baseUrl, 'yolosnap', endPoint) + URLExt.objectToQueryString(params);
}

/**
 * The URL for an EventSource on `endPoint`: EventSource cannot send headers, so the server's token (when there
 * is one) goes in the query; without one the session cookie authenticates.
 */
export function streamUrl(endPoint: string, query: { [key: string]: string | number | undefined } = {}): string {
  const settings = ServerConnection.makeSettings();
  return apiUrl(endPoint, { ...query, token: settings.token || undefined }, settings);
}

/** The snapshot's path segment, escaped. */
export function snapshotPath(name: string, ...rest: string[]): string {
  return ['snapshots', encodeURIComponent(name), ...rest].join('/');
}
