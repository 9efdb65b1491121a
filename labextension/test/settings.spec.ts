import * as fs from 'fs';
import * as path from 'path';

import { DEFAULT_SETTINGS, LIMITS, normalizeSettings, SECTIONS, visibleSections } from '../src/model/settings';

describe('normalizeSettings', () => {
  it('fills in defaults for a missing composite', () => {
    expect(normalizeSettings(undefined)).toEqual(DEFAULT_SETTINGS);
    expect(normalizeSettings({})).toEqual(DEFAULT_SETTINGS);
  });

  it('clamps numbers to their bounds and ignores wrong types', () => {
    const s = normalizeSettings({ refreshInterval: 0.01, historyWindow: 'long', statusBar: 'yes' });
    expect(s.refreshInterval).toBe(LIMITS.refreshInterval.min);
    expect(s.historyWindow).toBe(DEFAULT_SETTINGS.historyWindow);
    expect(s.statusBar).toBe(true);
    expect(normalizeSettings({ historyWindow: 1e9 }).historyWindow).toBe(LIMITS.historyWindow.max);
  });

  it('takes the sections that are booleans and keeps the display order', () => {
    const s = normalizeSettings({ sections: { cache: false, progress: 'no', extra: true } });
    expect(s.sections).toEqual({
      kernels: true,
      progress: true,
      cache: false,
      checkpoints: true,
      resources: true,
      registry: true
    });
    expect(visibleSections(s)).toEqual(['kernels', 'progress', 'checkpoints', 'resources', 'registry']);
    const only = normalizeSettings({ sections: { registry: true, resources: false, kernels: false } });
    expect(visibleSections(only)).toEqual(['progress', 'cache', 'checkpoints', 'registry']);
  });
});

describe('schema/plugin.json', () => {
  const schema = JSON.parse(
    fs.readFileSync(path.join(__dirname, '..', 'schema', 'plugin.json'), 'utf-8')
  );

  it('has the same defaults and bounds as the code', () => {
    const props = schema.properties;
    expect(props.refreshInterval.default).toBe(DEFAULT_SETTINGS.refreshInterval);
    expect(props.refreshInterval.minimum).toBe(LIMITS.refreshInterval.min);
    expect(props.refreshInterval.maximum).toBe(LIMITS.refreshInterval.max);
    expect(props.historyWindow.default).toBe(DEFAULT_SETTINGS.historyWindow);
    expect(props.historyWindow.minimum).toBe(LIMITS.historyWindow.min);
    expect(props.historyWindow.maximum).toBe(LIMITS.historyWindow.max);
    expect(props.statusBar.default).toBe(DEFAULT_SETTINGS.statusBar);
    expect(props.sections.default).toEqual(DEFAULT_SETTINGS.sections);
    expect(Object.keys(props.sections.properties)).toEqual([...SECTIONS]);
  });
});
