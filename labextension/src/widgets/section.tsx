/**
 * What every sidebar section shares: a panel with a toolbar (shown in the
 * accordion title) whose body is React, re-rendered when the model changes.
 */

import { PanelWithToolbar, ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import type { ResourcesModel, Route } from '../model/resources';

/** A React body that re-renders on every model change. */
export class ModelView extends ReactWidget {
  constructor(
    readonly model: ResourcesModel,
    private readonly renderBody: (model: ResourcesModel) => JSX.Element
  ) {
    super();
    this.addClass('jp-resman-section-body');
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed} initialSender={this.model}>
        {() => this.renderBody(this.model)}
      </UseSignal>
    );
  }
}

/** One accordion section of the sidebar. */
export class Section extends PanelWithToolbar {
  constructor(options: {
    id: string;
    label: string;
    model: ResourcesModel;
    render: (model: ResourcesModel) => JSX.Element;
  }) {
    super();
    this.id = options.id;
    this.title.label = options.label;
    this.title.caption = options.label;
    this.addClass('jp-resman-section');
    this.addWidget(new ModelView(options.model, options.render));
  }
}

/** The failure of a route, with when the next try is, or nothing. */
export function ErrorBanner(props: { model: ResourcesModel; route: Route }): JSX.Element | null {
  const message = props.model.error(props.route);
  if (!message) {
    return null;
  }
  const seconds = Math.round(props.model.nextRequestIn(props.route) / 1000);
  return (
    <div className="jp-resman-error" role="alert">
      {message}
      {seconds > 0 ? ` (next try in ${seconds} s)` : ''}
    </div>
  );
}

/** A short grey line for an empty list or data not yet loaded. */
export function Placeholder(props: { children: React.ReactNode }): JSX.Element {
  return <div className="jp-resman-placeholder">{props.children}</div>;
}
