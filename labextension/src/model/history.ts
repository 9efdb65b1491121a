/**
 * Rolling time-window buffers behind the live graphs.
 *
 * A graph wants columns (`[times, series1, series2, …]`, uPlot's "aligned
 * data") covering the last N seconds. Points arrive from two places: each
 * poll adds the value it just read, and a kernel whose monitor is running
 * also sends the samples it published, which overlap from one poll to the
 * next. The buffer keeps points sorted by time, replaces a point that arrives
 * again for the same instant instead of doubling it, and forgets what falls
 * out of the window.
 */

/** Points closer than this (seconds) are the same instant (float round-trips). */
const SAME_INSTANT = 1e-3;

/** Hard cap per buffer, whatever the window: a long window at 1 s is 86 400 points. */
export const MAX_POINTS = 5000;

export type SeriesValues<K extends string> = Record<K, number | null>;

/**
 * A sorted, windowed buffer of timestamped values for a fixed set of series.
 *
 * ```ts
 * const h = new History(['rss', 'cpu'], 300);
 * h.add(100, { rss: 1e6, cpu: 50 });
 * h.columns(); // [[100], [1e6], [50]]
 * ```
 */
export class History<K extends string = string> {
  /**
   * @param keys - the series names, in the order `columns()` returns them.
   * @param window - how many seconds of history to keep (counted back from
   *   the newest point).
   */
  constructor(keys: readonly K[], window: number) {
    this.keys = [...keys];
    this._window = History.checkWindow(window);
    for (const key of this.keys) {
      this._values[key] = [];
    }
  }

  /** The series names, in column order. */
  readonly keys: readonly K[];

  /** Seconds of history kept. */
  get window(): number {
    return this._window;
  }

  set window(seconds: number) {
    this._window = History.checkWindow(seconds);
    this.trim();
  }

  /** Number of points held. */
  get length(): number {
    return this._times.length;
  }

  /** Time of the newest point, or `null` when empty. */
  get latestTime(): number | null {
    return this._times.length ? this._times[this._times.length - 1] : null;
  }

  /** The newest value of one series, or `null` when empty. */
  latest(key: K): number | null {
    const values = this._values[key];
    return values.length ? values[values.length - 1] : null;
  }

  /**
   * Add one point; a point for an instant already held replaces it.
   *
   * Values for unknown keys are ignored; missing keys are stored as `null`
   * (a gap in the graph, not a drop to zero). Non-finite times are refused
   * with a `RangeError` since they would corrupt the ordering.
   */
  add(time: number, values: Partial<SeriesValues<K>>): void {
    if (!Number.isFinite(time)) {
      throw new RangeError(`History.add: time must be a finite number of seconds, got ${time}`);
    }
    const index = this.insertionIndex(time);
    const same =
      index > 0 && Math.abs(this._times[index - 1] - time) < SAME_INSTANT
        ? index - 1
        : index < this._times.length && Math.abs(this._times[index] - time) < SAME_INSTANT
          ? index
          : -1;
    if (same >= 0) {
      for (const key of this.keys) {
        this._values[key][same] = History.clean(values[key]);
      }
    } else {
      this._times.splice(index, 0, time);
      for (const key of this.keys) {
        this._values[key].splice(index, 0, History.clean(values[key]));
      }
    }
    this.trim();
  }

  /**
   * Merge many points at once (e.g. the samples a kernel published), each
   * given as an object with a time field and one field per series.
   */
  merge(points: ReadonlyArray<Record<string, unknown>>, timeField = 't'): void {
    for (const point of points) {
      const time = point[timeField];
      if (typeof time !== 'number' || !Number.isFinite(time)) {
        continue; // a malformed sample must not break the whole graph
      }
      const values: Partial<SeriesValues<K>> = {};
      for (const key of this.keys) {
        const value = point[key];
        values[key] = typeof value === 'number' ? value : null;
      }
      this.add(time, values);
    }
  }

  /** Drop every point. */
  clear(): void {
    this._times = [];
    for (const key of this.keys) {
      this._values[key] = [];
    }
  }

  /**
   * Forget points older than the window before `now` (default: the newest
   * point's time), and the oldest ones past `MAX_POINTS`.
   */
  trim(now: number | null = this.latestTime): void {
    if (now === null) {
      return;
    }
    const cutoff = now - this._window;
    let drop = 0;
    while (drop < this._times.length && this._times[drop] < cutoff) {
      drop += 1;
    }
    drop = Math.max(drop, this._times.length - MAX_POINTS);
    if (drop > 0) {
      this._times.splice(0, drop);
      for (const key of this.keys) {
        this._values[key].splice(0, drop);
      }
    }
  }

  /** Copies of the columns: `[times, ...one array per key]`. */
  columns(): [number[], ...(number | null)[][]] {
    return [this._times.slice(), ...this.keys.map(key => this._values[key].slice())];
  }

  /** Largest non-null value of one series in the window (for axis ranges). */
  max(key: K): number | null {
    let best: number | null = null;
    for (const value of this._values[key]) {
      if (value !== null && (best === null || value > best)) {
        best = value;
      }
    }
    return best;
  }

  private insertionIndex(time: number): number {
    // Points nearly always arrive in order: check the end before searching.
    const n = this._times.length;
    if (n === 0 || this._times[n - 1] < time) {
      return n;
    }
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this._times[mid] < time) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  private static clean(value: number | null | undefined): number | null {
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  }

  private static checkWindow(seconds: number): number {
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new RangeError(
        `History window must be a positive number of seconds, got ${seconds}`
      );
    }
    return seconds;
  }

  private _window: number;
  private _times: number[] = [];
  private _values = {} as Record<K, (number | null)[]>;
}
