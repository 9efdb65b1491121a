import { barPercent, flattenTree, progressGroups, rowStatus } from '../src/model/progress';
import { tree } from './fixtures';

describe('flattenTree', () => {
  it('lists parents before children, indented by depth, with stable keys', () => {
    const t = tree({
      id: 1,
      desc: 'epochs',
      children: [
        tree({ id: 2, desc: 'batches', n: 50, total: 100, percent: 50, children: [tree({ id: 3, desc: 'steps' })] }),
        tree({ id: 4, desc: 'eval' })
      ]
    });
    const rows = flattenTree(t, 'k');
    expect(rows.map(r => [r.desc, r.depth])).toEqual([
      ['epochs', 0],
      ['batches', 1],
      ['steps', 2],
      ['eval', 1]
    ]);
    expect(rows.map(r => r.key)).toEqual(['k/1', 'k/1/2', 'k/1/2/3', 'k/1/4']);
    expect(rows[1].counter).toBe('50/100 it');
    expect(rows[1].percent).toBe(50);
  });

  it('formats rate and ETA while running, elapsed once finished', () => {
    const [running] = flattenTree(tree({ rate: 2, eta: 125 }));
    expect(running.rate).toBe('2.00 it/s');
    expect(running.timing).toBe('ETA 2:05');
    const [done] = flattenTree(tree({ status: 'done', n: 10, percent: 100, elapsed: 7 }));
    expect(done.timing).toBe('took 7s');
    expect(done.status).toBe('done');
  });

  it('shows a failed bar with its error', () => {
    const [failed] = flattenTree(tree({ status: 'failed', error: 'ValueError: bad batch' }));
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe('ValueError: bad batch');
  });

  it('draws an unknown total as an indeterminate bar with a plain count', () => {
    const [row] = flattenTree(tree({ total: null, percent: null, n: 1234, unit: 'B', eta: null }));
    expect(row.percent).toBeNull();
    expect(row.counter).toBe('1.2k B');
    expect(row.timing).toBe('');
  });
});

describe('barPercent', () => {
  it("prefers the server's percent, else computes n/total, clamped", () => {
    expect(barPercent({ n: 1, total: 4, percent: null, status: 'running' })).toBe(25);
    expect(barPercent({ n: 1, total: 4, percent: 30, status: 'running' })).toBe(30);
    expect(barPercent({ n: 12, total: 10, percent: null, status: 'running' })).toBe(100);
    expect(barPercent({ n: 5, total: null, percent: null, status: 'done' })).toBe(100);
  });
});

describe('rowStatus', () => {
  it('maps statuses it does not know to running', () => {
    expect(rowStatus('paused')).toBe('running');
    expect(rowStatus('failed')).toBe('failed');
  });
});

describe('progressGroups', () => {
  const report = {
    kernels: [
      { pid: 3, kernel_id: null, path: null, trees: [tree({ status: 'done' })] },
      { pid: 2, kernel_id: 'k2', path: 'b.ipynb', trees: [tree()] },
      { pid: 1, kernel_id: 'k1', path: 'nb/a.ipynb', trees: [tree({ status: 'done' })] },
      { pid: 4, kernel_id: 'k4', path: 'c.ipynb', trees: [] }
    ]
  };

  it('puts the current kernel first, then publishers with running bars', () => {
    const groups = progressGroups(report, 'k1');
    expect(groups.map(g => g.label)).toEqual(['a.ipynb', 'b.ipynb', 'process 3']);
    expect(groups[1].running).toBe(1);
  });

  it('leaves out publishers without bars, and handles no report yet', () => {
    expect(progressGroups(report, null).map(g => g.kernelId)).toEqual(['k2', 'k1', null]);
    expect(progressGroups(null, null)).toEqual([]);
  });
});
