/**
 * The Resource providers section: per kernel, each provider it registered
 * with its health (in colour), its pool (in use out of the maximum, idle,
 * waiting), who holds what and for how long, and acquisitions and failures.
 * Read-only: resources are taken and given back in kernels.
 */

import * as React from 'react';

import {
  healthLevel,
  healthText,
  metricsText,
  ownerRows,
  poolExhausted,
  poolUsage,
  providerGroups
} from '../model/providers';
import type { ResourcesModel } from '../model/resources';
import type { IProvider } from '../types';
import { ErrorBanner, Placeholder } from './section';

function ProviderCard(props: { provider: IProvider; now: number }): JSX.Element {
  const { provider, now } = props;
  const level = healthLevel(provider);
  const health = healthText(provider, now);
  const usage = poolUsage(provider.pool);
  const owners = ownerRows(provider.owners);
  return (
    <div
      className={`jp-resman-card jp-resman-provider jp-resman-health-${level}`}
      data-provider={provider.name}
      data-health={level}
      data-in-use={provider.pool.in_use}
      data-acquisitions={provider.metrics.acquisitions}
    >
      <div className="jp-resman-card-header">
        <span className="jp-resman-health-dot" title={health} aria-label={`health: ${level}`} />
        <span className="jp-resman-card-title">{provider.name}</span>
        <span className="jp-resman-card-figures" title={provider.target}>
          {provider.kind}
          {provider.target ? ` · ${provider.target}` : ''}
        </span>
      </div>
      <div className="jp-resman-detail jp-resman-provider-health" title={health}>
        {health}
      </div>
      <div
        className={`jp-resman-bar${poolExhausted(provider.pool) ? ' jp-mod-full' : ''}`}
        role="meter"
        aria-label={`${provider.name} pool in use`}
        aria-valuemin={0}
        aria-valuemax={provider.pool.max_size}
        aria-valuenow={provider.pool.in_use}
      >
        <div className="jp-resman-bar-fill" style={{ width: `${usage.percent}%` }} />
      </div>
      <div className="jp-resman-detail">{usage.text}</div>
      {owners.length > 0 && (
        <ul className="jp-resman-provider-owners">
          {owners.map(owner => (
            <li key={owner.owner} data-owner={owner.owner}>
              <span className="jp-resman-provider-owner">{owner.owner}</span>{' '}
              <span className="jp-resman-detail">{owner.text}</span>
            </li>
          ))}
        </ul>
      )}
      <div className="jp-resman-detail jp-resman-provider-metrics">{metricsText(provider.metrics)}</div>
    </div>
  );
}

/** The body of the Resource providers section. */
export function ProvidersView(props: { model: ResourcesModel }): JSX.Element {
  const { model } = props;
  const report = model.resources;
  const groups = providerGroups(report, model.currentKernelId);
  const now = report?.time ?? Date.now() / 1000;
  return (
    <div className="jp-resman-providers">
      <ErrorBanner model={model} route="resources" />
      {report === null && !model.error('resources') && <Placeholder>Loading…</Placeholder>}
      {report !== null && groups.length === 0 && (
        <Placeholder>
          No resource providers. A kernel registers one with
          session.resources.register_provider(name, provider).
        </Placeholder>
      )}
      {groups.map(group => (
        <div
          className="jp-resman-provider-group"
          key={group.key}
          data-kernel={group.kernelId ?? ''}
          data-pid={group.pid}
        >
          <div className={`jp-resman-group-title jp-resman-health-${group.worst}`}>
            <span className="jp-resman-health-dot" aria-label={`worst health: ${group.worst}`} />{' '}
            {group.label}
          </div>
          {group.providers.map(provider => (
            <ProviderCard key={provider.name} provider={provider} now={now} />
          ))}
        </div>
      ))}
    </div>
  );
}
