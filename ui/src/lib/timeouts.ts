// Request-timeout fields: the slider's logarithmic scale (1 s … 1 day in one sweep, with the
// common minutes range in the middle), validation that mirrors the backend's, and the defaults.
import type { Timeouts } from "./bindings";

export const MIN_SECONDS = 1;
export const MAX_SECONDS = 86_400;
export const SLIDER_MAX = 1000;

export const DEFAULT_TIMEOUTS: Timeouts = { chat_seconds: 900, completions_seconds: 600, embeddings_seconds: 120 };

export type TimeoutKey = keyof Timeouts;

export const TIMEOUT_FIELDS: { key: TimeoutKey; label: string; help: string }[] = [
  { key: "chat_seconds", label: "Chat", help: "/v1/chat/completions and /v1/messages" },
  { key: "completions_seconds", label: "Completions", help: "/v1/completions" },
  { key: "embeddings_seconds", label: "Embeddings", help: "/v1/embeddings" },
];

const LOG_MAX = Math.log(MAX_SECONDS / MIN_SECONDS);

/** Slider position (0…SLIDER_MAX) for a number of seconds. */
export function secondsToSlider(seconds: number): number {
  const s = Math.min(MAX_SECONDS, Math.max(MIN_SECONDS, seconds));
  return Math.round((Math.log(s / MIN_SECONDS) / LOG_MAX) * SLIDER_MAX);
}

/** Seconds for a slider position, snapped to a round value for its magnitude. */
export function sliderToSeconds(position: number): number {
  const p = Math.min(SLIDER_MAX, Math.max(0, position));
  const raw = MIN_SECONDS * Math.exp((p / SLIDER_MAX) * LOG_MAX);
  const step = raw < 120 ? 1 : raw < 1200 ? 10 : raw < 7200 ? 60 : 300;
  return Math.min(MAX_SECONDS, Math.max(MIN_SECONDS, Math.round(raw / step) * step));
}

export type Parsed = { ok: true; value: number } | { ok: false; message: string };

/** Validates what was typed into a timeout's number input. */
export function parseSeconds(raw: string | number): Parsed {
  const text = String(raw).trim();
  if (text === "") return { ok: false, message: "Enter a number of seconds." };
  const value = Number(text);
  if (!Number.isFinite(value) || !Number.isInteger(value)) {
    return { ok: false, message: "Use a whole number of seconds." };
  }
  if (value < MIN_SECONDS || value > MAX_SECONDS) {
    return { ok: false, message: `Between ${MIN_SECONDS} s and 1 day (${MAX_SECONDS} s).` };
  }
  return { ok: true, value };
}

/** Whether two timeout sets are equal. */
export function sameTimeouts(a: Timeouts, b: Timeouts): boolean {
  return TIMEOUT_FIELDS.every(({ key }) => a[key] === b[key]);
}
