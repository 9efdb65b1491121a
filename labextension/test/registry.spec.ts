import {
  detailRows,
  historyRows,
  IRegistryClient,
  isoSeconds,
  pageCount,
  pageLabel,
  placeOf,
  REGISTRY_ORDER,
  RegistryBrowser,
  registryParams,
  resourceSummary,
  sameQuery
} from '../src/model/registry';
import { FILTER_DEBOUNCE_MS, IResmanClient, ResourcesModel } from '../src/model/resources';
import { DEFAULT_SETTINGS } from '../src/model/settings';
import type { IRegistryItem, IRegistryList } from '../src/types';
import { metrics, registryItem, registryList, resource } from './fixtures';

const query = { kind: '', name: '', page: 0, pageSize: 20 };

describe('registry requests', () => {
  it('sends only the filters that are set, with the page as an offset', () => {
    expect(registryParams(query)).toEqual({ limit: '20', offset: '0', order: REGISTRY_ORDER });
    expect(registryParams({ kind: 'grid', name: '  plate * ', page: 2, pageSize: 10 })).toEqual({
      kind: 'grid',
      name: 'plate *',
      limit: '10',
      offset: '20',
      order: REGISTRY_ORDER
    });
  });

  it('compares states as they are sent', () => {
    expect(sameQuery(query, { ...query, name: '  ' })).toBe(true);
    expect(sameQuery(query, { ...query, page: 1 })).toBe(false);
    expect(sameQuery(query, { ...query, kind: 'asset' })).toBe(false);
  });
});

describe('registry figures', () => {
  it('counts pages and labels the list', () => {
    expect(pageCount(0, 20)).toBe(1);
    expect(pageCount(40, 20)).toBe(2);
    expect(pageCount(41, 20)).toBe(3);
    const twenty = Array.from({ length: 20 }, (_, i) => resource({ id: `id-${i}` }));
    expect(pageLabel(registryList({ total: 57, offset: 20, resources: twenty }))).toBe('21–40 of 57');
    expect(pageLabel(registryList({ total: 0, resources: [] }))).toBe('No resource matches the filters.');
    expect(pageLabel(registryList({ exists: false, total: 0, resources: [] }))).toContain(
      'No registry in this home yet'
    );
    expect(pageLabel(registryList({ total: 5, offset: 20, resources: [] }))).toContain('5 match');
  });

  it('summarises a resource by kind, class, place and state', () => {
    expect(resourceSummary(resource())).toBe('asset · sample');
    expect(resourceSummary(resource({ kind: 'grid', resource_class: '' }))).toBe('grid');
    expect(resourceSummary(resource({ key: '0,1', removed_at: '2024-02-01T00:00:00+00:00' }))).toBe(
      'asset · sample · at 0,1 · removed'
    );
  });

  it('reads ISO times as epoch seconds', () => {
    expect(isoSeconds('1970-01-01T00:01:00+00:00')).toBe(60);
    expect(isoSeconds(null)).toBeNull();
    expect(isoSeconds('not a time')).toBeNull();
  });

  it('shows the place outermost first', () => {
    const rack = resource({ id: 'rack', name: 'rack' });
    const plate = resource({ id: 'plate', name: 'plate' });
    expect(placeOf(registryItem({ ancestors: [plate, rack] })).map(r => r.name)).toEqual([
      'rack',
      'plate'
    ]);
  });

  it('lists fields, then one row per attribute, then times; empty ones left out', () => {
    const rows = detailRows(
      resource({
        kind: 'consumable',
        owner: 'ana',
        quantity: 450,
        unit: 'mL',
        attributes: { lot: 'L7', conc: { value: 1, unit: 'M' } },
        removed_at: null
      })
    );
    expect(rows).toEqual([
      ['class', 'sample'],
      ['owner', 'ana'],
      ['version', '1'],
      ['quantity', '450'],
      ['unit', 'mL'],
      ['attributes.conc', '{"value":1,"unit":"M"}'],
      ['attributes.lot', 'L7'],
      ['created', '2024-01-31 12:00:00 UTC'],
      ['updated', '2024-01-31 12:00:00 UTC']
    ]);
  });

  it('lists history with the fields an update touched', () => {
    const rows = historyRows([
      {
        id: 9,
        resource_id: 'r',
        version: 2,
        change_type: 'updated',
        changed_at: '1970-01-01T00:02:00+00:00',
        detail: 'used 50 mL',
        changes: { quantity: [500, 450], attributes: [{}, { a: 1 }] }
      },
      {
        id: 8,
        resource_id: 'r',
        version: 1,
        change_type: 'added',
        changed_at: '1970-01-01T00:01:00+00:00',
        detail: null,
        changes: { name: [null, 'PBS'], quantity: [null, 500] }
      }
    ]);
    expect(rows).toEqual([
      { key: '9', version: 2, change: 'updated', time: 120, fields: 'quantity, attributes', detail: 'used 50 mL' },
      { key: '8', version: 1, change: 'added', time: 60, fields: '', detail: '' }
    ]);
  });
});

/** A registry server whose answers the test releases one by one, in any order. */
class ScriptedRegistry implements IRegistryClient {
  requests: { params: Record<string, string>; resolve: (list: IRegistryList) => void }[] = [];
  items: Record<string, IRegistryItem> = {};
  itemCalls: string[] = [];

  registry(params: Record<string, string>): Promise<IRegistryList> {
    return new Promise(resolve => this.requests.push({ params, resolve }));
  }

  registryItem(id: string): Promise<IRegistryItem> {
    this.itemCalls.push(id);
    const found = this.items[id];
    return found ? Promise.resolve(found) : Promise.reject({ status: 404, message: 'no resource' });
  }
}

describe('RegistryBrowser', () => {
  it('drops an answer to filters the user has since changed', async () => {
    const server = new ScriptedRegistry();
    const browser = new RegistryBrowser({ client: server });
    browser.setFilters({ name: 'p' });
    const first = browser.fetch();
    browser.setFilters({ name: 'pl' });
    const second = browser.fetch();
    expect(server.requests.map(r => r.params.name)).toEqual(['p', 'pl']);
    // The newer answer arrives first, the older one last: the older must not win.
    server.requests[1].resolve(registryList({ resources: [resource({ name: 'plate' })] }));
    expect(browser.accept(await second)).toBe('accepted');
    server.requests[0].resolve(registryList({ resources: [resource({ name: 'pipette' })] }));
    expect(browser.accept(await first)).toBe('stale');
    expect(browser.answer!.list.resources[0].name).toBe('plate');
    expect(browser.pending).toBe(false);
  });

  it('goes back to the first page when a filter changes, and keeps pages in range', async () => {
    const server = new ScriptedRegistry();
    const browser = new RegistryBrowser({ client: server, pageSize: 10 });
    expect(browser.setPage(3)).toBe(true); // no total known yet: anything goes
    const answer = browser.fetch();
    server.requests[0].resolve(registryList({ total: 25, offset: 30, resources: [] }));
    // Page 4 of 3: kept, but the browser moves to the last page and asks again.
    expect(browser.accept(await answer)).toBe('refetch');
    expect(browser.query.page).toBe(2);
    expect(browser.setPage(7)).toBe(false); // clamped to the last page, where it is
    expect(browser.setPage(-1)).toBe(true);
    expect(browser.query.page).toBe(0);
    browser.setPage(1);
    expect(browser.setFilters({ kind: 'grid' })).toBe(true);
    expect(browser.query).toEqual({ kind: 'grid', name: '', page: 0, pageSize: 10 });
    expect(browser.setFilters({ kind: 'grid' })).toBe(false);
  });

  it('fetches the selected resource with the page, and reports one that is gone', async () => {
    const server = new ScriptedRegistry();
    server.items.a = registryItem({ resource: resource({ id: 'a', name: 'A' }) });
    const browser = new RegistryBrowser({ client: server });
    expect(browser.select('a')).toBe(true);
    let answer = browser.fetch();
    server.requests[0].resolve(registryList());
    const found = await answer;
    expect(found.item!.resource.name).toBe('A');
    expect(found.itemMissing).toBeNull();

    browser.select('gone');
    answer = browser.fetch();
    server.requests[1].resolve(registryList());
    const missing = await answer;
    expect(missing.item).toBeNull();
    expect(missing.itemMissing).toContain('gone is no longer in the registry');
    expect(browser.accept(missing)).toBe('accepted');
    expect(server.itemCalls).toEqual(['a', 'gone']);
  });

  it('fails the poll when the item fails for another reason than 404', async () => {
    const browser = new RegistryBrowser({
      client: {
        registry: () => Promise.resolve(registryList()),
        registryItem: () => Promise.reject({ status: 500, message: 'database is locked' })
      }
    });
    browser.select('a');
    await expect(browser.fetch()).rejects.toEqual({ status: 500, message: 'database is locked' });
  });
});

/** The model with a registry server that answers at once and records every request. */
class RegistryServer implements IResmanClient {
  params: Record<string, string>[] = [];
  total = 45;
  failure: unknown = undefined;

  registry(params: Record<string, string>): Promise<IRegistryList> {
    this.params.push(params);
    if (this.failure !== undefined) {
      return Promise.reject(this.failure);
    }
    const offset = Number(params.offset);
    const count = Math.max(0, Math.min(Number(params.limit), this.total - offset));
    const resources = Array.from({ length: count }, (_, i) =>
      resource({ id: `r${offset + i}`, name: `tube ${offset + i}` })
    );
    return Promise.resolve(registryList({ total: this.total, offset, limit: Number(params.limit), resources }));
  }

  registryItem(id: string): Promise<IRegistryItem> {
    return Promise.resolve(registryItem({ resource: resource({ id, name: id }) }));
  }

  metrics = () => Promise.resolve(metrics());
  progress = () => Promise.resolve({ kernels: [] });
  cache = () => Promise.reject({ status: 500 });
  clearCache = () => Promise.resolve({ removed: 0 });
  checkpoints = () => Promise.resolve({ checkpoints: [] });
  deleteCheckpoint = (name: string) => Promise.resolve({ deleted: name, versions: 1 });
  resources = () => Promise.resolve({ time: 1, kernels: [] });
}

async function until(condition: () => boolean, what: string, limitMs = 5_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

describe('ResourcesModel registry section', () => {
  let server: RegistryServer;
  let model: ResourcesModel;

  beforeEach(async () => {
    server = new RegistryServer();
    // A long interval: every request in these tests is one the user's action made.
    model = new ResourcesModel({
      client: server,
      settings: { ...DEFAULT_SETTINGS, refreshInterval: 60, statusBar: false },
      view: { panelVisible: () => true, documentHidden: () => false },
      registryPageSize: 20
    });
    await model.start();
    await until(() => model.registry.answer !== null, 'the first page');
  });

  afterEach(() => model.dispose());

  it('pages through the list, asking at once', async () => {
    expect(model.registry.answer!.list.resources).toHaveLength(20);
    model.setRegistryPage(2);
    await until(() => model.registry.answer!.list.offset === 40, 'the third page');
    expect(model.registry.answer!.list.resources.map(r => r.name)).toEqual([
      'tube 40',
      'tube 41',
      'tube 42',
      'tube 43',
      'tube 44'
    ]);
    model.setRegistryPage(5); // past the end: stays on the last page
    expect(model.registry.query.page).toBe(2);
  });

  it('asks once for a name typed quickly, and at once for a kind', async () => {
    const before = server.params.length;
    for (const name of ['t', 'tu', 'tub', 'tube 4']) {
      model.setRegistryFilters({ name });
    }
    expect(model.registry.pending).toBe(true);
    await new Promise(resolve => setTimeout(resolve, FILTER_DEBOUNCE_MS + 200));
    expect(server.params.slice(before).map(p => p.name)).toEqual(['tube 4']);
    model.setRegistryFilters({ kind: 'grid' });
    await until(() => server.params.length === before + 2, 'the kind request');
    expect(server.params[before + 1]).toMatchObject({ kind: 'grid', name: 'tube 4', offset: '0' });
  });

  it('moves to the last page when rows went away', async () => {
    model.setRegistryPage(2);
    await until(() => model.registry.answer!.list.offset === 40, 'the third page');
    server.total = 30; // someone removed fifteen resources
    await model.refresh(['registry']);
    await until(() => model.registry.answer!.list.offset === 20, 'the new last page');
    expect(model.registry.query.page).toBe(1);
    expect(model.registry.answer!.list.resources).toHaveLength(10);
  });

  it('shows a selected resource, and closes it', async () => {
    model.selectResource('r3');
    await until(() => model.registry.answer!.item !== null, 'the details');
    expect(model.registry.answer!.item!.resource.name).toBe('r3');
    model.selectResource(null);
    await until(() => model.registry.answer!.selectedId === null, 'the details to close');
    expect(model.registry.answer!.item).toBeNull();
  });

  it('says why the registry cannot be read, and keeps the last page', async () => {
    server.failure = { status: 500, message: 'registry.sqlite is damaged' };
    await model.refresh(['registry']);
    expect(model.error('registry')).toContain('registry.sqlite is damaged');
    expect(model.registry.answer!.list.resources).toHaveLength(20);
    server.failure = undefined;
    await model.refresh(['registry']);
    expect(model.error('registry')).toBeNull();
  });
});
