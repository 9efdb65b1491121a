/**
 * The JSON the server extension answers (docs/rest-api.md), as TypeScript.
 *
 * Times are seconds since the epoch, sizes bytes, percentages 0–100. These
 * interfaces are the whole contract between the sidebar and the server; keep
 * them in step with docs/rest-api.md.
 */

/** One monitor sample a kernel published to the live feed. */
export interface ISample {
  t: number;
  rss: number;
  cpu_percent: number;
}

export type LimitStatus = 'ok' | 'warning' | 'exceeded';

/** A kernel the server's kernel manager knows. */
export interface IKernelMetrics {
  kernel_id: string;
  name: string;
  path: string | null;
  execution_state: string;
  pid: number | null;
  rss: number | null;
  cpu_percent: number | null;
  memory_limit: number | null;
  /** `ok`, `warning` or `exceeded`; `unknown` when the server cannot read the process. */
  status: LimitStatus | string;
  /** Whether the kernel's own monitor is running (its samples feed the graph). */
  monitoring?: boolean;
  /** Live descendant processes counted in `rss` and `cpu_percent`. */
  children?: number | null;
  /** GPU memory held by the kernel process (null without a GPU). */
  gpu_memory?: number | null;
  samples: ISample[];
}

export interface IGpuMetrics {
  index: number;
  name: string;
  utilization: number | null;
  memory_used: number | null;
  memory_total: number | null;
  temperature?: number | null;
  power_w?: number | null;
}

export interface IDiskUsage {
  total: number;
  used: number;
  free: number;
  percent: number;
}

/** `GET /resman/api/metrics`. */
export interface IMetrics {
  time: number;
  warning_threshold: number;
  system: {
    memory: {
      used: number;
      available: number;
      total: number;
      percent: number;
      limit: number | null;
    };
    cpu: { percent: number; cores: number; limit_cores: number | null };
    /** The filesystem of the jupyter_resman home (null if unreadable). */
    disk?: IDiskUsage | null;
    gpus: IGpuMetrics[];
  };
  kernels: IKernelMetrics[];
}

export interface ITierStats {
  hits: number;
  entries: number;
  bytes: number;
}

export interface ICacheStats {
  hits: number;
  misses: number;
  hit_rate: number;
  sets: number;
  evictions: number;
  evicted_bytes: number;
  entries: number;
  bytes: number;
  max_bytes: number;
  time_saved_s: number;
  memory: ITierStats;
  disk: ITierStats;
}

export interface INamespaceStats {
  namespace: string;
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  hit_rate: number;
  time_saved_s: number;
}

/** Hits and misses of one namespace during one minute. */
export interface ICacheHistoryRow {
  time: number;
  namespace: string;
  hits: number;
  misses: number;
}

/** `GET /resman/api/cache`. */
export interface ICacheReport {
  stats: ICacheStats;
  namespaces: INamespaceStats[];
  history: ICacheHistoryRow[];
}

/** `POST /resman/api/cache/clear` body: all given conditions must hold. */
export interface ICacheClearRequest {
  namespace?: string;
  tags?: string[];
  keys?: string[];
  all?: boolean;
}

export type ProgressStatus = 'running' | 'done' | 'failed' | string;

/** One progress bar and the bars nested in it. */
export interface IProgressTree {
  id: number | string;
  desc: string | null;
  n: number;
  total: number | null;
  unit: string;
  initial: number;
  rate: number | null;
  elapsed: number | null;
  eta: number | null;
  status: ProgressStatus;
  percent: number | null;
  error: string | null;
  children: IProgressTree[];
}

/** The progress trees one process publishes. */
export interface IProgressSource {
  pid: number;
  kernel_id: string | null;
  path: string | null;
  trees: IProgressTree[];
}

/** `GET /resman/api/progress`. */
export interface IProgressReport {
  kernels: IProgressSource[];
}

export interface ICheckpoint {
  name: string;
  versions: number;
  latest_version: number;
  time: number;
  bytes: number;
  description: string | null;
  /** False when the newest version's file is truncated. */
  complete?: boolean;
}

/** `GET /resman/api/checkpoints`. */
export interface ICheckpointList {
  checkpoints: ICheckpoint[];
}

/**
 * One registry resource: `Resource.to_dict()`. Unlike the rest of the API,
 * its times are ISO 8601 strings (UTC). Kinds add their own fields
 * (`quantity`, `capacity`, `unit`, `rows`, `columns`…).
 */
export interface IRegistryResource {
  kind: string;
  id: string;
  name: string;
  resource_class: string;
  owner: string | null;
  attributes: Record<string, unknown>;
  parent_id: string | null;
  key: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  removed_at: string | null;
  [field: string]: unknown;
}

/** `GET /resman/api/registry`: one page of the resources matching the filters. */
export interface IRegistryList {
  /** False while the home has no registry (none is created by asking). */
  exists: boolean;
  /** The registry database (file or URL without password), or where it will be. */
  location: string;
  /** The kinds a `kind` filter accepts (`container` matches every container kind). */
  kinds: string[];
  limit: number;
  offset: number;
  order: string;
  resources: IRegistryResource[];
  /** How many resources match, on every page together. */
  total: number;
}

/** One recorded change of a resource. */
export interface IRegistryChange {
  id: number;
  resource_id: string;
  version: number;
  change_type: 'added' | 'updated' | 'removed' | 'restored' | string;
  changed_at: string;
  detail: string | null;
  /** `{field: [old, new]}` of the fields this change touched. */
  changes: Record<string, [unknown, unknown]>;
}

/** `GET /resman/api/registry/{id}`. */
export interface IRegistryItem {
  resource: IRegistryResource;
  /** Null for a removed resource. */
  hierarchy: { resource_id: string; ancestor_ids: string[]; descendants: number } | null;
  /** The resources of `hierarchy.ancestor_ids`, the parent first. */
  ancestors: IRegistryResource[];
  /** The first resources directly inside (oldest first); `children_total` counts them all. */
  children: IRegistryResource[];
  children_total: number;
  /** The newest changes, newest first. */
  history: IRegistryChange[];
}

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy' | 'unknown';

/** One resource a provider handed out, still held. */
export interface IProviderLease {
  id: number | null;
  /** Seconds held until the report was made. */
  held_s: number;
  acquired_at: number | null;
  where: string;
  thread: string;
}

/** Everything one owner (a cell, a thread) holds of a provider. */
export interface IProviderOwner {
  owner: string;
  count: number;
  /** The longest hold of this owner, in seconds. */
  held_s: number;
  leases: IProviderLease[];
}

/** One provider registered in a kernel, as it last published it. */
export interface IProvider {
  name: string;
  kind: string;
  target: string;
  /** Null until a health check ran in the kernel. */
  health: {
    status: HealthStatus;
    message: string;
    latency_s: number | null;
    checked_at: number | null;
  } | null;
  pool: { in_use: number; idle: number; waiting: number; peak: number; min_size: number; max_size: number };
  /** Longest hold first. */
  owners: IProviderOwner[];
  metrics: {
    acquisitions: number;
    releases: number;
    failures: number;
    timeouts: number;
    created: number;
    destroyed: number;
    invalidated: number;
    avg_acquire_s: number;
    avg_hold_s: number;
    max_hold_s: number;
    provider: Record<string, string | number | boolean | null>;
  };
}

/** The providers one process publishes. */
export interface IResourcesSource {
  pid: number;
  kernel_id: string | null;
  path: string | null;
  /** When the process last published (epoch seconds). */
  updated: number;
  providers: IProvider[];
}

/** `GET /resman/api/resources`. */
export interface IResourcesReport {
  time: number;
  kernels: IResourcesSource[];
}
