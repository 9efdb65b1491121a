/**
 * The Resource providers section's figures: per kernel, per provider, its
 * health, its pool, who holds what for how long, and how it has been used.
 *
 * Everything comes from the snapshots kernels publish to the live feed
 * (`GET /resman/api/resources`); a health check runs only in a kernel
 * (`session.resources.health()`, the dashboard, `%resman resources`), so
 * "not checked" is a normal state, shown as such rather than as a problem.
 */

import { formatCount, formatDuration } from './format';
import { sourceLabel } from './progress';
import type { HealthStatus, IProvider, IProviderOwner, IResourcesReport } from '../types';

/** A provider's health as drawn: the reported status, or `unchecked` before any check. */
export type HealthLevel = HealthStatus | 'unchecked';

/** Worse is larger: a group's dot shows its worst provider. */
const SEVERITY: Record<HealthLevel, number> = {
  healthy: 0,
  unchecked: 1,
  unknown: 2,
  degraded: 3,
  unhealthy: 4
};

const STATUSES: readonly string[] = ['healthy', 'degraded', 'unhealthy', 'unknown'];

/** The health level of a provider (a status the server may add later counts as `unknown`). */
export function healthLevel(provider: Pick<IProvider, 'health'>): HealthLevel {
  const status = provider.health?.status;
  if (status === undefined) {
    return 'unchecked';
  }
  return STATUSES.includes(status) ? status : 'unknown';
}

/** The worst level among providers (`healthy` for none). */
export function worstHealth(providers: readonly Pick<IProvider, 'health'>[]): HealthLevel {
  let worst: HealthLevel = 'healthy';
  for (const provider of providers) {
    const level = healthLevel(provider);
    if (SEVERITY[level] > SEVERITY[worst]) {
      worst = level;
    }
  }
  return worst;
}

/** Milliseconds or seconds, whichever reads better: `0.0032` → `'3.2 ms'`, `75` → `'1:15'`. */
export function formatLatency(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return '–';
  }
  if (seconds < 1) {
    const ms = seconds * 1000;
    if (ms < 0.1) {
      return '<0.1 ms'; // a check that made a Python object: "0.0 ms" would read as broken
    }
    return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  }
  return formatDuration(seconds);
}

/**
 * The health line: `'healthy · 3.2 ms · checked 12s ago'`, the failure's
 * message for an unhealthy one, or how to get a first check.
 */
export function healthText(provider: Pick<IProvider, 'health'>, now: number): string {
  const health = provider.health;
  if (!health) {
    return 'not checked yet (session.resources.health() in the kernel checks it)';
  }
  const parts: string[] = [healthLevel(provider)];
  if (health.latency_s !== null && health.latency_s !== undefined) {
    parts.push(formatLatency(health.latency_s));
  }
  if (health.checked_at) {
    parts.push(`checked ${formatDuration(Math.max(0, now - health.checked_at))} ago`);
  }
  const text = parts.join(' · ');
  return health.message && healthLevel(provider) !== 'healthy' ? `${text}: ${health.message}` : text;
}

/** The pool as a bar (in use out of the maximum) and a line. */
export function poolUsage(pool: IProvider['pool']): { percent: number; text: string } {
  const max = Math.max(0, pool.max_size);
  const percent = max > 0 ? Math.min(100, (100 * Math.max(0, pool.in_use)) / max) : 0;
  const parts = [`${pool.in_use}/${max} in use`, `${pool.idle} idle`];
  if (pool.waiting > 0) {
    parts.push(`${pool.waiting} waiting`);
  }
  return { percent, text: parts.join(' · ') };
}

/** Whether the pool is full and callers queue for it. */
export function poolExhausted(pool: IProvider['pool']): boolean {
  return pool.max_size > 0 && pool.in_use >= pool.max_size && pool.waiting > 0;
}

/** One owner of a provider, as listed. */
export interface IOwnerRow {
  owner: string;
  /** `'2 held, longest 1:05'`. */
  text: string;
  held_s: number;
}

/** Owners, longest hold first (the likeliest forgotten release on top). */
export function ownerRows(owners: readonly IProviderOwner[]): IOwnerRow[] {
  return [...owners]
    .sort((a, b) => b.held_s - a.held_s || a.owner.localeCompare(b.owner))
    .map(o => ({
      owner: o.owner,
      held_s: o.held_s,
      text:
        o.count === 1
          ? `1 held for ${formatDuration(o.held_s)}`
          : `${o.count} held, longest ${formatDuration(o.held_s)}`
    }));
}

/** The usage line: `'12 acquired · 1 failed · avg hold 2.1s'` (zero failures left out). */
export function metricsText(metrics: IProvider['metrics']): string {
  const parts = [`${formatCount(metrics.acquisitions)} acquired`];
  if (metrics.failures > 0) {
    parts.push(`${formatCount(metrics.failures)} failed`);
  }
  if (metrics.timeouts > 0) {
    parts.push(`${formatCount(metrics.timeouts)} timed out`);
  }
  if (metrics.releases > 0) {
    parts.push(`avg hold ${formatDuration(metrics.avg_hold_s)}`);
  }
  if (metrics.acquisitions > 0 && metrics.avg_acquire_s >= 0.001) {
    parts.push(`avg wait ${formatLatency(metrics.avg_acquire_s)}`);
  }
  return parts.join(' · ');
}

/** The providers of one process. */
export interface IProviderGroup {
  key: string;
  label: string;
  kernelId: string | null;
  pid: number;
  providers: IProvider[];
  worst: HealthLevel;
}

/**
 * Group the report by process: the current notebook's kernel first, then
 * other kernels, then other processes, each by label. Providers keep the
 * server's order (by name), so rows do not move between polls.
 */
export function providerGroups(
  report: IResourcesReport | null,
  currentKernelId: string | null
): IProviderGroup[] {
  if (!report) {
    return [];
  }
  const groups = report.kernels
    .filter(source => source.providers.length > 0)
    .map(source => ({
      key: `${source.kernel_id ?? 'pid'}:${source.pid}`,
      label: sourceLabel(source),
      kernelId: source.kernel_id,
      pid: source.pid,
      providers: source.providers,
      worst: worstHealth(source.providers)
    }));
  const rank = (g: IProviderGroup): number =>
    g.kernelId !== null && g.kernelId === currentKernelId ? 0 : g.kernelId !== null ? 1 : 2;
  return groups.sort(
    (a, b) => rank(a) - rank(b) || a.label.localeCompare(b.label) || a.pid - b.pid
  );
}
