/**
 * The "Resources" sidebar: an accordion of its sections, shown or
 * hidden per the settings, that tells the model when it becomes visible so
 * the first figures arrive at once instead of at the next tick.
 */

import { refreshIcon, SidePanel, ToolbarButton } from '@jupyterlab/ui-components';
import { AccordionPanel } from '@lumino/widgets';
import type { Message } from '@lumino/messaging';
import * as React from 'react';

import type { ResourcesModel } from '../model/resources';
import { SECTIONS, SectionName, visibleSections } from '../model/settings';
import { resourcesIcon } from '../icons';
import { CacheView, clearAllButton } from './cache';
import { CheckpointsView } from './checkpoints';
import { KernelsView } from './kernels';
import { ProgressView } from './progress';
import { ProvidersView } from './providers';
import { RegistryView } from './registry';
import { Section } from './section';

export const SIDEBAR_ID = 'jupyter-resman-sidebar';

const LABELS: Record<SectionName, string> = {
  kernels: 'Kernels',
  progress: 'Progress',
  cache: 'Cache',
  checkpoints: 'Checkpoints',
  // Not "Resources": that is the whole sidebar.
  resources: 'Resource providers',
  registry: 'Registry'
};

/** Share of the sidebar's height each section starts with (the graphs need most). */
const WEIGHTS: Record<SectionName, number> = {
  kernels: 4,
  progress: 2,
  cache: 3,
  checkpoints: 1,
  resources: 2,
  registry: 3
};

const VIEWS: Record<SectionName, (props: { model: ResourcesModel }) => JSX.Element> = {
  kernels: KernelsView,
  progress: ProgressView,
  cache: CacheView,
  checkpoints: CheckpointsView,
  resources: ProvidersView,
  registry: RegistryView
};

export class ResourcesPanel extends SidePanel {
  constructor(readonly model: ResourcesModel) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass('jp-resman-sidebar');
    this.title.icon = resourcesIcon;
    this.title.caption = 'Resources';
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Refresh now',
        onClick: () => void model.refresh()
      })
    );
    const heading = document.createElement('h2');
    heading.className = 'jp-resman-heading';
    heading.textContent = 'Resources';
    this.header.node.appendChild(heading);

    for (const name of SECTIONS) {
      const View = VIEWS[name];
      const section = new Section({
        id: `jupyter-resman-${name}`,
        label: LABELS[name],
        model,
        render: m => React.createElement(View, { model: m })
      });
      if (name === 'cache') {
        section.toolbar.addItem('clear-all', clearAllButton(model));
      }
      this._sections.set(name, section);
    }
    this.showSections(visibleSections(model.settings));
    model.changed.connect(this.onModelChanged, this);
  }

  /** Show these sections, in this order, and no others. */
  showSections(names: SectionName[]): void {
    const key = names.join(',');
    if (key === this._shown) {
      return;
    }
    this._shown = key;
    for (const section of this._sections.values()) {
      if (section.parent) {
        section.parent = null;
      }
    }
    for (const name of names) {
      this.addWidget(this._sections.get(name)!);
    }
    if (this.content instanceof AccordionPanel && names.length > 0) {
      this.content.setRelativeSizes(names.map(name => WEIGHTS[name]));
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    for (const section of this._sections.values()) {
      section.dispose();
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // The polls stood by while hidden: fetch now, not a full interval later.
    void this.model.refresh();
  }

  private onModelChanged(): void {
    this.showSections(visibleSections(this.model.settings));
  }

  private _sections = new Map<SectionName, Section>();
  private _shown = '';
}
