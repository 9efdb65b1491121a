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
