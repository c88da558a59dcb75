// The audit log's filter bar as plain data: what the user picked (model text, backend, status,
// a time preset or a custom range) turned into the store's `AuditFilter`, and the same test the
// store applies, used to decide whether a live entry belongs in the visible list.
import type { AuditEntry, AuditFilter, AuditStatus, BackendType } from "./bindings";

export type TimePreset = "15m" | "1h" | "24h" | "7d" | "30d" | "all" | "custom";

export const TIME_PRESETS: { value: TimePreset; label: string; seconds: number | null }[] = [
  { value: "15m", label: "Last 15 minutes", seconds: 15 * 60 },
  { value: "1h", label: "Last hour", seconds: 3600 },
  { value: "24h", label: "Last 24 hours", seconds: 86_400 },
  { value: "7d", label: "Last 7 days", seconds: 7 * 86_400 },
  { value: "30d", label: "Last 30 days", seconds: 30 * 86_400 },
  { value: "all", label: "All time", seconds: null },
  { value: "custom", label: "Custom range…", seconds: null },
];

export const BACKENDS: { value: BackendType; label: string }[] = [
  { value: "local", label: "Local" },
  { value: "openai", label: "OpenAI" },
  { value: "anthropic", label: "Anthropic" },
  { value: "openai_compatible", label: "OpenAI-compatible" },
  { value: "anthropic_compatible", label: "Anthropic-compatible" },
];

export const STATUSES: { value: AuditStatus; label: string }[] = [
  { value: "success", label: "Success" },
  { value: "error", label: "Error" },
  { value: "timeout", label: "Timeout" },
  { value: "cancelled", label: "Cancelled" },
];

/** What the filter bar holds. `from`/`to` are `datetime-local` values (local time). */
export interface FilterState {
  model: string;
  backend: BackendType | "";
  status: AuditStatus | "";
  preset: TimePreset;
  from: string;
  to: string;
}

export function defaultFilterState(): FilterState {
  return { model: "", backend: "", status: "", preset: "24h", from: "", to: "" };
}

export type Built = { ok: true; filter: AuditFilter } | { ok: false; message: string };

/** The store filter for a filter bar, with presets anchored at `now`. */
export function buildFilter(state: FilterState, now: Date = new Date()): Built {
  const filter: AuditFilter = {
    model: null,
    model_contains: state.model.trim() || null,
    backend_type: state.backend || null,
    status: state.status || null,
    endpoint: null,
    start_time: null,
    end_time: null,
  };
  if (state.preset === "custom") {
    const from = state.from ? new Date(state.from) : null;
    const to = state.to ? new Date(state.to) : null;
    if (from && Number.isNaN(from.getTime())) return { ok: false, message: "The start of the range is not a date." };
    if (to && Number.isNaN(to.getTime())) return { ok: false, message: "The end of the range is not a date." };
    if (from && to && from >= to) return { ok: false, message: "The range must end after it starts." };
    filter.start_time = from ? from.toISOString() : null;
    filter.end_time = to ? to.toISOString() : null;
  } else {
    const seconds = TIME_PRESETS.find((p) => p.value === state.preset)?.seconds ?? null;
    if (seconds !== null) filter.start_time = new Date(now.getTime() - seconds * 1000).toISOString();
  }
  return { ok: true, filter };
}

/** Whether the store would return `entry` for `filter` (same rules as crates/store). */
export function matchesFilter(entry: AuditEntry, filter: AuditFilter): boolean {
  if (filter.model && entry.model !== filter.model) return false;
  if (filter.model_contains && !entry.model.toLowerCase().includes(filter.model_contains.toLowerCase())) return false;
  if (filter.backend_type && entry.backend_type !== filter.backend_type) return false;
  if (filter.status && entry.status !== filter.status) return false;
  if (filter.endpoint && entry.endpoint !== filter.endpoint) return false;
  if (filter.finish_reason && entry.finish_reason !== filter.finish_reason) return false;
  const t = Date.parse(entry.timestamp);
  if (filter.start_time && t < Date.parse(filter.start_time)) return false;
  if (filter.end_time && t >= Date.parse(filter.end_time)) return false;
  return true;
}

/** Whether any filter other than the time range is set (for the empty state's wording). */
export function isNarrowed(state: FilterState): boolean {
  return state.model.trim() !== "" || state.backend !== "" || state.status !== "";
}
