import {
  BACKOFF,
  classifyFailure,
  MAX_BACKOFF_MS,
  MAX_BACKOFF_PERMANENT_MS,
  pollFrequency,
  shouldStandby
} from '../src/model/polling';

describe('pollFrequency', () => {
  it('polls metrics and progress at the refresh interval, with backoff', () => {
    expect(pollFrequency(2)).toEqual({ interval: 2000, backoff: BACKOFF, max: MAX_BACKOFF_MS });
  });

  it('polls cache and checkpoints five times less often, within 10 s – 5 min', () => {
    expect(pollFrequency(3, 'slow').interval).toBe(15_000);
    expect(pollFrequency(0.5, 'slow').interval).toBe(10_000);
    expect(pollFrequency(300, 'slow').interval).toBe(300_000);
  });

  it('backs off further when retrying cannot help', () => {
    expect(pollFrequency(2, 'fast', 'missing').max).toBe(MAX_BACKOFF_PERMANENT_MS);
    expect(pollFrequency(2, 'fast', 'forbidden').max).toBe(MAX_BACKOFF_PERMANENT_MS);
    expect(pollFrequency(2, 'fast', 'server').max).toBe(MAX_BACKOFF_MS);
  });

  it('never sets a ceiling below the interval (lumino refuses that)', () => {
    const f = pollFrequency(300, 'slow');
    expect(f.max).toBeGreaterThanOrEqual(f.interval);
  });
});

describe('shouldStandby', () => {
  const base = { documentHidden: false, panelVisible: true, sectionEnabled: true };

  it('polls while the panel shows the section', () => {
    expect(shouldStandby(base)).toBe(false);
  });

  it('stands by while the panel is hidden or the section is off', () => {
    expect(shouldStandby({ ...base, panelVisible: false })).toBe(true);
    expect(shouldStandby({ ...base, sectionEnabled: false })).toBe(true);
  });

  it('keeps metrics live for the status bar with the panel closed', () => {
    expect(shouldStandby({ ...base, panelVisible: false, statusBarNeeds: true })).toBe(false);
  });

  it('stands by in a hidden tab, status bar or not', () => {
    expect(shouldStandby({ ...base, documentHidden: true, statusBarNeeds: true })).toBe(true);
  });
});

describe('classifyFailure', () => {
  it('reads a 404 as the server extension missing, and says how to enable it', () => {
    const f = classifyFailure({ status: 404, message: 'Not Found' });
    expect(f.kind).toBe('missing');
    expect(f.message).toContain('jupyter server extension enable jupyter_resman');
  });

  it('tells access, server, bad-request and network failures apart', () => {
    expect(classifyFailure({ status: 403 }).kind).toBe('forbidden');
    expect(classifyFailure({ status: 500, message: 'database is locked' }).message).toContain(
      'database is locked'
    );
    expect(classifyFailure({ status: 400, message: 'unknown field' })).toEqual({
      kind: 'bad-answer',
      message: 'unknown field'
    });
    expect(classifyFailure(new SyntaxError('Unexpected token <')).kind).toBe('bad-answer');
    expect(classifyFailure(new TypeError('Failed to fetch')).kind).toBe('network');
    expect(classifyFailure(new Error('socket hang up')).kind).toBe('network');
    expect(classifyFailure(undefined).kind).toBe('network');
  });
});
