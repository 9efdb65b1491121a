/**
 * A live time-series graph: a thin React wrapper around uPlot.
 *
 * uPlot is made for streaming series (it redraws thousands of points in a
 * millisecond and never rebuilds the DOM on new data), so the chart is
 * created once and then only fed `setData`. Colours come from JupyterLab's
 * theme CSS variables and the chart is rebuilt when the theme changes.
 */

import * as React from 'react';
import uPlot from 'uplot';

import { formatBytes, formatPercent } from '../model/format';

/** The unit a series is drawn in: each unit gets its own y axis. */
export type ChartUnit = 'bytes' | 'percent';

export interface ISeriesSpec {
  label: string;
  unit: ChartUnit;
  /** A CSS colour or `var(--jp-…)`, resolved against the current theme. */
  color: string;
  /** Dash pattern, e.g. `[4, 4]` for a limit line. */
  dash?: number[];
  /** Fill the area under the line. */
  fill?: boolean;
  /** Mark each point (for sparse series, e.g. per-minute cache lookups). */
  points?: boolean;
}

export interface IChartProps {
  /** Accessible name, e.g. "Memory and CPU of train.ipynb". */
  title: string;
  series: ISeriesSpec[];
  /** `[times, ...one column per series]` in epoch seconds. */
  data: [number[], ...(number | null)[][]];
  /** The x range: the last `window` seconds before `now`. */
  now: number;
  window: number;
  height?: number;
  /** The smallest top of the bytes axis (e.g. the memory limit, so it is always in view). */
  bytesFloor?: number | null;
  /** The smallest top of the percent axis (100, or 100 × cores for CPU). */
  percentFloor?: number;
  /** Show a one-line legend (series names and colours) under the plot. */
  legend?: boolean;
}

/**
 * Tick steps for byte axes: powers of two of each binary unit, so ticks land
 * on 512 MiB, 1 GiB, 2 GiB … rather than uPlot's decimal 18.6 GiB.
 */
const BYTE_INCREMENTS: number[] = [];
for (let unit = 1; unit <= 1024 ** 5; unit *= 1024) {
  for (let m = 1; m < 1024; m *= 2) {
    BYTE_INCREMENTS.push(m * unit);
  }
}

/** Short one-line time labels (24 h): minutes, with seconds for short windows. */
function timeLabels(splits: number[], window: number): string[] {
  const pad = (n: number): string => n.toString().padStart(2, '0');
  return splits.map(t => {
    const d = new Date(t * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return window <= 120 ? `${hm}:${pad(d.getSeconds())}` : hm;
  });
}

/** Resolve `var(--name)` against an element (uPlot draws on a canvas, which cannot). */
function resolveColor(color: string, element: Element): string {
  const match = /^var\((--[\w-]+)\)$/.exec(color.trim());
  if (!match) {
    return color;
  }
  const value = getComputedStyle(element).getPropertyValue(match[1]).trim();
  return value || '#888';
}

/** A colour with an alpha, for area fills: works for hex and rgb() theme values. */
function withAlpha(color: string, alpha: number): string {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color);
  if (hex) {
    let digits = hex[1];
    if (digits.length === 3) {
      digits = digits.replace(/(.)/g, '$1$1');
    }
    const n = parseInt(digits, 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgba?\(([^)]+)\)$/.exec(color);
  if (rgb) {
    const [r, g, b] = rgb[1].split(',').map(s => s.trim());
    return `rgba(${r}, ${g}, ${b}, ${alpha})`;
  }
  return color;
}

/**
 * A number that changes whenever JupyterLab switches theme (it rewrites the
 * `data-jp-theme-*` attributes of the body), to rebuild charts in the new
 * colours.
 */
function useThemeVersion(): number {
  const [version, setVersion] = React.useState(0);
  React.useEffect(() => {
    const observer = new MutationObserver(() => setVersion(v => v + 1));
    observer.observe(document.body, {
      attributes: true,
      attributeFilter: ['data-jp-theme-name', 'data-jp-theme-light']
    });
    return () => observer.disconnect();
  }, []);
  return version;
}

/** A live graph of one or more series over a rolling window. */
export function TimeSeriesChart(props: IChartProps): JSX.Element {
  const container = React.useRef<HTMLDivElement>(null);
  const plot = React.useRef<uPlot | null>(null);
  // uPlot calls its range functions on every redraw: read the latest props.
  const latest = React.useRef(props);
  latest.current = props;
  const theme = useThemeVersion();
  // Values under the cursor, shown in the legend while hovering.
  const [readout, setReadout] = React.useState<{ time: string; values: string[] } | null>(null);
  const height = props.height ?? 110;
  const specKey = JSON.stringify(props.series) + `|${height}`;

  React.useEffect(() => {
    const node = container.current;
    if (!node) {
      return;
    }
    // uPlot sizes labels from a pixel font size ("10px …"); theme sizes are in em.
    const family =
      getComputedStyle(node).getPropertyValue('--jp-ui-font-family').trim() || 'sans-serif';
    const font = `10px ${family}`;
    const axisColor = resolveColor('var(--jp-ui-font-color2)', node);
    const gridColor = resolveColor('var(--jp-border-color2)', node);
    const units = Array.from(new Set(props.series.map(s => s.unit)));
    const axisFor = (unit: ChartUnit, side: number): uPlot.Axis => ({
      scale: unit,
      side,
      stroke: axisColor,
      font,
      size: unit === 'bytes' ? 48 : 34,
      gap: 2,
      space: 20, // small charts: still two or three labelled ticks
      grid: { show: side === 3, stroke: gridColor, width: 1 },
      ticks: { show: false },
      incrs: unit === 'bytes' ? BYTE_INCREMENTS : undefined,
      values: (_u, values) =>
        values.map(v => (unit === 'bytes' ? formatBytes(v) : `${Math.round(v)}%`))
    });
    const options: uPlot.Options = {
      width: Math.max(100, node.clientWidth),
      height,
      // The legend is drawn by React under the plot (compact, theme-coloured).
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      hooks: {
        setCursor: [
          u => {
            const idx = u.cursor.idx;
            if (idx === null || idx === undefined) {
              setReadout(null);
              return;
            }
            const format = (unit: ChartUnit, v: number | null | undefined): string =>
              v === null || v === undefined ? '–' : unit === 'bytes' ? formatBytes(v) : formatPercent(v);
            setReadout({
              time: timeLabels([u.data[0][idx]], 0)[0],
              values: latest.current.series.map((spec, i) => format(spec.unit, u.data[i + 1][idx]))
            });
          }
        ]
      },
      scales: {
        x: {
          time: true,
          range: () => {
            const { now, window } = latest.current;
            return [now - window, now];
          }
        },
        bytes: {
          range: (_u, _min, max) => {
            const floor = latest.current.bytesFloor ?? 0;
            return [0, Math.max(max || 0, floor, 1024) * 1.1];
          }
        },
        percent: {
          range: (_u, _min, max) => [0, Math.max(max || 0, latest.current.percentFloor ?? 100)]
        }
      },
      axes: [
        {
          stroke: axisColor,
          font,
          grid: { show: false },
          ticks: { show: false },
          size: 18,
          gap: 2,
          space: 50,
          values: (_u, splits) => timeLabels(splits, latest.current.window)
        },
        ...units.map((unit, i) => axisFor(unit, i === 0 ? 3 : 1))
      ],
      series: [
        {},
        ...props.series.map(spec => {
          const stroke = resolveColor(spec.color, node);
          return {
            label: spec.label,
            scale: spec.unit,
            stroke,
            width: 1.5,
            dash: spec.dash,
            fill: spec.fill ? withAlpha(stroke, 0.15) : undefined,
            spanGaps: false,
            points: { show: spec.points === true, size: 4 }
          } as uPlot.Series;
        })
      ]
    };
    const chart = new uPlot(options, latest.current.data as uPlot.AlignedData, node);
    plot.current = chart;
    const resize = new ResizeObserver(() => {
      const width = node.clientWidth;
      if (width > 0 && width !== chart.width) {
        chart.setSize({ width, height });
      }
    });
    resize.observe(node);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [specKey, theme]);

  React.useEffect(() => {
    plot.current?.setData(props.data as uPlot.AlignedData);
  }, [props.data, props.now, props.window, props.bytesFloor]);

  return (
    <div className="jp-resman-chart-box">
      <div
        className="jp-resman-chart"
        ref={container}
        role="img"
        aria-label={props.title}
        data-points={props.data[0].length}
      />
      {(props.legend !== false || readout) && (
        <div className="jp-resman-legend" aria-hidden="true">
          {readout && <span className="jp-resman-legend-item">{readout.time}</span>}
          {props.series.map((spec, i) => (
            <span key={spec.label} className="jp-resman-legend-item">
              <span
                className="jp-resman-legend-swatch"
                style={{
                  borderTopColor: spec.color,
                  borderTopStyle: spec.dash ? 'dashed' : 'solid'
                }}
              />
              {spec.label}
              {readout ? ` ${readout.values[i]}` : ''}
            </span>
          ))}
        </div>
      )}
    </div>
  );
}
