import { clearPrompt, hitRateSeries, sortNamespaces } from '../src/model/cache';
import { deletePrompt, sortCheckpoints } from '../src/model/checkpoints';

describe('hitRateSeries', () => {
  const history = [
    { time: 120, namespace: 'emb', hits: 3, misses: 1 },
    { time: 60, namespace: 'default', hits: 0, misses: 2 },
    { time: 120, namespace: 'default', hits: 1, misses: 3 },
    { time: 180, namespace: 'emb', hits: 0, misses: 0 }
  ];

  it('sums namespaces per minute, in time order', () => {
    expect(hitRateSeries(history)).toEqual([
      [60, 120, 180],
      [0, 50, null],
      [2, 8, 0]
    ]);
  });

  it('leaves a gap, not 0%, for a minute without lookups', () => {
    const [, rates] = hitRateSeries(history, { namespace: 'emb' });
    expect(rates).toEqual([75, null]);
  });

  it('merges rows into wider buckets', () => {
    expect(hitRateSeries(history, { bucket: 300 })).toEqual([[0], [40], [10]]);
  });

  it('ignores rows with a broken time and negative counts', () => {
    const bad = [
      { time: NaN, namespace: 'a', hits: 5, misses: 0 },
      { time: 60, namespace: 'a', hits: -3, misses: 1 }
    ];
    expect(hitRateSeries(bad)).toEqual([[60], [0], [1]]);
  });
});

describe('sortNamespaces', () => {
  it('puts the largest namespace first', () => {
    const ns = (namespace: string, bytes: number) => ({
      namespace,
      bytes,
      entries: 1,
      hits: 0,
      misses: 0,
      hit_rate: 0,
      time_saved_s: 0
    });
    expect(sortNamespaces([ns('b', 10), ns('a', 10), ns('c', 99)]).map(n => n.namespace)).toEqual([
      'c',
      'a',
      'b'
    ]);
  });
});

describe('confirmation texts', () => {
  it('names what a clear removes', () => {
    expect(clearPrompt(null, 12, '3 MiB').body).toContain('all 12 cached entries (3 MiB)');
    expect(clearPrompt('emb', 2, '1 KiB').title).toContain('“emb”');
  });

  it('names what a checkpoint delete removes', () => {
    expect(deletePrompt({ name: 'run', versions: 3 }).body).toContain('all 3 versions');
    expect(deletePrompt({ name: 'run', versions: 1 }).body).toContain('its only version');
  });

  it('lists the newest checkpoint first', () => {
    const cp = (name: string, time: number) => ({
      name,
      time,
      versions: 1,
      latest_version: 1,
      bytes: 1,
      description: null
    });
    expect(sortCheckpoints([cp('old', 1), cp('new', 5), cp('also-new', 5)]).map(c => c.name)).toEqual([
      'also-new',
      'new',
      'old'
    ]);
  });
});
