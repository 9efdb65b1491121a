import {
  kernelLabel,
  memoryLevel,
  MetricsHistory,
  orderKernels,
  statusBarState,
  worstLevel
} from '../src/model/kernels';
import { GiB, kernel, metrics } from './fixtures';

describe('orderKernels', () => {
  const a = kernel({ kernel_id: 'a', path: 'z/last.ipynb' });
  const b = kernel({ kernel_id: 'b', path: 'first.ipynb', execution_state: 'busy' });
  const c = kernel({ kernel_id: 'c', path: null, name: 'ir' });
  const d = kernel({ kernel_id: 'd', path: 'middle.ipynb' });

  it('puts the current notebook kernel first, then the others by path', () => {
    expect(orderKernels([a, b, c, d], 'a').map(k => k.kernel_id)).toEqual(['a', 'b', 'd', 'c']);
  });

  it('sorts by path when no kernel is current, pathless kernels last', () => {
    expect(orderKernels([c, a, d, b], null).map(k => k.kernel_id)).toEqual(['b', 'd', 'a', 'c']);
  });

  it('does not depend on busy state or memory, so rows stay put between polls', () => {
    const busyA = { ...a, execution_state: 'busy', rss: 50 * GiB };
    const idleB = { ...b, execution_state: 'idle', rss: 1 };
    expect(orderKernels([busyA, idleB], null).map(k => k.kernel_id)).toEqual(
      orderKernels([a, b], null).map(k => k.kernel_id)
    );
  });

  it('ignores an unknown current kernel id and does not change its input', () => {
    const input = [a, b];
    expect(orderKernels(input, 'gone').map(k => k.kernel_id)).toEqual(['b', 'a']);
    expect(input.map(k => k.kernel_id)).toEqual(['a', 'b']);
  });
});

describe('kernelLabel', () => {
  it('uses the notebook file name, else the kernel name and short id', () => {
    expect(kernelLabel(kernel({ path: 'notebooks/train.ipynb' }))).toBe('train.ipynb');
    expect(kernelLabel(kernel({ path: null, name: 'python3', kernel_id: '0123456789' }))).toBe(
      'python3 01234567'
    );
  });
});

describe('memoryLevel', () => {
  it('warns past the threshold and flags past the limit', () => {
    expect(memoryLevel(7 * GiB, 10 * GiB, 0.8)).toBe('ok');
    expect(memoryLevel(8 * GiB, 10 * GiB, 0.8)).toBe('warning');
    expect(memoryLevel(11 * GiB, 10 * GiB, 0.8)).toBe('exceeded');
  });

  it('never warns without a limit or a reading', () => {
    expect(memoryLevel(100 * GiB, null, 0.8)).toBe('ok');
    expect(memoryLevel(null, 10 * GiB, 0.8)).toBe('ok');
  });
});

describe('statusBarState', () => {
  it('shows the current kernel with its limit, in the warning level past the threshold', () => {
    const m = metrics({}, [kernel({ kernel_id: 'k', rss: 9 * GiB, memory_limit: 10 * GiB })]);
    const state = statusBarState(m, 'k')!;
    expect(state.text).toBe('Mem: 9 GiB / 10 GiB');
    expect(state.level).toBe('warning');
    expect(state.title).toContain('a.ipynb');
  });

  it("trusts the server's status when it is more severe", () => {
    const m = metrics({}, [kernel({ kernel_id: 'k', rss: GiB, memory_limit: null, status: 'exceeded' })]);
    expect(statusBarState(m, 'k')!.level).toBe('exceeded');
  });

  it('falls back to the container limit for a kernel without its own', () => {
    const m = metrics({}, [kernel({ kernel_id: 'k', rss: 2 * GiB })]);
    m.system.memory.limit = 2 * GiB;
    const state = statusBarState(m, 'k')!;
    expect(state.text).toBe('Mem: 2 GiB / 2 GiB');
    expect(state.level).toBe('warning');
  });

  it('shows the system memory when no notebook kernel is current', () => {
    const state = statusBarState(metrics(), null)!;
    expect(state.text).toBe('Mem: 4 GiB / 16 GiB');
    expect(state.level).toBe('ok');
    expect(statusBarState(null, null)).toBeNull();
  });
});

describe('MetricsHistory', () => {
  it('records the system and each kernel per poll', () => {
    const h = new MetricsHistory(300);
    h.update(metrics({ time: 10 }, [kernel({ kernel_id: 'a', rss: 1 })]));
    h.update(metrics({ time: 12 }, [kernel({ kernel_id: 'a', rss: 2 })]));
    expect(h.system.columns()[0]).toEqual([10, 12]);
    expect(h.kernel('a')!.columns()).toEqual([
      [10, 12],
      [1, 2],
      [10, 10]
    ]);
  });

  it("draws a kernel from its monitor's samples alone when it publishes them", () => {
    const h = new MetricsHistory(300);
    const samples = [
      { t: 8, rss: 100, cpu_percent: 1 },
      { t: 9, rss: 110, cpu_percent: 2 }
    ];
    h.update(metrics({ time: 10 }, [kernel({ kernel_id: 'a', rss: 999, samples })]));
    h.update(
      metrics({ time: 11 }, [
        kernel({ kernel_id: 'a', rss: 999, samples: [...samples, { t: 10, rss: 120, cpu_percent: 3 }] })
      ])
    );
    expect(h.kernel('a')!.columns()).toEqual([
      [8, 9, 10],
      [100, 110, 120],
      [1, 2, 3]
    ]);
  });

  it('drops kernels that are gone and follows window changes', () => {
    const h = new MetricsHistory(300);
    h.update(metrics({ time: 10 }, [kernel({ kernel_id: 'a' }), kernel({ kernel_id: 'b' })]));
    h.update(metrics({ time: 200 }, [kernel({ kernel_id: 'b' })]));
    expect(h.kernelIds()).toEqual(['b']);
    h.window = 60;
    expect(h.kernel('b')!.columns()[0]).toEqual([200]);
    expect(h.system.columns()[0]).toEqual([200]);
  });

  it('keeps only the window, counted from the server time', () => {
    const h = new MetricsHistory(30);
    for (let t = 0; t <= 100; t += 10) {
      h.update(metrics({ time: t }, [kernel({ kernel_id: 'a' })]));
    }
    expect(h.system.columns()[0]).toEqual([70, 80, 90, 100]);
  });
});

describe('worstLevel', () => {
  it('ranks levels and reads statuses it does not know as ok', () => {
    expect(worstLevel('ok', 'warning')).toBe('warning');
    expect(worstLevel('exceeded', 'warning')).toBe('exceeded');
    expect(worstLevel('unknown', 'ok')).toBe('ok');
    expect(worstLevel(undefined, 'unknown')).toBe('ok');
  });
});

describe('MetricsHistory with incremental samples', () => {
  it('asks for everything until every monitored kernel has a sample', () => {
    const h = new MetricsHistory(300);
    expect(h.samplesSince()).toBeUndefined();
    h.update(metrics({ time: 10 }, [kernel({ kernel_id: 'a', monitoring: true, samples: [] })]));
    expect(h.samplesSince()).toBeUndefined();
  });

  it('asks from the oldest of the newest samples of the monitored kernels', () => {
    const h = new MetricsHistory(300);
    h.update(
      metrics({ time: 10 }, [
        kernel({ kernel_id: 'a', monitoring: true, samples: [{ t: 8, rss: 1, cpu_percent: 1 }] }),
        kernel({ kernel_id: 'b', monitoring: true, samples: [{ t: 9, rss: 1, cpu_percent: 1 }] }),
        kernel({ kernel_id: 'c', monitoring: false, rss: 5 })
      ])
    );
    expect(h.samplesSince()).toBe(8);
  });

  it("adds nothing for a monitored kernel with no new samples (no server readings mixed in)", () => {
    const h = new MetricsHistory(300);
    h.update(metrics({ time: 10 }, [kernel({ kernel_id: 'a', monitoring: true, samples: [{ t: 9, rss: 1, cpu_percent: 1 }] })]));
    h.update(metrics({ time: 11 }, [kernel({ kernel_id: 'a', monitoring: true, rss: 999, samples: [] })]));
    expect(h.kernel('a')!.columns()).toEqual([[9], [1], [1]]);
  });

  it('switches to server readings when the monitor stops', () => {
    const h = new MetricsHistory(300);
    h.update(metrics({ time: 10 }, [kernel({ kernel_id: 'a', monitoring: true, samples: [{ t: 9, rss: 1, cpu_percent: 1 }] })]));
    h.update(metrics({ time: 12 }, [kernel({ kernel_id: 'a', monitoring: false, rss: 7, cpu_percent: 2 })]));
    expect(h.kernel('a')!.columns()).toEqual([[9, 12], [1, 7], [1, 2]]);
    expect(h.samplesSince()).toBeUndefined();
  });
});
