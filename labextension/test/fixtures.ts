/** Builders of server answers shaped like docs/rest-api.md, for the specs. */
import type { IKernelMetrics, IMetrics, IProgressTree } from '../src/types';

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
