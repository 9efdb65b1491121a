/**
 * The Kernels section: the system's and each kernel's memory and CPU over
 * the history window, with the limit drawn; the current notebook's kernel
 * first.
 */

import * as React from 'react';

import { formatBytes, formatPercent } from '../model/format';
import { kernelLabel, memoryLevel, worstLevel } from '../model/kernels';
import type { ResourcesModel } from '../model/resources';
import type { IKernelMetrics, IMetrics } from '../types';
import { ISeriesSpec, TimeSeriesChart } from './chart';
import { ErrorBanner, Placeholder } from './section';

const MEMORY_SERIES: ISeriesSpec[] = [
  { label: 'Memory', unit: 'bytes', color: 'var(--jp-brand-color1)', fill: true },
  { label: 'CPU', unit: 'percent', color: 'var(--jp-accent-color1)' },
  { label: 'Limit', unit: 'bytes', color: 'var(--jp-error-color1)', dash: [4, 4] }
];

/** A constant column (the limit line) as long as the time column. */
function constant(times: number[], value: number | null): (number | null)[] {
  return times.map(() => value);
}

function SystemCard(props: { metrics: IMetrics; model: ResourcesModel }): JSX.Element {
  const { metrics, model } = props;
  const { memory, cpu, gpus, disk } = metrics.system;
  const limit = memory.limit ?? memory.total;
  const [times, used, cpuPercent] = model.history.system.columns();
  const level = memoryLevel(memory.used, limit, metrics.warning_threshold);
  const cores = cpu.limit_cores ?? cpu.cores;
  return (
    <div className={`jp-resman-card jp-resman-level-${level}`} data-kernel="system">
      <div className="jp-resman-card-header">
        <span className="jp-resman-card-title">System</span>
        <span className="jp-resman-card-figures">
          {formatBytes(memory.used)} / {formatBytes(limit)}
          {memory.limit ? ' (container)' : ''} · CPU {formatPercent(cpu.percent)} of {cores} cores
        </span>
      </div>
      <TimeSeriesChart
        title={`System memory and CPU over the last ${model.history.window} s`}
        series={MEMORY_SERIES}
        data={[times, used, cpuPercent, constant(times, limit)]}
        now={metrics.time}
        window={model.history.window}
        bytesFloor={limit}
        height={90}
      />
      {disk && (
        <div className="jp-resman-detail" title="The filesystem of the jupyter_resman home">
          Disk: {formatBytes(disk.used)} / {formatBytes(disk.total)} ({formatPercent(disk.percent)}),{' '}
          {formatBytes(disk.free)} free
        </div>
      )}
      {gpus.map(gpu => (
        <div className="jp-resman-detail" key={gpu.index}>
          GPU {gpu.index} {gpu.name}: {formatPercent(gpu.utilization)} ·{' '}
          {formatBytes(gpu.memory_used)} / {formatBytes(gpu.memory_total)}
          {typeof gpu.temperature === 'number' ? ` · ${Math.round(gpu.temperature)} °C` : ''}
          {typeof gpu.power_w === 'number' ? ` · ${Math.round(gpu.power_w)} W` : ''}
        </div>
      ))}
    </div>
  );
}

function KernelCard(props: {
  kernel: IKernelMetrics;
  metrics: IMetrics;
  model: ResourcesModel;
  current: boolean;
}): JSX.Element {
  const { kernel, metrics, model, current } = props;
  const history = model.history.kernel(kernel.kernel_id);
  const [times, rss, cpuPercent] = history
    ? history.columns()
    : ([[], [], []] as [number[], (number | null)[], (number | null)[]]);
  const limit = kernel.memory_limit;
  const level = worstLevel(
    kernel.status,
    memoryLevel(kernel.rss, limit, metrics.warning_threshold)
  );
  const label = kernelLabel(kernel);
  return (
    <div
      className={`jp-resman-card jp-resman-level-${level}${current ? ' jp-mod-current' : ''}`}
      data-kernel={kernel.kernel_id}
    >
      <div className="jp-resman-card-header" title={kernel.path ?? kernel.kernel_id}>
        <span
          className={`jp-resman-state jp-resman-state-${kernel.execution_state}`}
          title={kernel.execution_state}
        />
        <span className="jp-resman-card-title">{label}</span>
        {current && <span className="jp-resman-badge">current</span>}
        {kernel.monitoring === false && (
          <span
            className="jp-resman-hint"
            title="Its monitor is off: the graph shows the server's reading at each refresh. Run session.monitor.start() in the kernel for its own samples."
          >
            monitor off
          </span>
        )}
        <span className="jp-resman-card-figures">
          {formatBytes(kernel.rss)}
          {limit ? ` / ${formatBytes(limit)}` : ''} · CPU {formatPercent(kernel.cpu_percent)}
          {kernel.gpu_memory ? ` · GPU ${formatBytes(kernel.gpu_memory)}` : ''}
        </span>
      </div>
      <TimeSeriesChart
        title={`Memory and CPU of ${label} over the last ${model.history.window} s`}
        series={MEMORY_SERIES}
        data={[times, rss, cpuPercent, constant(times, limit)]}
        now={metrics.time}
        window={model.history.window}
        bytesFloor={limit}
        height={70}
        legend={false}
      />
    </div>
  );
}

/** The body of the Kernels section. */
export function KernelsView(props: { model: ResourcesModel }): JSX.Element {
  const { model } = props;
  const metrics = model.metrics;
  const kernels = model.kernels();
  return (
    <div className="jp-resman-kernels">
      <ErrorBanner model={model} route="metrics" />
      {metrics ? (
        <>
          <SystemCard metrics={metrics} model={model} />
          {kernels.length === 0 && <Placeholder>No running kernels.</Placeholder>}
          {kernels.map(kernel => (
            <KernelCard
              key={kernel.kernel_id}
              kernel={kernel}
              metrics={metrics}
              model={model}
              current={kernel.kernel_id === model.currentKernelId}
            />
          ))}
        </>
      ) : (
        !model.error('metrics') && <Placeholder>Loading…</Placeholder>
      )}
    </div>
  );
}
