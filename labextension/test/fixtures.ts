/** Builders of server answers shaped like docs/rest-api.md, for the specs. */
import type {
  IKernelMetrics,
  IMetrics,
  IProgressTree,
  IProvider,
  IRegistryItem,
  IRegistryList,
  IRegistryResource
} from '../src/types';

export const GiB = 1024 ** 3;

export function kernel(overrides: Partial<IKernelMetrics> = {}): IKernelMetrics {
  return {
    kernel_id: 'k-1',
    name: 'python3',
    path: 'notebooks/a.ipynb',
    execution_state: 'idle',
    pid: 100,
    rss: GiB,
    cpu_percent: 10,
    memory_limit: null,
    status: 'ok',
    samples: [],
    ...overrides
  };
}

export function metrics(overrides: Partial<IMetrics> = {}, kernels: IKernelMetrics[] = []): IMetrics {
  return {
    time: 1000,
    warning_threshold: 0.8,
    system: {
      memory: { used: 4 * GiB, available: 12 * GiB, total: 16 * GiB, percent: 25, limit: null },
      cpu: { percent: 35, cores: 2, limit_cores: null },
      gpus: []
    },
    kernels,
    ...overrides
  };
}

export function tree(overrides: Partial<IProgressTree> = {}): IProgressTree {
  return {
    id: 1,
    desc: 'epochs',
    n: 3,
    total: 10,
    unit: 'it',
    initial: 0,
    rate: 1.5,
    elapsed: 2,
    eta: 4.6,
    status: 'running',
    percent: 30,
    error: null,
    children: [],
    ...overrides
  };
}

export function resource(overrides: Partial<IRegistryResource> = {}): IRegistryResource {
  return {
    kind: 'asset',
    id: '01J9ZQ3V5X7K2M4N6P8R0T2W4Y',
    name: 'sample 1',
    resource_class: 'sample',
    owner: null,
    attributes: {},
    parent_id: null,
    key: null,
    version: 1,
    created_at: '2024-01-31T12:00:00+00:00',
    updated_at: '2024-01-31T12:00:00+00:00',
    removed_at: null,
    ...overrides
  };
}

export function registryList(overrides: Partial<IRegistryList> = {}): IRegistryList {
  return {
    exists: true,
    location: '/home/me/.resman/registry.sqlite',
    kinds: ['asset', 'grid', 'container'],
    limit: 20,
    offset: 0,
    order: '-created_at',
    resources: [resource()],
    total: 1,
    ...overrides
  };
}

export function registryItem(overrides: Partial<IRegistryItem> = {}): IRegistryItem {
  const res = overrides.resource ?? resource();
  return {
    resource: res,
    hierarchy: { resource_id: res.id, ancestor_ids: [], descendants: 0 },
    ancestors: [],
    children: [],
    children_total: 0,
    history: [],
    ...overrides
  };
}

export function provider(overrides: Partial<IProvider> = {}): IProvider {
  return {
    name: 'db',
    kind: 'sql',
    target: 'postgresql://lab/db',
    health: { status: 'healthy', message: 'SELECT 1', latency_s: 0.0032, checked_at: 990 },
    pool: { in_use: 1, idle: 1, waiting: 0, peak: 2, min_size: 0, max_size: 4 },
    owners: [],
    metrics: {
      acquisitions: 3,
      releases: 2,
      failures: 0,
      timeouts: 0,
      created: 2,
      destroyed: 0,
      invalidated: 0,
      avg_acquire_s: 0.0001,
      avg_hold_s: 2.5,
      max_hold_s: 4,
      provider: {}
    },
    ...overrides
  };
}
