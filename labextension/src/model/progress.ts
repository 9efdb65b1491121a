/**
 * Turn the progress trees every process publishes into rows to draw: one
 * row per bar, indented by depth, with the figures already formatted the
 * way the notebook's own bars format them (tqdm style).
 */

import { formatCount, formatDuration, formatRate } from './format';
import { kernelLabel } from './kernels';
import type { IProgressReport, IProgressSource, IProgressTree } from '../types';

/** One bar, ready to draw. */
export interface IProgressRow {
  /** Stable across polls, for React keys and for keeping DOM nodes. */
  key: string;
  depth: number;
  desc: string;
  /** 0–100, or `null` when the total is unknown (an indeterminate bar). */
  percent: number | null;
  /** `'30/100 it'`, or `'30 it'` without a total. */
  counter: string;
  rate: string;
  /** `'ETA 1:05'`, `'took 2:10'` when finished, `''` when unknown. */
  timing: string;
  status: 'running' | 'done' | 'failed';
  error: string | null;
}

/** All bars of one process (a kernel or another publisher). */
export interface IProgressGroup {
  key: string;
  label: string;
  kernelId: string | null;
  rows: IProgressRow[];
  running: number;
}

/** Normalise a status the server may extend later to the three we draw. */
export function rowStatus(status: string): IProgressRow['status'] {
  if (status === 'done' || status === 'failed') {
    return status;
  }
  return 'running';
}

/**
 * The percentage of a bar: the server's when given, else `n / total`,
 * clamped to 0–100; `null` without a total.
 */
export function barPercent(tree: Pick<IProgressTree, 'n' | 'total' | 'percent' | 'status'>): number | null {
  let percent = tree.percent;
  if (percent === null || percent === undefined || !Number.isFinite(percent)) {
    if (!tree.total || tree.total <= 0) {
      // A finished bar without a total is still complete.
      return tree.status === 'done' ? 100 : null;
    }
    percent = (100 * tree.n) / tree.total;
  }
  return Math.min(100, Math.max(0, percent));
}

/** Flatten one tree depth-first (parents before their children). */
export function flattenTree(tree: IProgressTree, prefix = '', depth = 0): IProgressRow[] {
  const key = `${prefix}/${tree.id}`;
  const status = rowStatus(tree.status);
  const unit = tree.unit || 'it';
  const counter =
    tree.total !== null && tree.total !== undefined
      ? `${formatCount(tree.n)}/${formatCount(tree.total)} ${unit}`
      : `${formatCount(tree.n)} ${unit}`;
  let timing = '';
  if (status === 'running' && tree.eta !== null && tree.eta !== undefined) {
    timing = `ETA ${formatDuration(tree.eta)}`;
  } else if (status !== 'running' && tree.elapsed !== null && tree.elapsed !== undefined) {
    timing = `took ${formatDuration(tree.elapsed)}`;
  }
  const row: IProgressRow = {
    key,
    depth,
    desc: tree.desc || '',
    percent: barPercent(tree),
    counter,
    rate: formatRate(tree.rate, unit),
    timing,
    status,
    error: tree.error ?? null
  };
  const rows = [row];
  for (const child of tree.children ?? []) {
    rows.push(...flattenTree(child, key, depth + 1));
  }
  return rows;
}

/** A label for a publisher (of progress or resources): its notebook, else its pid. */
export function sourceLabel(source: Pick<IProgressSource, 'pid' | 'kernel_id' | 'path'>): string {
  if (source.kernel_id) {
    return kernelLabel({ kernel_id: source.kernel_id, path: source.path, name: 'kernel' });
  }
  return source.path ? kernelLabel({ kernel_id: '', path: source.path, name: '' }) : `process ${source.pid}`;
}

/**
 * Group the report by publisher, the current kernel's group first, then
 * groups with running bars, then by label. Publishers with no bars at all
 * are left out.
 */
export function progressGroups(
  report: IProgressReport | null,
  currentKernelId: string | null
): IProgressGroup[] {
  if (!report) {
    return [];
  }
  const groups: IProgressGroup[] = [];
  for (const source of report.kernels) {
    if (!source.trees || source.trees.length === 0) {
      continue;
    }
    const key = `${source.kernel_id ?? 'pid'}:${source.pid}`;
    const rows = source.trees.flatMap(tree => flattenTree(tree, key));
    groups.push({
      key,
      label: sourceLabel(source),
      kernelId: source.kernel_id,
      rows,
      running: rows.filter(r => r.status === 'running').length
    });
  }
  const rank = (g: IProgressGroup): number =>
    g.kernelId !== null && g.kernelId === currentKernelId ? 0 : g.running > 0 ? 1 : 2;
  return groups.sort((a, b) => rank(a) - rank(b) || a.label.localeCompare(b.label) || a.key.localeCompare(b.key));
}
