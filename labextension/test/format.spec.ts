import {
  formatAge,
  formatBytes,
  formatCount,
  formatDuration,
  formatPercent,
  formatRate,
  formatUsage
} from '../src/model/format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [100 * 1024, '100 KiB'],
    [12.34 * 1024 ** 2, '12.3 MiB'],
    [8 * 1024 ** 3, '8 GiB'],
    [1.25 * 1024 ** 4, '1.25 TiB'],
    [-2048, '-2 KiB']
  ])('%p bytes reads %p', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('shows a dash for a missing figure', () => {
    expect(formatBytes(null)).toBe('–');
    expect(formatBytes(undefined)).toBe('–');
    expect(formatBytes(NaN)).toBe('–');
  });
});

describe('formatPercent', () => {
  it('keeps one decimal below 100', () => {
    expect(formatPercent(12.345)).toBe('12.3%');
    expect(formatPercent(0)).toBe('0.0%');
    expect(formatPercent(150.4)).toBe('150%');
    expect(formatPercent(null)).toBe('–');
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [2.5, '2.5s'],
    [45, '45s'],
    [59.6, '60s'],
    [60, '1:00'],
    [125, '2:05'],
    [3725, '1:02:05'],
    [200000, '2d 7h']
  ])('%p seconds reads %p', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it('shows a dash for unknown or negative durations', () => {
    expect(formatDuration(null)).toBe('–');
    expect(formatDuration(-1)).toBe('–');
    expect(formatDuration(Infinity)).toBe('–');
  });
});

describe('formatRate', () => {
  it('switches to seconds per item below one per second', () => {
    expect(formatRate(2.5)).toBe('2.50 it/s');
    expect(formatRate(0.25)).toBe('4.00 s/it');
    expect(formatRate(0.5, 'epoch')).toBe('2.00 s/epoch');
    expect(formatRate(12345, 'B')).toBe('12.3k B/s');
  });

  it('shows a question mark before the first rate is known', () => {
    expect(formatRate(null)).toBe('? it/s');
    expect(formatRate(0)).toBe('? it/s');
  });
});

describe('formatCount', () => {
  it('abbreviates past a thousand', () => {
    expect(formatCount(999)).toBe('999');
    expect(formatCount(12345)).toBe('12.3k');
    expect(formatCount(2_500_000)).toBe('2.5M');
    expect(formatCount(1.5)).toBe('1.5');
  });
});

describe('formatAge', () => {
  it('counts back from now', () => {
    expect(formatAge(1000, 1030)).toBe('just now');
    expect(formatAge(1000, 1000 + 5 * 60)).toBe('5 min ago');
    expect(formatAge(1000, 1000 + 3 * 3600 + 10)).toBe('3 h ago');
    expect(formatAge(1000, 1000 + 2 * 86400)).toBe('2 d ago');
  });
});

describe('formatUsage', () => {
  it('shows the limit only when there is one', () => {
    expect(formatUsage(1024 ** 3, 8 * 1024 ** 3)).toBe('1 GiB / 8 GiB');
    expect(formatUsage(1024 ** 3, null)).toBe('1 GiB');
  });
});
