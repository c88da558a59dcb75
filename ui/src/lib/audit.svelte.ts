// The audit-log view's state: the rows on screen (cursor pages from the store, newest first), the
// stats for the same filter, live entries prepended as the shell announces them, and exports.
// It lives for the whole window so live rows keep arriving while another section is shown.
import { commands, type AuditEntry, type AuditFilter, type AuditStats, type ExportFormat } from "./bindings";
import { buildFilter, defaultFilterState, matchesFilter, type FilterState } from "./audit-filter";
import { call, errorText } from "./api";

export const PAGE_SIZE = 100;
const STATS_DEBOUNCE_MS = 250;

/** The store filter for an already validated filter bar, time presets anchored now. */
function anchored(state: FilterState): AuditFilter {
  const built = buildFilter(state);
  if (!built.ok) throw new Error(built.message);
  return built.filter;
}

export class AuditLog {
  filterState = $state<FilterState>(defaultFilterState());
  filterError = $state<string | null>(null);
  rows = $state<AuditEntry[]>([]);
  stats = $state<AuditStats | null>(null);
  loading = $state(false);
  /** No older page exists. */
  complete = $state(false);
  error = $state<string | null>(null);
  /** Listening to the shell's live feed. */
  live = $state(false);
  /** Bumped when live rows are put on top (the table keeps its scroll position). */
  prepended = $state(0);
  selected = $state<AuditEntry | null>(null);
  exportState = $state<{ path: string; rows: number; total: number; done: boolean; error: string | null } | null>(null);

  #applied: FilterState = defaultFilterState();
  #filter: AuditFilter = anchored(this.#applied);
  #cursor: string | null = null;
  #generation = 0;
  #seen = new Set<string>();
  #statsTimer: ReturnType<typeof setTimeout> | null = null;

  /** The filter the rows and stats were queried with. */
  get filter(): AuditFilter {
    return this.#filter;
  }

  /** Applies the filter bar and reloads from the newest entry. */
  async apply(): Promise<void> {
    const built = buildFilter(this.filterState);
    if (!built.ok) {
      this.filterError = built.message;
      return;
    }
    this.filterError = null;
    this.#applied = { ...this.filterState };
    await this.reload();
  }

  /** Drops what is on screen and loads the first page and the stats again (presets re-anchored). */
  async reload(): Promise<void> {
    this.#generation += 1;
    this.#filter = anchored(this.#applied);
    this.#cursor = null;
    this.#seen.clear();
    this.rows = [];
    this.complete = false;
    this.loading = false;
    this.error = null;
    await Promise.all([this.loadMore(), this.refreshStats()]);
  }

  /** Loads the next (older) page; no-op while one is loading or at the end. */
  async loadMore(): Promise<void> {
    if (this.loading || this.complete) return;
    const generation = this.#generation;
    this.loading = true;
    try {
      const page = await call(commands.auditPage(this.#filter, this.#cursor, PAGE_SIZE));
      if (generation !== this.#generation) return;
      const fresh = page.entries.filter((e) => !this.#seen.has(e.request_id));
      for (const e of fresh) this.#seen.add(e.request_id);
      this.rows.push(...fresh);
      this.#cursor = page.next_cursor ?? null;
      this.complete = this.#cursor === null;
      this.error = null;
    } catch (e) {
      if (generation === this.#generation) this.error = errorText(e);
    } finally {
      if (generation === this.#generation) this.loading = false;
    }
  }

  async refreshStats(): Promise<void> {
    const generation = this.#generation;
    try {
      const stats = await call(commands.auditStats(this.#filter));
      if (generation === this.#generation) this.stats = stats;
    } catch (e) {
      if (generation === this.#generation) this.error = errorText(e);
    }
  }

  /** A live entry: shown on top when it matches the active filter. */
  receive(entry: AuditEntry): void {
    if (!matchesFilter(entry, this.#filter) || this.#seen.has(entry.request_id)) return;
    this.#seen.add(entry.request_id);
    this.rows.unshift(entry);
    this.prepended += 1;
  }

  /** The log changed: refresh the stats soon (coalescing bursts); reload when live rows were lost. */
  changed(lagged: boolean): void {
    if (lagged) {
      void this.reload();
      return;
    }
    if (this.#statsTimer) return;
    this.#statsTimer = setTimeout(() => {
      this.#statsTimer = null;
      void this.refreshStats();
    }, STATS_DEBOUNCE_MS);
  }

  /** Writes the active filter's entries to `path`; progress arrives through `exportProgress`. */
  async exportTo(format: ExportFormat, path: string): Promise<void> {
    this.exportState = { path, rows: 0, total: this.stats?.total ?? 0, done: false, error: null };
    try {
      const result = await call(commands.exportAudit(this.#filter, format, path));
      this.exportState = { path: result.path, rows: result.rows, total: result.rows, done: true, error: null };
    } catch (e) {
      this.exportState = { path, rows: this.exportState?.rows ?? 0, total: 0, done: true, error: errorText(e) };
    }
  }

  exportProgress(path: string, rows: number): void {
    if (this.exportState && !this.exportState.done && this.exportState.path === path) this.exportState.rows = rows;
  }
}
