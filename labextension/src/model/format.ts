/**
 * Number formatting shared by every section, so a size or a duration reads
 * the same in the kernels list, the cache table and the status bar (and like
 * the Python side's `format_size`: binary units, "1.5 GiB").
 */

const SIZE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * Format a byte count with binary units: `formatBytes(1536) === '1.5 KiB'`.
 *
 * Missing values (`null`, `undefined`, NaN) format as an en dash, so a row
 * whose figure the server could not measure still lines up.
 */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '–';
  }
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) {
    return `${sign}${Math.round(value)} B`;
  }
  // Three significant figures: "1.50 GiB" is noise, "2 GiB" hides growth.
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  let text = value.toFixed(digits);
  if (text.includes('.')) {
    text = text.replace(/0+$/, '').replace(/\.$/, '');
  }
  return `${sign}${text} ${SIZE_UNITS[unit]}`;
}

/** Format a percentage (0–100): `formatPercent(12.345) === '12.3%'`. */
export function formatPercent(percent: number | null | undefined): string {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) {
    return '–';
  }
  const digits = Math.abs(percent) >= 100 ? 0 : 1;
  return `${percent.toFixed(digits)}%`;
}

/**
 * Format a duration in seconds the way tqdm does for short spans and in words
 * for long ones: `45` → `'45s'`, `125` → `'2:05'`, `3725` → `'1:02:05'`,
 * `200000` → `'2d 7h'`.
 */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return '–';
  }
  if (seconds < 60) {
    return seconds < 10 && seconds % 1 !== 0 ? `${seconds.toFixed(1)}s` : `${Math.round(seconds)}s`;
  }
  const total = Math.round(seconds);
  const days = Math.floor(total / 86400);
  if (days > 0) {
    return `${days}d ${Math.floor((total % 86400) / 3600)}h`;
  }
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  const pad = (n: number): string => n.toString().padStart(2, '0');
  return hours > 0 ? `${hours}:${pad(minutes)}:${pad(secs)}` : `${minutes}:${pad(secs)}`;
}

/**
 * Format a progress rate, switching to seconds per item below one item per
 * second so slow loops still show a readable figure: `2.5` → `'2.50 it/s'`,
 * `0.25` → `'4.00 s/it'`.
 */
export function formatRate(rate: number | null | undefined, unit = 'it'): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate) || rate <= 0) {
    return `? ${unit}/s`;
  }
  if (rate < 1) {
    return `${(1 / rate).toFixed(2)} s/${unit}`;
  }
  if (rate >= 1000) {
    return `${formatCount(rate)} ${unit}/s`;
  }
  return `${rate.toFixed(2)} ${unit}/s`;
}

/** Format a count with SI suffixes past a thousand: `12345` → `'12.3k'`. */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) {
    return '–';
  }
  const abs = Math.abs(n);
  if (abs < 1000) {
    return Number.isInteger(n) ? n.toString() : n.toFixed(1);
  }
  const suffixes = ['k', 'M', 'G', 'T'];
  let value = abs;
  let i = -1;
  while (value >= 1000 && i < suffixes.length - 1) {
    value /= 1000;
    i += 1;
  }
  const digits = value >= 100 ? 0 : 1;
  return `${n < 0 ? '-' : ''}${value.toFixed(digits)}${suffixes[i]}`;
}

/**
 * How long ago `time` (epoch seconds) was, relative to `now`:
 * `'just now'`, `'5 min ago'`, `'3 h ago'`, `'2 d ago'`.
 */
export function formatAge(time: number, now: number = Date.now() / 1000): string {
  const age = now - time;
  if (!Number.isFinite(age)) {
    return '–';
  }
  if (age < 60) {
    return 'just now';
  }
  if (age < 3600) {
    return `${Math.floor(age / 60)} min ago`;
  }
  if (age < 86400) {
    return `${Math.floor(age / 3600)} h ago`;
  }
  return `${Math.floor(age / 86400)} d ago`;
}

/** `used / limit` as a short label for the status bar: `'1.2 GiB / 8 GiB'`. */
export function formatUsage(used: number | null, limit: number | null): string {
  return limit ? `${formatBytes(used)} / ${formatBytes(limit)}` : formatBytes(used);
}
