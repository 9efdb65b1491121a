import {
  formatLatency,
  healthLevel,
  healthText,
  metricsText,
  ownerRows,
  poolExhausted,
  poolUsage,
  providerGroups,
  worstHealth
} from '../src/model/providers';
import type { IResourcesSource } from '../src/types';
import { provider } from './fixtures';

describe('provider health', () => {
  it('is the reported status, unchecked before any check, unknown for a status it does not know', () => {
    expect(healthLevel(provider())).toBe('healthy');
    expect(healthLevel(provider({ health: null }))).toBe('unchecked');
    const odd = provider();
    (odd.health as { status: string }).status = 'on fire'; // a status a newer server may send
    expect(healthLevel(odd)).toBe('unknown');
  });

  it('ranks the worst of several', () => {
    const failed = provider({ health: { status: 'unhealthy', message: 'refused', latency_s: null, checked_at: 1 } });
    expect(worstHealth([])).toBe('healthy');
    expect(worstHealth([provider(), provider({ health: null })])).toBe('unchecked');
    expect(worstHealth([provider({ health: null }), failed, provider()])).toBe('unhealthy');
  });

  it('says how it was checked, and why it failed', () => {
    expect(healthText(provider(), 1000)).toBe('healthy · 3.2 ms · checked 10s ago');
    const failed = provider({
      health: { status: 'unhealthy', message: 'connection refused', latency_s: 2.5, checked_at: 1000 }
    });
    expect(healthText(failed, 1000)).toBe('unhealthy · 2.5s · checked 0s ago: connection refused');
    expect(healthText(provider({ health: null }), 1000)).toContain('session.resources.health()');
  });

  it('formats latencies', () => {
    expect(formatLatency(0.0032)).toBe('3.2 ms');
    expect(formatLatency(0.25)).toBe('250 ms');
    expect(formatLatency(75)).toBe('1:15');
    expect(formatLatency(0.000005)).toBe('<0.1 ms');
    expect(formatLatency(null)).toBe('–');
  });
});

describe('provider pools and owners', () => {
  it('draws the pool as in use out of the maximum', () => {
    expect(poolUsage(provider().pool)).toEqual({ percent: 25, text: '1/4 in use · 1 idle' });
    const full = { in_use: 4, idle: 0, waiting: 2, peak: 4, min_size: 0, max_size: 4 };
    expect(poolUsage(full)).toEqual({ percent: 100, text: '4/4 in use · 0 idle · 2 waiting' });
    expect(poolExhausted(full)).toBe(true);
    expect(poolExhausted(provider().pool)).toBe(false);
    expect(poolUsage({ ...full, max_size: 0 }).percent).toBe(0);
  });

  it('lists owners longest hold first, with their hold times', () => {
    const rows = ownerRows([
      { owner: 'cell-3', count: 1, held_s: 4, leases: [] },
      { owner: 'cell-1', count: 2, held_s: 125, leases: [] }
    ]);
    expect(rows.map(r => [r.owner, r.text])).toEqual([
      ['cell-1', '2 held, longest 2:05'],
      ['cell-3', '1 held for 4s']
    ]);
  });

  it('sums up usage, leaving out zero failures', () => {
    expect(metricsText(provider().metrics)).toBe('3 acquired · avg hold 2.5s');
    const bad = { ...provider().metrics, failures: 2, timeouts: 1, avg_acquire_s: 0.02 };
    expect(metricsText(bad)).toBe('3 acquired · 2 failed · 1 timed out · avg hold 2.5s · avg wait 20 ms');
  });
});

describe('providerGroups', () => {
  const source = (overrides: Partial<IResourcesSource>): IResourcesSource => ({
    pid: 1,
    kernel_id: null,
    path: null,
    updated: 1,
    providers: [provider()],
    ...overrides
  });

  it('puts the current kernel first, other kernels next, other processes last', () => {
    const groups = providerGroups(
      {
        time: 1,
        kernels: [
          source({ pid: 9 }),
          source({ pid: 3, kernel_id: 'b', path: 'b.ipynb' }),
          source({ pid: 2, kernel_id: 'a', path: 'a.ipynb' }),
          source({ pid: 4, kernel_id: 'c', path: 'c.ipynb', providers: [] })
        ]
      },
      'b'
    );
    expect(groups.map(g => g.label)).toEqual(['b.ipynb', 'a.ipynb', 'process 9']);
    expect(groups[0].worst).toBe('healthy');
    expect(providerGroups(null, null)).toEqual([]);
  });
});
