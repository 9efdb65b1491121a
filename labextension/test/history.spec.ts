import { History, MAX_POINTS } from '../src/model/history';

describe('History', () => {
  it('keeps points sorted, whatever order they arrive in', () => {
    const h = new History(['a'], 100);
    h.add(10, { a: 1 });
    h.add(30, { a: 3 });
    h.add(20, { a: 2 });
    h.add(5, { a: 0 });
    expect(h.columns()).toEqual([
      [5, 10, 20, 30],
      [0, 1, 2, 3]
    ]);
  });

  it('replaces a point for an instant it already holds instead of doubling it', () => {
    const h = new History(['a'], 100);
    h.add(10, { a: 1 });
    h.add(10.0000001, { a: 2 });
    expect(h.length).toBe(1);
    expect(h.latest('a')).toBe(2);
  });

  it('forgets what falls out of the window, counted from the newest point', () => {
    const h = new History(['a'], 60);
    for (let t = 0; t <= 120; t += 10) {
      h.add(t, { a: t });
    }
    expect(h.columns()[0]).toEqual([60, 70, 80, 90, 100, 110, 120]);
  });

  it('trims against an explicit now (a kernel that went quiet)', () => {
    const h = new History(['a'], 60);
    h.add(0, { a: 1 });
    h.add(50, { a: 2 });
    h.trim(100);
    expect(h.columns()[0]).toEqual([50]);
    h.trim(1000);
    expect(h.length).toBe(0);
    expect(h.latestTime).toBeNull();
    expect(h.latest('a')).toBeNull();
  });

  it('shrinking the window trims at once', () => {
    const h = new History(['a'], 300);
    for (let t = 0; t <= 300; t += 100) {
      h.add(t, { a: t });
    }
    h.window = 150;
    expect(h.columns()[0]).toEqual([200, 300]);
  });

  it('merges overlapping sample batches without duplicates', () => {
    const h = new History(['rss', 'cpu_percent'], 600);
    h.merge([
      { t: 1, rss: 10, cpu_percent: 5 },
      { t: 2, rss: 20, cpu_percent: 6 }
    ]);
    h.merge([
      { t: 2, rss: 20, cpu_percent: 6 },
      { t: 3, rss: 30, cpu_percent: 7 }
    ]);
    expect(h.columns()).toEqual([
      [1, 2, 3],
      [10, 20, 30],
      [5, 6, 7]
    ]);
  });

  it('stores missing or non-finite values as gaps, and skips malformed samples', () => {
    const h = new History(['rss', 'cpu_percent'], 600);
    h.add(1, { rss: 5 });
    h.add(2, { rss: NaN, cpu_percent: 3 });
    h.merge([{ t: 'yesterday', rss: 1 }, { rss: 2 }, { t: 3, rss: '4' }]);
    expect(h.columns()).toEqual([
      [1, 2, 3],
      [5, null, null],
      [null, 3, null]
    ]);
    expect(h.max('rss')).toBe(5);
  });

  it('refuses a non-finite time and a non-positive window', () => {
    const h = new History(['a'], 10);
    expect(() => h.add(NaN, { a: 1 })).toThrow(RangeError);
    expect(() => new History(['a'], 0)).toThrow(/positive number of seconds/);
    expect(() => {
      h.window = -5;
    }).toThrow(RangeError);
  });

  it('caps the number of points whatever the window', () => {
    const h = new History(['a'], 1e9);
    for (let t = 0; t < MAX_POINTS + 10; t++) {
      h.add(t, { a: t });
    }
    expect(h.length).toBe(MAX_POINTS);
    expect(h.columns()[0][0]).toBe(10);
  });

  it('returns copies: drawing cannot change the buffer', () => {
    const h = new History(['a'], 10);
    h.add(1, { a: 1 });
    const cols = h.columns();
    cols[0].push(99);
    (cols[1] as (number | null)[])[0] = 42;
    expect(h.columns()).toEqual([[1], [1]]);
  });
});
