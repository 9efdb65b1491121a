/**
 * The Checkpoints section: every checkpoint in the home, newest first, and
 * deleting one (all its versions) behind a confirmation.
 */

import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { deleteIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import * as React from 'react';

import { deletePrompt, sortCheckpoints } from '../model/checkpoints';
import { formatAge, formatBytes } from '../model/format';
import type { ResourcesModel } from '../model/resources';
import type { ICheckpoint } from '../types';
import { ErrorBanner, Placeholder } from './section';

/** Ask, then delete a checkpoint. Resolves to whether it was deleted. */
export async function confirmDelete(model: ResourcesModel, checkpoint: ICheckpoint): Promise<boolean> {
  const prompt = deletePrompt(checkpoint);
  const result = await showDialog({
    title: prompt.title,
    body: prompt.body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
  });
  if (!result.button.accept) {
    return false;
  }
  try {
    await model.deleteCheckpoint(checkpoint.name);
    return true;
  } catch (error) {
    await showErrorMessage(`Deleting the checkpoint “${checkpoint.name}” failed`, error as Error);
    return false;
  }
}

/** The body of the Checkpoints section. */
export function CheckpointsView(props: { model: ResourcesModel }): JSX.Element {
  const { model } = props;
  const list = model.checkpoints;
  const now = Date.now() / 1000;
  return (
    <div className="jp-resman-checkpoints">
      <ErrorBanner model={model} route="checkpoints" />
      {list === null && !model.error('checkpoints') && <Placeholder>Loading…</Placeholder>}
      {list !== null && list.checkpoints.length === 0 && <Placeholder>No checkpoints saved.</Placeholder>}
      {list !== null && list.checkpoints.length > 0 && (
        <ul className="jp-resman-list">
          {sortCheckpoints(list.checkpoints).map(cp => (
            <li key={cp.name} className="jp-resman-list-item" data-checkpoint={cp.name}>
              <div className="jp-resman-list-main">
                <span className="jp-resman-list-title">
                  {cp.name}
                  {cp.complete === false && (
                    <span
                      className="jp-resman-hint jp-mod-warning"
                      title="The newest version's file is truncated; loading falls back to the newest valid version."
                    >
                      {' '}
                      incomplete
                    </span>
                  )}
                </span>
                <span className="jp-resman-list-meta" title={new Date(cp.time * 1000).toLocaleString()}>
                  v{cp.latest_version}
                  {cp.versions > 1 ? ` (${cp.versions} kept)` : ''} · {formatBytes(cp.bytes)} ·{' '}
                  {formatAge(cp.time, now)}
                </span>
                {cp.description && <span className="jp-resman-list-desc">{cp.description}</span>}
              </div>
              <ToolbarButtonComponent
                icon={deleteIcon}
                tooltip={`Delete the checkpoint “${cp.name}”…`}
                className="jp-resman-delete-checkpoint"
                onClick={() => void confirmDelete(model, cp)}
              />
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
