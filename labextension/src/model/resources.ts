/**
 * The sidebar's model: the latest answer of each route, the graph
 * histories, and one lumino `Poll` per route.
 *
 * Views read from here and listen to `changed`; they never fetch. The
 * client is passed in (the real one wraps `ServerConnection`), so the model
 * runs and is tested without a browser or a server.
 */

import { Debouncer, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { MetricsHistory, orderKernels } from './kernels';
import {
  classifyFailure,
  FailureKind,
  PollKind,
  pollFrequency,
  shouldStandby
} from './polling';
import { IRegistryAnswer, IRegistryClient, IRegistryFilters, RegistryBrowser } from './registry';
import { IResmanSettings, SectionName } from './settings';
import type {
  ICacheClearRequest,
  ICacheReport,
  ICheckpointList,
  IKernelMetrics,
  IMetrics,
  IProgressReport,
  IResourcesReport
} from '../types';

/** What the model needs from the server: one method per route. */
export interface IResmanClient extends IRegistryClient {
  /** `since`: only samples newer than this (epoch seconds); the rest of the answer is whole. */
  metrics(since?: number): Promise<IMetrics>;
  progress(): Promise<IProgressReport>;
  cache(): Promise<ICacheReport>;
  clearCache(request: ICacheClearRequest): Promise<{ removed: number }>;
  checkpoints(): Promise<ICheckpointList>;
  deleteCheckpoint(name: string): Promise<{ deleted: string; versions: number }>;
  resources(): Promise<IResourcesReport>;
}

/** What the model needs to know about where it is shown. */
export interface IViewState {
  /** Whether the sidebar panel is currently visible. */
  panelVisible(): boolean;
  /** Whether the browser tab is hidden (defaults to the page's visibility). */
  documentHidden?(): boolean;
}

/** The routes, each polled on its own. */
export type Route = 'metrics' | 'progress' | 'cache' | 'checkpoints' | 'resources' | 'registry';

const ROUTE_SECTION: Record<Route, SectionName> = {
  metrics: 'kernels',
  progress: 'progress',
  cache: 'cache',
  checkpoints: 'checkpoints',
  resources: 'resources',
  registry: 'registry'
};

// Providers' snapshots change as cells take and give back resources: fast.
// The registry changes when someone registers something, and a page of it
// costs the server a count and a query: slow (filters and paging ask at once).
const ROUTE_KIND: Record<Route, PollKind> = {
  metrics: 'fast',
  progress: 'fast',
  cache: 'slow',
  checkpoints: 'slow',
  resources: 'fast',
  registry: 'slow'
};

/** How long typing in the name filter may pause before the list is asked for (ms). */
export const FILTER_DEBOUNCE_MS = 300;

type Payload =
  | IMetrics
  | IProgressReport
  | ICacheReport
  | ICheckpointList
  | IResourcesReport
  | IRegistryAnswer;

function pageHidden(): boolean {
  return typeof document !== 'undefined' && document.visibilityState === 'hidden';
}

export class ResourcesModel {
  constructor(options: ResourcesModel.IOptions) {
    this._client = options.client;
    this._settings = options.settings;
    this._view = options.view;
    this.history = new MetricsHistory(options.settings.historyWindow);
    this.registry = new RegistryBrowser({ client: options.client, pageSize: options.registryPageSize });
    this._filterDebouncer = new Debouncer(() => this.refresh(['registry']), FILTER_DEBOUNCE_MS);
    for (const route of Object.keys(ROUTE_SECTION) as Route[]) {
      this._polls.set(route, this.makePoll(route));
    }
  }

  /** Emitted after any answer, error or setting changes what views show. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Memory/CPU histories of the system and every kernel. */
  readonly history: MetricsHistory;

  get metrics(): IMetrics | null {
    return this._data.metrics as IMetrics | null;
  }

  get progress(): IProgressReport | null {
    return this._data.progress as IProgressReport | null;
  }

  get cache(): ICacheReport | null {
    return this._data.cache as ICacheReport | null;
  }

  get checkpoints(): ICheckpointList | null {
    return this._data.checkpoints as ICheckpointList | null;
  }

  /** The resource providers every process published. */
  get resources(): IResourcesReport | null {
    return this._data.resources as IResourcesReport | null;
  }

  /**
   * The Registry section's state (filters, page, selection) and the last
   * answer for it. Change it through {@link setRegistryFilters},
   * {@link setRegistryPage} and {@link selectResource}, which ask at once.
   */
  readonly registry: RegistryBrowser;

  /**
   * Filter the registry list (back to its first page). A kind asks at once;
   * typing a name asks once the typing pauses.
   */
  setRegistryFilters(filters: Partial<IRegistryFilters>): void {
    if (!this.registry.setFilters(filters)) {
      return;
    }
    this._changed.emit();
    if (filters.name !== undefined) {
      void this._filterDebouncer.invoke();
    } else {
      void this.refresh(['registry']);
    }
  }

  /** Show another page of the registry list (0-based, kept within the pages there are). */
  setRegistryPage(page: number): void {
    if (this.registry.setPage(page)) {
      this._changed.emit();
      void this.refresh(['registry']);
    }
  }

  /** Show a registry resource in depth (null: close the details). */
  selectResource(id: string | null): void {
    if (this.registry.select(id)) {
      this._changed.emit();
      void this.refresh(['registry']);
    }
  }

  /** The last failure of a route (a message for the user), or null. */
  error(route: Route): string | null {
    return this._errors.get(route) ?? null;
  }

  /**
   * Milliseconds until a route's next request: the refresh interval while
   * the server answers, growing while it fails (shown as "retrying in …").
   */
  nextRequestIn(route: Route): number {
    return this._polls.get(route)!.state.interval;
  }

  /** Kernels in display order (the current notebook's first). */
  kernels(): IKernelMetrics[] {
    return this.metrics ? orderKernels(this.metrics.kernels, this._currentKernelId) : [];
  }

  /** The kernel of the notebook or console in focus, or null. */
  get currentKernelId(): string | null {
    return this._currentKernelId;
  }

  set currentKernelId(id: string | null) {
    if (id !== this._currentKernelId) {
      this._currentKernelId = id;
      this._changed.emit();
    }
  }

  get settings(): IResmanSettings {
    return this._settings;
  }

  set settings(settings: IResmanSettings) {
    this._settings = settings;
    this.history.window = settings.historyWindow;
    for (const [route, poll] of this._polls) {
      poll.frequency = pollFrequency(
        settings.refreshInterval,
        ROUTE_KIND[route],
        this._failures.get(route) ?? null
      );
    }
    this._changed.emit();
    // Sections may have been switched on: fetch them now rather than next tick.
    void this.refresh();
  }

  /** Whether a route's poll is currently skipping its requests. */
  isStandingBy(route: Route): boolean {
    const documentHidden = this._view.documentHidden ? this._view.documentHidden() : pageHidden();
    return shouldStandby({
      documentHidden,
      panelVisible: this._view.panelVisible(),
      sectionEnabled: this._settings.sections[ROUTE_SECTION[route]],
      statusBarNeeds: route === 'metrics' && this._settings.statusBar
    });
  }

  /** Start polling (the first requests go out at once). */
  async start(): Promise<void> {
    await Promise.all([...this._polls.values()].map(poll => poll.start()));
  }

  /**
   * Poll now, and resolve once the answers (or failures) are in.
   * Routes standing by are skipped.
   */
  async refresh(routes: Route[] = [...this._polls.keys()]): Promise<void> {
    await Promise.all(
      routes.map(async route => {
        const poll = this._polls.get(route)!;
        if (poll.isDisposed) {
          return;
        }
        await poll.refresh();
        await poll.tick;
      })
    );
  }

  /**
   * Clear the whole cache (`namespace === null`) or one namespace, then
   * refresh the cache figures. Resolves to the number of entries removed.
   */
  async clearCache(namespace: string | null): Promise<number> {
    const request: ICacheClearRequest = namespace === null ? { all: true } : { namespace };
    const { removed } = await this._client.clearCache(request);
    await this.refresh(['cache']);
    return removed;
  }

  /** Delete every version of a checkpoint, then refresh the list. */
  async deleteCheckpoint(name: string): Promise<number> {
    const { versions } = await this._client.deleteCheckpoint(name);
    await this.refresh(['checkpoints']);
    return versions;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Stop every poll and disconnect listeners. */
  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._filterDebouncer.dispose();
    for (const poll of this._polls.values()) {
      // `dispose()` alone leaves the next tick's timer pending (up to the
      // backoff ceiling); stopping first clears it synchronously.
      void poll.stop();
      poll.dispose();
    }
    Signal.clearData(this);
  }

  private makePoll(route: Route): Poll<Payload, unknown> {
    const fetchers: Record<Route, () => Promise<Payload>> = {
      // Ask only for the samples the histories lack (small answers with many kernels).
      metrics: () => this._client.metrics(this.history.samplesSince()),
      progress: () => this._client.progress(),
      cache: () => this._client.cache(),
      checkpoints: () => this._client.checkpoints(),
      resources: () => this._client.resources(),
      registry: () => this.registry.fetch()
    };
    const poll = new Poll<Payload, unknown>({
      auto: false,
      factory: fetchers[route],
      frequency: pollFrequency(this._settings.refreshInterval, ROUTE_KIND[route]),
      name: `jupyter-resman:${route}`,
      standby: () => this.isStandingBy(route)
    });
    poll.ticked.connect((_, state) => {
      if (state.phase === 'resolved' || state.phase === 'reconnected') {
        this.accept(route, state.payload as Payload);
      } else if (state.phase === 'rejected') {
        this.reject(route, state.payload);
      }
    });
    return poll;
  }

  private accept(route: Route, payload: Payload): void {
    if (route === 'registry') {
      const verdict = this.registry.accept(payload as IRegistryAnswer);
      if (verdict === 'refetch') {
        void this.refresh(['registry']);
      }
      // A stale answer still says the server works: fall through to clear the error.
    } else {
      this._data[route] = payload;
    }
    if (route === 'metrics') {
      this.history.update(payload as IMetrics);
    }
    this._errors.delete(route);
    if (this._failures.delete(route)) {
      // Back to normal: restore the short ceiling a permanent failure raised.
      this._polls.get(route)!.frequency = pollFrequency(
        this._settings.refreshInterval,
        ROUTE_KIND[route]
      );
    }
    this._changed.emit();
  }

  private reject(route: Route, error: unknown): void {
    const { kind, message } = classifyFailure(error);
    this._errors.set(route, message);
    if (this._failures.get(route) !== kind) {
      this._failures.set(route, kind);
      // lumino already backs off on its own; a failure that retrying cannot
      // heal (extension missing, access refused) may back off further.
      this._polls.get(route)!.frequency = pollFrequency(
        this._settings.refreshInterval,
        ROUTE_KIND[route],
        kind
      );
    }
    this._changed.emit();
  }

  private _client: IResmanClient;
  private _settings: IResmanSettings;
  private _view: IViewState;
  private _currentKernelId: string | null = null;
  private _polls = new Map<Route, Poll<Payload, unknown>>();
  private _data: Record<Route, Payload | null> = {
    metrics: null,
    progress: null,
    cache: null,
    checkpoints: null,
    resources: null,
    registry: null
  };
  private _errors = new Map<Route, string>();
  private _failures = new Map<Route, FailureKind>();
  private _changed = new Signal<this, void>(this);
  private _filterDebouncer: Debouncer;
  private _disposed = false;
}

export namespace ResourcesModel {
  export interface IOptions {
    client: IResmanClient;
    settings: IResmanSettings;
    view: IViewState;
    /** Resources on one page of the registry list (default `REGISTRY_PAGE_SIZE`). */
    registryPageSize?: number;
  }
}
