/**
 * The one place that builds URLs of the server extension and talks HTTP
 * (docs/rest-api.md). Everything else goes through `ResmanClient`.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { IResmanClient } from './model/resources';
import type {
  ICacheClearRequest,
  ICacheReport,
  ICheckpointList,
  IMetrics,
  IProgressReport,
  IRegistryItem,
  IRegistryList,
  IResourcesReport
} from './types';

/** The routes' prefix under the server's base URL. */
export const API_PREFIX = 'resman/api';

/** A failed request: the HTTP status and the server's `{"message": …}`. */
export class ResmanRequestError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'ResmanRequestError';
  }
}

/**
 * Call a route and return its JSON answer.
 *
 * `ServerConnection.makeRequest` adds the token or the `_xsrf` header
 * (the server refuses a cookie-authenticated POST or DELETE without it).
 */
export async function requestAPI<T>(
  endPoint: string,
  settings: ServerConnection.ISettings,
  init: RequestInit = {},
  query: Record<string, string> = {}
): Promise<T> {
  const url =
    URLExt.join(settings.baseUrl, API_PREFIX, endPoint) +
    (Object.keys(query).length ? URLExt.objectToQueryString(query) : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // A proxy's HTML error page, say: report the status, not a parse error.
      if (response.ok) {
        throw new ResmanRequestError(response.status, `${endPoint} did not answer JSON`);
      }
    }
  }
  if (!response.ok) {
    const message =
      data && typeof data === 'object' && 'message' in data
        ? String((data as { message: unknown }).message)
        : `${response.status} ${response.statusText}`;
    throw new ResmanRequestError(response.status, message);
  }
  return data as T;
}

/** The model's client, speaking to the server extension. */
export class ResmanClient implements IResmanClient {
  constructor(settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    this.settings = settings;
  }

  readonly settings: ServerConnection.ISettings;

  metrics(since?: number): Promise<IMetrics> {
    const query: Record<string, string> = since === undefined ? {} : { since: since.toString() };
    return requestAPI<IMetrics>('metrics', this.settings, {}, query);
  }

  progress(): Promise<IProgressReport> {
    return requestAPI<IProgressReport>('progress', this.settings);
  }

  cache(): Promise<ICacheReport> {
    return requestAPI<ICacheReport>('cache', this.settings);
  }

  clearCache(request: ICacheClearRequest): Promise<{ removed: number }> {
    return requestAPI('cache/clear', this.settings, {
      method: 'POST',
      body: JSON.stringify(request),
      headers: { 'Content-Type': 'application/json' }
    });
  }

  checkpoints(): Promise<ICheckpointList> {
    return requestAPI<ICheckpointList>('checkpoints', this.settings);
  }

  deleteCheckpoint(name: string): Promise<{ deleted: string; versions: number }> {
    return requestAPI(`checkpoints/${encodeURIComponent(name)}`, this.settings, {
      method: 'DELETE'
    });
  }

  registry(params: Record<string, string>): Promise<IRegistryList> {
    return requestAPI<IRegistryList>('registry', this.settings, {}, params);
  }

  registryItem(id: string): Promise<IRegistryItem> {
    return requestAPI<IRegistryItem>(`registry/${encodeURIComponent(id)}`, this.settings);
  }

  resources(): Promise<IResourcesReport> {
    return requestAPI<IResourcesReport>('resources', this.settings);
  }
}
