/**
 * The cache section's figures: the hit rate over time (from the per-minute,
 * per-namespace history the server keeps) and the namespace table.
 */

import type { ICacheHistoryRow, INamespaceStats } from '../types';

/** uPlot columns: minute start times, hit rate (0–100 or null), lookups. */
export type HitRateColumns = [number[], (number | null)[], number[]];

/**
 * Hit rate per time bucket, summed over namespaces (or for one namespace).
 *
 * A bucket with no lookups has no hit rate: it is `null` (a gap in the
 * line), not 0%, which would read as "every lookup missed". `bucket` is the
 * bucket width in seconds (the server's rows are per minute; wider buckets
 * smooth a long window).
 *
 * ```ts
 * hitRateSeries([{ time: 60, namespace: 'a', hits: 3, misses: 1 }]);
 * // [[60], [75], [4]]
 * ```
 */
export function hitRateSeries(
  history: readonly ICacheHistoryRow[],
  options: { namespace?: string | null; bucket?: number } = {}
): HitRateColumns {
  const bucket = options.bucket && options.bucket > 0 ? options.bucket : 60;
  const sums = new Map<number, { hits: number; misses: number }>();
  for (const row of history) {
    if (options.namespace && row.namespace !== options.namespace) {
      continue;
    }
    if (!Number.isFinite(row.time)) {
      continue;
    }
    const start = Math.floor(row.time / bucket) * bucket;
    const sum = sums.get(start) ?? { hits: 0, misses: 0 };
    sum.hits += Math.max(0, row.hits || 0);
    sum.misses += Math.max(0, row.misses || 0);
    sums.set(start, sum);
  }
  const times = [...sums.keys()].sort((a, b) => a - b);
  const rates: (number | null)[] = [];
  const lookups: number[] = [];
  for (const time of times) {
    const { hits, misses } = sums.get(time)!;
    const total = hits + misses;
    lookups.push(total);
    rates.push(total > 0 ? (100 * hits) / total : null);
  }
  return [times, rates, lookups];
}

/** Namespaces for the table: largest first, then by name. */
export function sortNamespaces(namespaces: readonly INamespaceStats[]): INamespaceStats[] {
  return [...namespaces].sort(
    (a, b) => b.bytes - a.bytes || a.namespace.localeCompare(b.namespace)
  );
}

/** The text of the confirmation dialog for a clear. */
export function clearPrompt(
  namespace: string | null,
  entries: number,
  bytes: string
): { title: string; body: string; label: string } {
  if (namespace === null) {
    return {
      title: 'Clear the whole cache?',
      body:
        `This removes all ${entries} cached entries (${bytes}) of every namespace, ` +
        'for every kernel using this home. Cached results are recomputed when next needed.',
      label: 'Clear all'
    };
  }
  return {
    title: `Clear the cache namespace “${namespace}”?`,
    body:
      `This removes its ${entries} entries (${bytes}). ` +
      'Cached results are recomputed when next needed.',
    label: 'Clear'
  };
}
