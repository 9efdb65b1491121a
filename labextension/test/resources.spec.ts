import { IResmanClient, ResourcesModel, Route } from '../src/model/resources';
import { DEFAULT_SETTINGS, IResmanSettings } from '../src/model/settings';
import type {
  ICacheClearRequest,
  ICacheReport,
  ICheckpointList,
  IMetrics,
  IProgressReport,
  IRegistryItem,
  IRegistryList,
  IResourcesReport
} from '../src/types';
import { kernel, metrics, registryList, tree } from './fixtures';

/**
 * A stand-in for the server: answers like docs/rest-api.md, counts calls,
 * and fails on demand. The model under test is real, with real lumino polls.
 */
class FakeServer implements IResmanClient {
  calls: Record<string, number> = {};
  failures: Partial<Record<Route, unknown>> = {};
  cleared: ICacheClearRequest[] = [];
  time = 1000;
  entries = 5;

  private answer<T>(route: Route, value: () => T): Promise<T> {
    this.calls[route] = (this.calls[route] ?? 0) + 1;
    const failure = this.failures[route];
    return failure !== undefined ? Promise.reject(failure) : Promise.resolve(value());
  }

  sinces: (number | undefined)[] = [];

  metrics(since?: number): Promise<IMetrics> {
    this.sinces.push(since);
    return this.answer('metrics', () => {
      this.time += 1;
      return metrics({ time: this.time }, [kernel({ kernel_id: 'a', path: 'a.ipynb' }), kernel({ kernel_id: 'b', path: 'b.ipynb' })]);
    });
  }

  progress(): Promise<IProgressReport> {
    return this.answer('progress', () => ({
      kernels: [{ pid: 1, kernel_id: 'a', path: 'a.ipynb', trees: [tree()] }]
    }));
  }

  cache(): Promise<ICacheReport> {
    return this.answer('cache', () => ({
      stats: {
        hits: 1, misses: 1, hit_rate: 0.5, sets: this.entries, evictions: 0, evicted_bytes: 0,
        entries: this.entries, bytes: 100 * this.entries, max_bytes: 1e9, time_saved_s: 1,
        memory: { hits: 0, entries: 0, bytes: 0 }, disk: { hits: 1, entries: this.entries, bytes: 100 }
      },
      namespaces: [],
      history: []
    }));
  }

  clearCache(request: ICacheClearRequest): Promise<{ removed: number }> {
    this.cleared.push(request);
    const removed = this.entries;
    this.entries = 0;
    return Promise.resolve({ removed });
  }

  checkpoints(): Promise<ICheckpointList> {
    return this.answer('checkpoints', () => ({ checkpoints: [] }));
  }

  deleteCheckpoint(name: string): Promise<{ deleted: string; versions: number }> {
    return Promise.resolve({ deleted: name, versions: 2 });
  }

  resources(): Promise<IResourcesReport> {
    return this.answer('resources', () => ({ time: this.time, kernels: [] }));
  }

  registry(params: Record<string, string>): Promise<IRegistryList> {
    return this.answer('registry', () => registryList({ offset: Number(params.offset ?? 0) }));
  }

  registryItem(id: string): Promise<IRegistryItem> {
    return Promise.reject({ status: 404, message: `no resource with id ${id}` });
  }
}

async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

function settings(overrides: Partial<IResmanSettings> = {}): IResmanSettings {
  // 0.1 s polls keep the suite quick; the model accepts what normalizeSettings would clamp.
  return { ...DEFAULT_SETTINGS, refreshInterval: 0.1, ...overrides };
}

describe('ResourcesModel', () => {
  let server: FakeServer;
  let panelVisible: boolean;
  let model: ResourcesModel;

  function makeModel(s: IResmanSettings = settings()): ResourcesModel {
    model = new ResourcesModel({
      client: server,
      settings: s,
      view: { panelVisible: () => panelVisible, documentHidden: () => false }
    });
    return model;
  }

  beforeEach(() => {
    server = new FakeServer();
    panelVisible = false;
  });

  afterEach(() => {
    model?.dispose();
    jest.restoreAllMocks();
  });

  it('keeps metrics live for the status bar while the panel is closed, and nothing else', async () => {
    makeModel();
    await model.start();
    await until(() => (server.calls.metrics ?? 0) >= 3, 'three metrics polls');
    expect(server.calls.progress).toBeUndefined();
    expect(server.calls.cache).toBeUndefined();
    expect(model.history.system.length).toBeGreaterThanOrEqual(3);
  });

  it('stands by completely when neither the panel nor the status bar needs data', async () => {
    makeModel(settings({ statusBar: false }));
    await model.start();
    await new Promise(resolve => setTimeout(resolve, 300));
    expect(server.calls).toEqual({});
    expect(model.isStandingBy('metrics')).toBe(true);
  });

  it('fetches every section once the panel shows, in display order of kernels', async () => {
    makeModel();
    model.currentKernelId = 'b';
    await model.start();
    panelVisible = true;
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.refresh();
    expect(server.calls.progress).toBe(1);
    expect(server.calls.cache).toBe(1);
    expect(server.calls.checkpoints).toBe(1);
    expect(server.calls.resources).toBe(1);
    expect(server.calls.registry).toBe(1);
    expect(model.resources!.kernels).toEqual([]);
    expect(model.registry.answer!.list.exists).toBe(true);
    expect(model.progress!.kernels[0].trees[0].desc).toBe('epochs');
    expect(model.kernels().map(k => k.kernel_id)).toEqual(['b', 'a']);
    expect(changes).toBeGreaterThanOrEqual(4);
  });

  it('skips a section switched off in the settings', async () => {
    panelVisible = true;
    makeModel(settings({ sections: { ...DEFAULT_SETTINGS.sections, cache: false } }));
    await model.start();
    await model.refresh();
    expect(server.calls.cache).toBeUndefined();
    expect(server.calls.checkpoints).toBeGreaterThanOrEqual(1);
  });

  it('backs off while the server fails, says why, and recovers', async () => {
    // Pin lumino's jitter to its upper end so the growth is deterministic.
    jest.spyOn(Math, 'random').mockReturnValue(0.999);
    server.failures.metrics = { status: 500, message: 'database is locked' };
    makeModel();
    await model.start();
    await until(() => model.nextRequestIn('metrics') > 200, 'the delay to grow past twice the interval');
    expect(model.error('metrics')).toContain('database is locked');
    const failedCalls = server.calls.metrics;

    delete server.failures.metrics;
    await until(() => model.error('metrics') === null, 'recovery');
    expect(server.calls.metrics).toBeGreaterThan(failedCalls);
    expect(model.nextRequestIn('metrics')).toBe(100);
    expect(model.metrics!.kernels).toHaveLength(2);
  });

  it('raises the backoff ceiling when the extension is missing, and restores it', async () => {
    server.failures.metrics = { status: 404, message: 'Not Found' };
    makeModel();
    await model.start();
    await until(() => model.error('metrics') !== null, 'the first failure');
    expect(model.error('metrics')).toContain('jupyter server extension enable jupyter_resman');
    delete server.failures.metrics;
    await model.refresh(['metrics']);
    expect(model.error('metrics')).toBeNull();
  });

  it('clears the whole cache or one namespace, then refreshes the figures', async () => {
    panelVisible = true;
    makeModel();
    await model.start();
    await model.refresh(['cache']);
    expect(model.cache!.stats.entries).toBe(5);
    expect(await model.clearCache(null)).toBe(5);
    expect(model.cache!.stats.entries).toBe(0);
    await model.clearCache('emb');
    expect(server.cleared).toEqual([{ all: true }, { namespace: 'emb' }]);
  });

  it('deletes a checkpoint and refreshes the list', async () => {
    panelVisible = true;
    makeModel();
    await model.start();
    const before = server.calls.checkpoints ?? 0;
    expect(await model.deleteCheckpoint('run')).toBe(2);
    expect(server.calls.checkpoints).toBeGreaterThan(before);
  });

  it('applies new settings to the history window and the poll frequency', async () => {
    makeModel();
    await model.start();
    model.settings = settings({ refreshInterval: 0.2, historyWindow: 60 });
    expect(model.history.window).toBe(60);
    await until(() => model.nextRequestIn('metrics') === 200, 'the new interval');
  });

  it('asks only for the samples it lacks once it has some', async () => {
    const monitored = (t: number) =>
      metrics({ time: t }, [
        kernel({ kernel_id: 'a', monitoring: true, samples: [{ t: t - 0.5, rss: 1, cpu_percent: 1 }] })
      ]);
    server.metrics = function (since?: number) {
      this.sinces.push(since);
      this.time += 1;
      return Promise.resolve(monitored(this.time));
    };
    makeModel();
    await model.start();
    await until(() => server.sinces.length >= 3, 'three metrics polls');
    expect(server.sinces[0]).toBeUndefined();
    expect(server.sinces[1]).toBe(1000.5);
    expect(server.sinces[2]).toBe(1001.5);
  });

  it('stops polling when disposed', async () => {
    makeModel();
    await model.start();
    await until(() => (server.calls.metrics ?? 0) >= 1, 'a first poll');
    model.dispose();
    const calls = server.calls.metrics;
    await new Promise(resolve => setTimeout(resolve, 300));
    expect(server.calls.metrics).toBe(calls);
    expect(model.isDisposed).toBe(true);
  });
});
