// Human-readable numbers for the settings window: durations, byte sizes, counts and timestamps,
// and what a finish reason means.

const nf = new Intl.NumberFormat("en-US");

/** `1,234,567` */
export function formatCount(n: number): string {
  return nf.format(n);
}

/** A timeout: `45 s`, `15 min`, `1 h 30 min`, `1 day`. */
export function formatSeconds(total: number): string {
  if (!Number.isFinite(total)) return "—";
  const s = Math.round(total);
  if (s < 60) return `${s} s`;
  const parts: string[] = [];
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  if (days) parts.push(days === 1 ? "1 day" : `${days} days`);
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  if (seconds) parts.push(`${seconds} s`);
  return parts.join(" ");
}

/** A request's latency: `850 ms`, `1.25 s`, `2 min 3 s`. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return formatSeconds(ms / 1000);
}

/** Bytes in decimal units, as macOS shows them: `512 KB`, `350 MB`, `4.2 GB`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${Math.round(bytes / 1e6)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} KB`;
  return `${bytes} B`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** A UTC timestamp in local time: `2026-11-22 18:40:12`. */
export function formatTimestamp(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A Date as the value of an `<input type="datetime-local">` (local time, minutes). */
export function toLocalInput(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const FINISH_MEANINGS = new Map<string, string>([
  ["stop", "finished its answer or hit a stop sequence"],
  ["end_turn", "finished its answer"],
  ["stop_sequence", "hit a stop sequence"],
  ["length", "cut off at the token limit"],
  ["max_tokens", "cut off at the token limit"],
  ["tool_calls", "stopped to call tools"],
  ["tool_use", "stopped to call tools"],
  ["content_filter", "stopped by the content filter"],
  ["refusal", "declined to answer"],
]);

/** What a finish reason (in either API's spelling) means; null for one we do not know. */
export function finishMeaning(reason: string): string | null {
  return FINISH_MEANINGS.get(reason) ?? null;
}
