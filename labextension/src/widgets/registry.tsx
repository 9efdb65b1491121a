/**
 * The Registry section: a list of the registry's resources, filtered by kind
 * and name and paged, and the selected resource in depth — its fields, its
 * place (the containers it is in, outermost first), what it holds and its
 * recent history. Read-only: the registry is changed from kernels.
 */

import { Button, closeIcon, HTMLSelect, InputGroup, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import * as React from 'react';

import { formatAge } from '../model/format';
import {
  detailRows,
  historyRows,
  IRegistryAnswer,
  isoSeconds,
  pageCount,
  pageLabel,
  placeOf,
  resourceSummary
} from '../model/registry';
import type { ResourcesModel } from '../model/resources';
import type { IRegistryResource } from '../types';
import { ErrorBanner, Placeholder } from './section';

/** A resource's name as a link that selects it. */
function ResourceLink(props: { model: ResourcesModel; resource: IRegistryResource }): JSX.Element {
  const { model, resource } = props;
  return (
    <button
      type="button"
      className="jp-resman-link"
      data-resource-id={resource.id}
      title={`${resourceSummary(resource)} · ${resource.id}`}
      onClick={() => model.selectResource(resource.id)}
    >
      {resource.name}
    </button>
  );
}

function age(iso: string | null, now: number): string {
  const seconds = isoSeconds(iso);
  return seconds === null ? '' : formatAge(seconds, now);
}

function Details(props: { model: ResourcesModel; answer: IRegistryAnswer; now: number }): JSX.Element | null {
  const { model, answer, now } = props;
  if (answer.itemMissing) {
    return <Placeholder>{answer.itemMissing}</Placeholder>;
  }
  const item = answer.item;
  if (!item) {
    return null;
  }
  const resource = item.resource;
  const place = placeOf(item);
  const history = historyRows(item.history);
  return (
    <div className="jp-resman-card jp-resman-registry-details" data-resource-id={resource.id}>
      <div className="jp-resman-card-header">
        <span className="jp-resman-card-title" title={resource.id}>
          {resource.name}
        </span>
        <span className="jp-resman-card-figures">{resourceSummary(resource)}</span>
        <ToolbarButtonComponent
          icon={closeIcon}
          tooltip="Close the details"
          className="jp-resman-registry-close"
          onClick={() => model.selectResource(null)}
        />
      </div>
      <nav className="jp-resman-registry-place" aria-label="Where it is">
        {item.hierarchy === null ? (
          <span className="jp-resman-hint">removed: not in any container</span>
        ) : place.length === 0 ? (
          <span className="jp-resman-hint">top level: in no container</span>
        ) : (
          place.map(ancestor => (
            <React.Fragment key={ancestor.id}>
              <ResourceLink model={model} resource={ancestor} />
              <span className="jp-resman-registry-separator">›</span>
            </React.Fragment>
          ))
        )}
        {place.length > 0 && <span className="jp-resman-registry-here">{resource.key ? `${resource.name} (at ${resource.key})` : resource.name}</span>}
      </nav>
      <table className="jp-resman-table jp-resman-registry-fields">
        <tbody>
          {detailRows(resource).map(([label, value]) => (
            <tr key={label}>
              <th scope="row">{label}</th>
              <td title={value}>{value}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {item.children_total > 0 && (
        <div className="jp-resman-registry-children">
          <div className="jp-resman-group-title">
            Inside: {item.children_total}
            {item.hierarchy && item.hierarchy.descendants > item.children_total
              ? ` directly, ${item.hierarchy.descendants} in all`
              : ''}
          </div>
          <ul className="jp-resman-registry-links">
            {item.children.map(child => (
              <li key={child.id}>
                {child.key ? <span className="jp-resman-hint">{child.key} </span> : null}
                <ResourceLink model={model} resource={child} />
              </li>
            ))}
            {item.children_total > item.children.length && (
              <li className="jp-resman-hint">and {item.children_total - item.children.length} more</li>
            )}
          </ul>
        </div>
      )}
      <div className="jp-resman-group-title">History</div>
      <table className="jp-resman-table jp-resman-registry-history">
        <tbody>
          {history.map(row => (
            <tr key={row.key} data-change={row.change}>
              <td>v{row.version}</td>
              <td>{row.change}</td>
              <td>{row.time === null ? '' : formatAge(row.time, now)}</td>
              <td title={[row.fields, row.detail].filter(Boolean).join(' — ')}>
                {row.fields || row.detail}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The body of the Registry section. */
export function RegistryView(props: { model: ResourcesModel }): JSX.Element {
  const { model } = props;
  const browser = model.registry;
  const query = browser.query;
  const answer = browser.answer;
  const list = answer?.list ?? null;
  const now = model.metrics?.time ?? Date.now() / 1000;
  const pages = list ? pageCount(list.total, query.pageSize) : 1;
  const kinds = [{ label: 'any kind', value: '' }, ...(list?.kinds ?? []).map(k => ({ label: k, value: k }))];
  return (
    <div className={`jp-resman-registry${browser.pending ? ' jp-mod-pending' : ''}`}>
      <ErrorBanner model={model} route="registry" />
      <div className="jp-resman-registry-filters">
        <HTMLSelect
          className="jp-resman-registry-kind"
          aria-label="Kind"
          value={query.kind}
          options={kinds}
          onChange={event => model.setRegistryFilters({ kind: event.target.value })}
        />
        <InputGroup
          className="jp-resman-registry-name"
          type="text"
          aria-label="Name"
          placeholder="Name contains… (* wildcards)"
          value={query.name}
          rightIcon="ui-components:search"
          onChange={event => model.setRegistryFilters({ name: event.target.value })}
        />
      </div>
      {list === null && !model.error('registry') && <Placeholder>Loading…</Placeholder>}
      {list !== null && list.resources.length > 0 && (
        <ul className="jp-resman-list jp-resman-registry-list">
          {list.resources.map(resource => {
            const selected = resource.id === browser.selectedId;
            return (
              <li
                key={resource.id}
                className={`jp-resman-list-item jp-resman-registry-row${selected ? ' jp-mod-selected' : ''}`}
                data-resource-id={resource.id}
                data-name={resource.name}
                role="button"
                tabIndex={0}
                aria-pressed={selected}
                onClick={() => model.selectResource(selected ? null : resource.id)}
                onKeyDown={event => {
                  if (event.key === 'Enter' || event.key === ' ') {
                    event.preventDefault();
                    model.selectResource(selected ? null : resource.id);
                  }
                }}
              >
                <div className="jp-resman-list-main">
                  <span className="jp-resman-list-title">{resource.name}</span>
                  <span className="jp-resman-list-meta">
                    {resourceSummary(resource)} · v{resource.version} · {age(resource.updated_at, now)}
                  </span>
                </div>
              </li>
            );
          })}
        </ul>
      )}
      {list !== null && (
        <div className="jp-resman-registry-pager" data-total={list.total} data-page={query.page}>
          {pages > 1 && (
            <Button
              minimal
              small
              className="jp-resman-registry-previous"
              disabled={query.page === 0}
              onClick={() => model.setRegistryPage(query.page - 1)}
            >
              ‹ Previous
            </Button>
          )}
          <span className="jp-resman-hint" title={list.location}>
            {pageLabel(list)}
          </span>
          {pages > 1 && (
            <Button
              minimal
              small
              className="jp-resman-registry-next"
              disabled={query.page >= pages - 1}
              onClick={() => model.setRegistryPage(query.page + 1)}
            >
              Next ›
            </Button>
          )}
        </div>
      )}
      {/* Only the answer for the current selection: a closed one disappears at once. */}
      {answer !== null && answer.selectedId !== null && answer.selectedId === browser.selectedId && (
        <Details model={model} answer={answer} now={now} />
      )}
    </div>
  );
}
