/**
 * When and how often the sidebar asks the server.
 *
 * The polling itself is lumino's `Poll` (exponential backoff with jitter on
 * a rejected request, back to the normal interval on the next success).
 * These functions decide its frequency and when it stands by, so the
 * decisions can be tested without a browser.
 */

/** lumino's `IPoll.Frequency`, restated to keep this module dependency-free. */
export interface IFrequency {
  interval: number;
  backoff: boolean | number;
  max: number;
}

/** Which data a poll fetches: `fast` (metrics, progress) or `slow` (cache, checkpoints). */
export type PollKind = 'fast' | 'slow';

/** What kind of failure a request ended in. */
export type FailureKind = 'missing' | 'forbidden' | 'server' | 'network' | 'bad-answer';

/** The backoff factor: each failure waits up to this many times longer. */
export const BACKOFF = 2;

/** Ceiling of the backoff for errors that may heal on their own (ms). */
export const MAX_BACKOFF_MS = 60_000;

/** Ceiling when retrying cannot help until someone acts (extension missing, no access). */
export const MAX_BACKOFF_PERMANENT_MS = 10 * 60_000;

/**
 * The poll frequency for a refresh interval in seconds.
 *
 * Cache and checkpoint figures change when someone writes a value or saves a
 * checkpoint, not every second, and computing them reads SQLite: they are
 * polled five times less often (at least every 10 s, at most every 5 min).
 */
export function pollFrequency(
  refreshSeconds: number,
  kind: PollKind = 'fast',
  failure: FailureKind | null = null
): IFrequency {
  const fast = Math.max(100, Math.round(refreshSeconds * 1000));
  const interval = kind === 'fast' ? fast : Math.min(300_000, Math.max(10_000, fast * 5));
  const permanent = failure === 'missing' || failure === 'forbidden';
  const ceiling = permanent ? MAX_BACKOFF_PERMANENT_MS : MAX_BACKOFF_MS;
  return { interval, backoff: BACKOFF, max: Math.max(interval, ceiling) };
}

/** What a poll needs to know to decide whether to stand by. */
export interface IVisibility {
  /** The browser tab is hidden (`document.visibilityState === 'hidden'`). */
  documentHidden: boolean;
  /** The Resources sidebar is open and attached. */
  panelVisible: boolean;
  /** The section this poll feeds is enabled in the settings. */
  sectionEnabled: boolean;
  /** The status-bar item needs this data (only metrics ever do). */
  statusBarNeeds?: boolean;
}

/**
 * Whether a poll should skip its request this tick.
 *
 * Nothing is fetched for a hidden tab. Otherwise a poll runs when the panel
 * shows its section, or when the status bar needs its data (metrics: the
 * memory item stays live with the sidebar closed).
 */
export function shouldStandby(v: IVisibility): boolean {
  if (v.documentHidden) {
    return true;
  }
  if (v.statusBarNeeds) {
    return false;
  }
  return !(v.panelVisible && v.sectionEnabled);
}

/** An error as the server extension's client raises it. */
export interface IRequestError {
  status?: number;
  message?: string;
  name?: string;
}

/**
 * Classify a failed request, and say what the user can do about it.
 *
 * A 404 on our own routes means the server extension is not loaded (the
 * labextension alone was installed, or the server was not restarted), not
 * that the data is missing: the message says how to enable it.
 */
export function classifyFailure(error: unknown): { kind: FailureKind; message: string } {
  const e = (error && typeof error === 'object' ? error : {}) as IRequestError;
  const status = typeof e.status === 'number' ? e.status : undefined;
  if (status === 404) {
    return {
      kind: 'missing',
      message:
        'The jupyter_resman server extension is not answering. Enable it with ' +
        '`jupyter server extension enable jupyter_resman` and restart Jupyter.'
    };
  }
  if (status === 401 || status === 403) {
    return {
      kind: 'forbidden',
      message: 'The server refused access to the resource data (403). Reload the page to log in again.'
    };
  }
  if (status !== undefined && status >= 500) {
    return {
      kind: 'server',
      message: `The server failed to read the resource data: ${e.message || `HTTP ${status}`}. Retrying less often.`
    };
  }
  if (status !== undefined && status >= 400) {
    return { kind: 'bad-answer', message: e.message || `HTTP ${status}` };
  }
  // A JSON parse failure; `fetch` itself signals a network failure with a
  // TypeError, which falls through to 'network' below.
  if (e.name === 'SyntaxError') {
    return { kind: 'bad-answer', message: `Unexpected answer from the server: ${e.message}` };
  }
  return {
    kind: 'network',
    message: 'Cannot reach the Jupyter server. Retrying less often until it answers.'
  };
}
