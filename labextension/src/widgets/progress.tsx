/**
 * The Progress section: every kernel's running bars, nested, with rate,
 * ETA and status; finished bars stay for a while (the server keeps them
 * 30 s) so a quick loop is still seen ending.
 */

import * as React from 'react';

import { IProgressRow, progressGroups } from '../model/progress';
import type { ResourcesModel } from '../model/resources';
import { ErrorBanner, Placeholder } from './section';

function Bar(props: { row: IProgressRow }): JSX.Element {
  const { row } = props;
  const determinate = row.percent !== null;
  return (
    <div
      className={`jp-resman-progress-row jp-resman-status-${row.status}`}
      style={{ paddingLeft: `${row.depth * 12}px` }}
      data-status={row.status}
      data-depth={row.depth}
      data-desc={row.desc}
      data-percent={determinate ? row.percent!.toFixed(1) : ''}
    >
      <div className="jp-resman-progress-line">
        <span className="jp-resman-progress-desc" title={row.desc}>
          {row.desc || '(no description)'}
        </span>
        <span className="jp-resman-progress-counter">{row.counter}</span>
      </div>
      <div
        className={`jp-resman-bar${determinate ? '' : ' jp-mod-indeterminate'}`}
        role="progressbar"
        aria-label={row.desc || 'progress'}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={determinate ? Math.round(row.percent!) : undefined}
      >
        <div className="jp-resman-bar-fill" style={{ width: determinate ? `${row.percent}%` : undefined }} />
      </div>
      <div className="jp-resman-progress-line jp-resman-progress-meta">
        <span>{row.status === 'running' ? row.rate : row.status}</span>
        <span>{row.timing}</span>
      </div>
      {row.error && <div className="jp-resman-progress-error">{row.error}</div>}
    </div>
  );
}

/** The body of the Progress section. */
export function ProgressView(props: { model: ResourcesModel }): JSX.Element {
  const { model } = props;
  const groups = progressGroups(model.progress, model.currentKernelId);
  return (
    <div className="jp-resman-progress">
      <ErrorBanner model={model} route="progress" />
      {model.progress === null && !model.error('progress') && <Placeholder>Loading…</Placeholder>}
      {model.progress !== null && groups.length === 0 && (
        <Placeholder>No progress bars running.</Placeholder>
      )}
      {groups.map(group => (
        <div className="jp-resman-progress-group" key={group.key} data-kernel={group.kernelId ?? ''}>
          <div className="jp-resman-group-title">{group.label}</div>
          {group.rows.map(row => (
            <Bar key={row.key} row={row} />
          ))}
        </div>
      ))}
    </div>
  );
}
