/**
 * The user settings of the sidebar (schema/plugin.json), read defensively:
 * the settings editor lets users type anything into the JSON view, and a
 * bad value must fall back to the default rather than break polling.
 */

export const SECTIONS = ['kernels', 'progress', 'cache', 'checkpoints', 'resources', 'registry'] as const;
export type SectionName = (typeof SECTIONS)[number];

export interface IResmanSettings {
  /** Seconds between polls of metrics and progress. */
  refreshInterval: number;
  /** Seconds of memory/CPU history the graphs show. */
  historyWindow: number;
  /** Which sections the sidebar shows, in order. */
  sections: Record<SectionName, boolean>;
  /** Whether the status-bar memory item is shown. */
  statusBar: boolean;
}

export const DEFAULT_SETTINGS: IResmanSettings = {
  refreshInterval: 2,
  historyWindow: 300,
  sections: {
    kernels: true,
    progress: true,
    cache: true,
    checkpoints: true,
    resources: true,
    registry: true
  },
  statusBar: true
};

/** Bounds, also in schema/plugin.json: faster than 0.5 s loads the server for nothing. */
export const LIMITS = {
  refreshInterval: { min: 0.5, max: 300 },
  historyWindow: { min: 30, max: 86400 }
};

function clampNumber(value: unknown, fallback: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fallback;
  }
  return Math.min(max, Math.max(min, value));
}

/**
 * Settings from the registry's composite value (any shape) with defaults
 * for what is missing or invalid and numbers clamped to their bounds.
 */
export function normalizeSettings(raw: unknown): IResmanSettings {
  const value = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const sectionsRaw =
    value.sections && typeof value.sections === 'object'
      ? (value.sections as Record<string, unknown>)
      : {};
  const sections = { ...DEFAULT_SETTINGS.sections };
  for (const name of SECTIONS) {
    if (typeof sectionsRaw[name] === 'boolean') {
      sections[name] = sectionsRaw[name] as boolean;
    }
  }
  return {
    refreshInterval: clampNumber(
      value.refreshInterval,
      DEFAULT_SETTINGS.refreshInterval,
      LIMITS.refreshInterval.min,
      LIMITS.refreshInterval.max
    ),
    historyWindow: clampNumber(
      value.historyWindow,
      DEFAULT_SETTINGS.historyWindow,
      LIMITS.historyWindow.min,
      LIMITS.historyWindow.max
    ),
    sections,
    statusBar: typeof value.statusBar === 'boolean' ? value.statusBar : DEFAULT_SETTINGS.statusBar
  };
}

/** The sections to show, in display order. */
export function visibleSections(settings: IResmanSettings): SectionName[] {
  return SECTIONS.filter(name => settings.sections[name]);
}
