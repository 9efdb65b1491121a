/**
 * The Cache section: hit rate over time, size and entries per namespace,
 * time saved, and clearing a namespace or everything behind a confirmation.
 */

import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { clearIcon, deleteIcon, ToolbarButton, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import * as React from 'react';

import { clearPrompt, hitRateSeries, sortNamespaces } from '../model/cache';
import { formatBytes, formatCount, formatDuration, formatPercent } from '../model/format';
import type { ResourcesModel } from '../model/resources';
import { ISeriesSpec, TimeSeriesChart } from './chart';
import { ErrorBanner, Placeholder } from './section';

const HIT_RATE_SERIES: ISeriesSpec[] = [
  { label: 'Hit rate', unit: 'percent', color: 'var(--jp-success-color1)', fill: true, points: true }
];

/**
 * Ask, then clear one namespace (or everything with `null`). Resolves to
 * whether anything was cleared.
 */
export async function confirmClear(model: ResourcesModel, namespace: string | null): Promise<boolean> {
  const stats = model.cache?.stats;
  const ns = namespace === null ? undefined : model.cache?.namespaces.find(n => n.namespace === namespace);
  const prompt = clearPrompt(
    namespace,
    ns ? ns.entries : stats?.entries ?? 0,
    formatBytes(ns ? ns.bytes : stats?.bytes ?? 0)
  );
  const result = await showDialog({
    title: prompt.title,
    body: prompt.body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: prompt.label })]
  });
  if (!result.button.accept) {
    return false;
  }
  try {
    await model.clearCache(namespace);
    return true;
  } catch (error) {
    await showErrorMessage('Clearing the cache failed', error as Error);
    return false;
  }
}

/** The toolbar button that clears the whole cache. */
export function clearAllButton(model: ResourcesModel): ToolbarButton {
  return new ToolbarButton({
    icon: clearIcon,
    tooltip: 'Clear the whole cache…',
    className: 'jp-resman-clear-all',
    onClick: () => void confirmClear(model, null)
  });
}

/** Bucket width for a history span: minutes up to 3 h, then 10 min, then hours. */
function bucketFor(span: number): number {
  return span <= 3 * 3600 ? 60 : span <= 24 * 3600 ? 600 : 3600;
}

/** The body of the Cache section. */
export function CacheView(props: { model: ResourcesModel }): JSX.Element {
  const { model } = props;
  const report = model.cache;
  const now = model.metrics?.time ?? Date.now() / 1000;
  if (!report) {
    return (
      <div className="jp-resman-cache">
        <ErrorBanner model={model} route="cache" />
        {!model.error('cache') && <Placeholder>Loading…</Placeholder>}
      </div>
    );
  }
  const { stats } = report;
  const first = report.history.length ? Math.min(...report.history.map(r => r.time)) : now;
  const span = Math.max(3600, now - first + 60);
  const [times, rates] = hitRateSeries(report.history, { bucket: bucketFor(span) });
  const namespaces = sortNamespaces(report.namespaces);
  return (
    <div className="jp-resman-cache">
      <ErrorBanner model={model} route="cache" />
      <dl className="jp-resman-figures" data-entries={stats.entries}>
        <dt>Hit rate</dt>
        <dd>
          {stats.hits + stats.misses > 0 ? formatPercent(100 * stats.hit_rate) : '–'} (
          {formatCount(stats.hits)} hits, {formatCount(stats.misses)} misses)
        </dd>
        <dt>Entries</dt>
        <dd className="jp-resman-cache-entries">{formatCount(stats.entries)}</dd>
        <dt>Size</dt>
        <dd>
          {formatBytes(stats.bytes)} of {formatBytes(stats.max_bytes)}
        </dd>
        <dt>Time saved</dt>
        <dd>{formatDuration(stats.time_saved_s)}</dd>
      </dl>
      <TimeSeriesChart
        title="Cache hit rate over time"
        series={HIT_RATE_SERIES}
        data={[times, rates]}
        now={now}
        window={span}
        height={90}
      />
      {namespaces.length === 0 ? (
        <Placeholder>The cache is empty.</Placeholder>
      ) : (
        <table className="jp-resman-table">
          <thead>
            <tr>
              <th>Namespace</th>
              <th>Entries</th>
              <th>Size</th>
              <th>Hits</th>
              <th>Saved</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {namespaces.map(ns => (
              <tr key={ns.namespace} data-namespace={ns.namespace}>
                <td title={ns.namespace}>{ns.namespace}</td>
                <td>{formatCount(ns.entries)}</td>
                <td>{formatBytes(ns.bytes)}</td>
                <td>{ns.hits + ns.misses > 0 ? formatPercent(100 * ns.hit_rate) : '–'}</td>
                <td>{formatDuration(ns.time_saved_s)}</td>
                <td>
                  <ToolbarButtonComponent
                    icon={deleteIcon}
                    tooltip={`Clear the namespace “${ns.namespace}”…`}
                    className="jp-resman-clear-namespace"
                    onClick={() => void confirmClear(model, ns.namespace)}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
