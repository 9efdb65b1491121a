/**
 * Kernel-level logic of the sidebar: the order kernels are listed in, their
 * memory/CPU histories, and the warning level the status bar shows.
 */

import { History } from './history';
import { formatBytes, formatPercent } from './format';
import type { IKernelMetrics, IMetrics, LimitStatus } from '../types';

/** The series a kernel graph draws. */
export type KernelSeries = 'rss' | 'cpu_percent';
export const KERNEL_SERIES: readonly KernelSeries[] = ['rss', 'cpu_percent'];

/** The series the system graph draws. */
export type SystemSeries = 'used' | 'cpu_percent';
export const SYSTEM_SERIES: readonly SystemSeries[] = ['used', 'cpu_percent'];

/**
 * Order kernels for display: the current notebook's kernel first, then the
 * others by notebook path, kernel name and id.
 *
 * The order depends only on stable fields, never on busy/idle state or
 * memory, so rows do not jump around between polls while the user reads
 * them. Kernels without a path (started from the API, not a notebook) go
 * last.
 */
export function orderKernels<
  T extends Pick<IKernelMetrics, 'kernel_id' | 'path' | 'name'>
>(kernels: readonly T[], currentKernelId: string | null): T[] {
  const key = (k: T): [number, number, string, string, string] => [
    k.kernel_id === currentKernelId ? 0 : 1,
    k.path ? 0 : 1,
    k.path ?? '',
    k.name ?? '',
    k.kernel_id
  ];
  return [...kernels].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] < kb[i]) {
        return -1;
      }
      if (ka[i] > kb[i]) {
        return 1;
      }
    }
    return 0;
  });
}

/** A short label for a kernel: its notebook's file name, else name and id. */
export function kernelLabel(kernel: Pick<IKernelMetrics, 'kernel_id' | 'path' | 'name'>): string {
  if (kernel.path) {
    const parts = kernel.path.split('/');
    return parts[parts.length - 1] || kernel.path;
  }
  return `${kernel.name || 'kernel'} ${kernel.kernel_id.slice(0, 8)}`;
}

/**
 * The warning level of a memory figure against a limit.
 *
 * `threshold` is the fraction of the limit (0–1) past which it warns, as the
 * server's `warning_threshold`. Without a limit nothing can be exceeded.
 */
export function memoryLevel(
  used: number | null,
  limit: number | null,
  threshold: number
): LimitStatus {
  if (used === null || !limit || limit <= 0) {
    return 'ok';
  }
  if (used > limit) {
    return 'exceeded';
  }
  return used >= limit * threshold ? 'warning' : 'ok';
}

const LEVEL_RANK: Record<LimitStatus, number> = { ok: 0, warning: 1, exceeded: 2 };

/**
 * A status from the server as one of the three levels drawn. Anything else
 * (e.g. `unknown` for a kernel whose process the server cannot see) is
 * drawn as `ok`: there is nothing to warn about.
 */
export function toLevel(status: string | null | undefined): LimitStatus {
  return status === 'warning' || status === 'exceeded' ? status : 'ok';
}

/** The most severe of two levels (statuses the server may add count as `ok`). */
export function worstLevel(a: string | null | undefined, b: string | null | undefined): LimitStatus {
  const la = toLevel(a);
  const lb = toLevel(b);
  return LEVEL_RANK[la] >= LEVEL_RANK[lb] ? la : lb;
}

/** What the status-bar item shows. */
export interface IStatusBarState {
  /** Short text, e.g. `Mem: 1.2 GiB / 8 GiB`. */
  text: string;
  /** Longer text for the tooltip. */
  title: string;
  level: LimitStatus;
}

/**
 * The status-bar state for the current kernel (or the system when no
 * notebook kernel is current). The server's `status` is trusted, and the
 * level is also recomputed here so a limit set since the last poll of the
 * server's own check still colours the item.
 */
export function statusBarState(
  metrics: IMetrics | null,
  currentKernelId: string | null
): IStatusBarState | null {
  if (!metrics) {
    return null;
  }
  const threshold = metrics.warning_threshold;
  const kernel = currentKernelId
    ? metrics.kernels.find(k => k.kernel_id === currentKernelId)
    : undefined;
  if (kernel) {
    const limit = kernel.memory_limit ?? metrics.system.memory.limit;
    const level = worstLevel(kernel.status, memoryLevel(kernel.rss, limit, threshold));
    const usage = limit ? `${formatBytes(kernel.rss)} / ${formatBytes(limit)}` : formatBytes(kernel.rss);
    return {
      text: `Mem: ${usage}`,
      title:
        `Kernel ${kernelLabel(kernel)}: ${formatBytes(kernel.rss)} memory` +
        (limit ? ` of ${formatBytes(limit)} (${formatPercent((100 * (kernel.rss ?? 0)) / limit)})` : '') +
        `, CPU ${formatPercent(kernel.cpu_percent)}. Click to open the Resources sidebar.`,
      level
    };
  }
  const memory = metrics.system.memory;
  const limit = memory.limit ?? memory.total;
  return {
    text: `Mem: ${formatBytes(memory.used)} / ${formatBytes(limit)}`,
    title:
      `System: ${formatBytes(memory.used)} of ${formatBytes(limit)} used ` +
      `(${formatPercent(memory.percent)}). Click to open the Resources sidebar.`,
    level: memoryLevel(memory.used, limit, threshold)
  };
}

/**
 * Histories of every kernel and of the system, fed one metrics answer at a
 * time.
 */
export class MetricsHistory {
  constructor(window: number) {
    this._window = window;
    this.system = new History(SYSTEM_SERIES, window);
  }

  /** The system's memory and CPU over the window. */
  readonly system: History<SystemSeries>;

  /** Seconds of history kept. */
  get window(): number {
    return this._window;
  }

  set window(seconds: number) {
    this._window = seconds;
    this.system.window = seconds;
    for (const history of this._kernels.values()) {
      history.window = seconds;
    }
  }

  /** The history of one kernel (undefined for a kernel never seen). */
  kernel(kernelId: string): History<KernelSeries> | undefined {
    return this._kernels.get(kernelId);
  }

  /** Ids of the kernels with a history. */
  kernelIds(): string[] {
    return [...this._kernels.keys()];
  }

  /**
   * Take one metrics answer.
   *
   * A kernel whose monitor is running is drawn from its samples alone: they
   * are evenly spaced and measured by the kernel itself, and mixing in the
   * server's own reading of the same process would make a sawtooth where
   * the two disagree. Other kernels are drawn from the server's readings,
   * one per poll. Kernels that are gone are dropped.
   */
  update(metrics: IMetrics): void {
    const now = metrics.time;
    this.system.add(now, {
      used: metrics.system.memory.used,
      cpu_percent: metrics.system.cpu.percent
    });
    this.system.trim(now);

    const seen = new Set<string>();
    for (const kernel of metrics.kernels) {
      seen.add(kernel.kernel_id);
      let history = this._kernels.get(kernel.kernel_id);
      if (!history) {
        history = new History(KERNEL_SERIES, this._window);
        this._kernels.set(kernel.kernel_id, history);
      }
      // `monitoring` is absent from older servers: then samples mean a monitor.
      const monitored = kernel.monitoring ?? (kernel.samples?.length ?? 0) > 0;
      if (monitored) {
        history.merge((kernel.samples ?? []) as unknown as Record<string, unknown>[]);
        this._monitored.add(kernel.kernel_id);
      } else {
        this._monitored.delete(kernel.kernel_id);
        if (kernel.rss !== null) {
          history.add(now, { rss: kernel.rss, cpu_percent: kernel.cpu_percent });
        }
      }
      history.trim(now);
    }
    for (const id of [...this._kernels.keys()]) {
      if (!seen.has(id)) {
        this._kernels.delete(id);
        this._monitored.delete(id);
      }
    }
  }

  /**
   * The `since` to ask the server with: the oldest of the newest samples of
   * the monitored kernels, so every one of them gets what it lacks and no
   * more. `undefined` (ask for everything) when no kernel is monitored or one
   * has no sample yet.
   */
  samplesSince(): number | undefined {
    let since: number | undefined;
    for (const id of this._monitored) {
      const latest = this._kernels.get(id)?.latestTime ?? null;
      if (latest === null) {
        return undefined;
      }
      since = since === undefined ? latest : Math.min(since, latest);
    }
    return since;
  }

  /** Forget everything (e.g. after the server restarted). */
  clear(): void {
    this.system.clear();
    this._kernels.clear();
    this._monitored.clear();
  }

  private _window: number;
  private _kernels = new Map<string, History<KernelSeries>>();
  private _monitored = new Set<string>();
}
