/**
 * The Registry section's state and figures: the filters and page the user
 * chose, the resource they selected, and what the server answered for them.
 *
 * A request is built from the state at the moment it goes out and its answer
 * remembers that state, so an answer to filters the user has since changed
 * is dropped instead of flashing the old list (typing "plate" sends requests
 * for "p", "pl"… and they may come back in any order).
 */

import type { IRegistryChange, IRegistryItem, IRegistryList, IRegistryResource } from '../types';

/** Resources on one page of the list. */
export const REGISTRY_PAGE_SIZE = 20;

/** The list order: newest first, as the registry panel of the dashboard shows it. */
export const REGISTRY_ORDER = '-created_at';

/** What the user filters on; `''` means no filter. */
export interface IRegistryFilters {
  kind: string;
  /** Text the name contains, or a pattern of the whole name with `*` wildcards. */
  name: string;
}

/** The filters and the page: everything one list request depends on. */
export interface IRegistryQuery extends IRegistryFilters {
  /** 0-based. */
  page: number;
  pageSize: number;
}

/** The two registry routes. */
export interface IRegistryClient {
  registry(params: Record<string, string>): Promise<IRegistryList>;
  registryItem(id: string): Promise<IRegistryItem>;
}

/** What one poll of the registry brought back, and for which state. */
export interface IRegistryAnswer {
  query: IRegistryQuery;
  list: IRegistryList;
  selectedId: string | null;
  /** The selected resource in depth, or null (none selected, or it is gone). */
  item: IRegistryItem | null;
  /** Why the selected resource is not shown, or null. */
  itemMissing: string | null;
}

/** What the model should do after handing an answer to {@link RegistryBrowser.accept}. */
export type AcceptResult = 'accepted' | 'stale' | 'refetch';

/** The query parameters of `GET /resman/api/registry` for a state. */
export function registryParams(query: IRegistryQuery): Record<string, string> {
  const params: Record<string, string> = {
    limit: String(query.pageSize),
    offset: String(query.page * query.pageSize),
    order: REGISTRY_ORDER
  };
  if (query.kind) {
    params.kind = query.kind;
  }
  const name = query.name.trim();
  if (name) {
    params.name = name;
  }
  return params;
}

/** Whether two states ask for the same list (the name compared as it is sent). */
export function sameQuery(a: IRegistryQuery, b: IRegistryQuery): boolean {
  return (
    a.kind === b.kind &&
    a.name.trim() === b.name.trim() &&
    a.page === b.page &&
    a.pageSize === b.pageSize
  );
}

/** How many pages `total` resources fill (at least one, an empty page). */
export function pageCount(total: number, pageSize: number): number {
  return Math.max(1, Math.ceil(Math.max(0, total) / Math.max(1, pageSize)));
}

/**
 * The line under the list: `'21–40 of 57'`, or why it is empty.
 *
 * ```ts
 * pageLabel({ exists: true, total: 57, offset: 20, resources: twenty, … }); // '21–40 of 57'
 * ```
 */
export function pageLabel(list: Pick<IRegistryList, 'exists' | 'total' | 'offset' | 'resources'>): string {
  if (!list.exists) {
    return 'No registry in this home yet: it starts with the first session.registry.add(…) in a kernel.';
  }
  if (list.total === 0) {
    return 'No resource matches the filters.';
  }
  if (list.resources.length === 0) {
    return `None on this page; ${list.total} match in all.`;
  }
  return `${list.offset + 1}–${list.offset + list.resources.length} of ${list.total}`;
}

/** Epoch seconds of an ISO 8601 time, or null. */
export function isoSeconds(iso: string | null | undefined): number | null {
  if (!iso) {
    return null;
  }
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/** What a resource is, in a few words: `'grid · plate'`, `'asset · sample · at 0,1'`. */
export function resourceSummary(resource: IRegistryResource): string {
  const parts = [resource.kind];
  if (resource.resource_class) {
    parts.push(resource.resource_class);
  }
  if (resource.key !== null && resource.key !== undefined && resource.key !== '') {
    parts.push(`at ${resource.key}`);
  }
  if (resource.removed_at) {
    parts.push('removed');
  }
  return parts.join(' · ');
}

/** Where a resource sits, outermost container first (the server lists the parent first). */
export function placeOf(item: IRegistryItem): IRegistryResource[] {
  return [...item.ancestors].reverse();
}

/** Fields shown as such; the rest of a resource is either its identity or its attributes. */
const HIDDEN_FIELDS = new Set([
  'id',
  'name',
  'kind',
  'parent_id',
  'attributes',
  'created_at',
  'updated_at',
  'removed_at'
]);

const LABELS: Record<string, string> = { resource_class: 'class' };

function show(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  return JSON.stringify(value);
}

/**
 * The detail table of one resource: `[label, text]` rows, empty fields left
 * out, kind-specific fields (quantity, rows…) after the common ones, one row
 * per attribute (`attributes.experiment`), times last.
 */
export function detailRows(resource: IRegistryResource): [string, string][] {
  const rows: [string, string][] = [];
  for (const [field, value] of Object.entries(resource)) {
    if (HIDDEN_FIELDS.has(field) || value === null || value === undefined || value === '') {
      continue;
    }
    rows.push([LABELS[field] ?? field.replace(/_/g, ' '), show(value)]);
  }
  for (const key of Object.keys(resource.attributes ?? {}).sort()) {
    rows.push([`attributes.${key}`, show(resource.attributes[key])]);
  }
  for (const field of ['created_at', 'updated_at', 'removed_at']) {
    const value = resource[field];
    if (typeof value === 'string' && value) {
      rows.push([field.replace('_at', ''), value.slice(0, 19).replace('T', ' ') + ' UTC']);
    }
  }
  return rows;
}

/** One line of a resource's history. */
export interface IHistoryRow {
  key: string;
  version: number;
  change: string;
  /** Epoch seconds, or null when the time cannot be read. */
  time: number | null;
  /** The fields an update touched (`'quantity, attributes'`); `''` for the other changes. */
  fields: string;
  detail: string;
}

/** History entries as the section lists them (newest first, as the server sends them). */
export function historyRows(history: readonly IRegistryChange[]): IHistoryRow[] {
  return history.map(entry => ({
    key: String(entry.id),
    version: entry.version,
    change: entry.change_type,
    time: isoSeconds(entry.changed_at),
    // An addition "changes" every field from nothing: listing them says nothing.
    fields: entry.change_type === 'added' ? '' : Object.keys(entry.changes ?? {}).join(', '),
    detail: entry.detail ?? ''
  }));
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * The state of the Registry section and the requests it makes.
 *
 * The model polls {@link fetch} and hands each result to {@link accept};
 * the view changes the state through {@link setFilters}, {@link setPage} and
 * {@link select}, then asks the model to poll at once.
 */
export class RegistryBrowser {
  constructor(options: { client: IRegistryClient; pageSize?: number }) {
    this._client = options.client;
    this._query = { kind: '', name: '', page: 0, pageSize: options.pageSize ?? REGISTRY_PAGE_SIZE };
  }

  /** The state the next request is for. */
  get query(): IRegistryQuery {
    return { ...this._query };
  }

  /** The id of the resource shown in depth, or null. */
  get selectedId(): string | null {
    return this._selectedId;
  }

  /** The last answer that matched the state when it arrived, or null before the first. */
  get answer(): IRegistryAnswer | null {
    return this._answer;
  }

  /** Whether the state changed since the answer shown was asked for (a request is due). */
  get pending(): boolean {
    return (
      this._answer !== null &&
      (!sameQuery(this._answer.query, this._query) || this._answer.selectedId !== this._selectedId)
    );
  }

  /** Change the filters; back to the first page. Whether anything changed. */
  setFilters(filters: Partial<IRegistryFilters>): boolean {
    const next = { ...this._query, ...filters, page: 0 };
    if (next.kind === this._query.kind && next.name === this._query.name && this._query.page === 0) {
      return false;
    }
    this._query = next;
    return true;
  }

  /** Go to a page (0-based), kept within the pages the last answer had. Whether it moved. */
  setPage(page: number): boolean {
    const total = this._answer?.list.total;
    const last = total === undefined ? Infinity : pageCount(total, this._query.pageSize) - 1;
    const next = Math.max(0, Math.min(Math.floor(page), last));
    if (!Number.isFinite(next) || next === this._query.page) {
      return false;
    }
    this._query = { ...this._query, page: next };
    return true;
  }

  /** Show a resource in depth (null: none). Whether the selection changed. */
  select(id: string | null): boolean {
    if (id === this._selectedId) {
      return false;
    }
    this._selectedId = id;
    return true;
  }

  /**
   * Ask for the current state: the page, and the selected resource.
   *
   * A selected resource that is gone (404: removed for good, or a registry
   * replaced) is not a failure of the section: the answer says so and the
   * list still shows.
   */
  async fetch(): Promise<IRegistryAnswer> {
    const query = this.query;
    const selectedId = this._selectedId;
    const item: Promise<[IRegistryItem | null, string | null]> =
      selectedId === null
        ? Promise.resolve([null, null])
        : this._client.registryItem(selectedId).then(
            found => [found, null],
            error => {
              if (statusOf(error) === 404) {
                return [null, `Resource ${selectedId} is no longer in the registry.`];
              }
              throw error;
            }
          );
    const [list, [found, missing]] = await Promise.all([
      this._client.registry(registryParams(query)),
      item
    ]);
    return { query, list, selectedId, item: found, itemMissing: missing };
  }

  /**
   * Keep an answer if it is for the current state.
   *
   * `'stale'`: the state changed since it was asked for (a newer request is
   * on its way). `'refetch'`: kept, but its page is past the last one (rows
   * went away since): the state moved to the last page, which should be
   * asked for now.
   */
  accept(answer: IRegistryAnswer): AcceptResult {
    if (!sameQuery(answer.query, this._query) || answer.selectedId !== this._selectedId) {
      return 'stale';
    }
    this._answer = answer;
    const { list } = answer;
    if (list.total > 0 && list.resources.length === 0 && this._query.page > 0) {
      this._query = { ...this._query, page: pageCount(list.total, this._query.pageSize) - 1 };
      return 'refetch';
    }
    return 'accepted';
  }

  private _client: IRegistryClient;
  private _query: IRegistryQuery;
  private _selectedId: string | null = null;
  private _answer: IRegistryAnswer | null = null;
}
