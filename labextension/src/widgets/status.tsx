/**
 * The status-bar item: the current kernel's memory (and its limit), in a
 * warning colour past the threshold. Clicking it opens the sidebar.
 */

import { TextItem } from '@jupyterlab/statusbar';
import { ReactWidget } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import * as React from 'react';

import { IStatusBarState, statusBarState } from '../model/kernels';
import type { ResourcesModel } from '../model/resources';

const LEVELS = ['ok', 'warning', 'exceeded'] as const;

export class MemoryStatusItem extends ReactWidget {
  constructor(
    readonly model: ResourcesModel,
    private readonly open: () => void
  ) {
    super();
    this.addClass('jp-resman-status');
    this.addClass('jp-mod-highlighted');
    this.node.addEventListener('click', this.open);
    // Each model change schedules an update request, which re-renders.
    model.changed.connect(this.update, this);
  }

  /** What the item shows now (null before the first answer). */
  get state(): IStatusBarState | null {
    return statusBarState(this.model.metrics, this.model.currentKernelId);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.node.removeEventListener('click', this.open);
    this.model.changed.disconnect(this.update, this);
    super.dispose();
  }

  protected onUpdateRequest(msg: Message): void {
    this.onStateChanged();
    super.onUpdateRequest(msg);
  }

  /** The colour class and tooltip live on the item's own node, outside React. */
  private onStateChanged(): void {
    const state = this.state;
    for (const level of LEVELS) {
      this.node.classList.toggle(`jp-resman-level-${level}`, state?.level === level);
    }
    this.node.title = state?.title ?? 'Resources: waiting for the server…';
  }

  protected render(): JSX.Element {
    return <TextItem source={this.state?.text ?? 'Mem: …'} />;
  }
}
