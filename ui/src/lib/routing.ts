// Pure helpers for the Providers and Routing rules sections: presets, the extra-headers text
// format, rule reordering and the one-line answer of "Test rule".
import type { ProviderKind, RouteTest, RoutingRule } from "./bindings";

export const KIND_LABELS: Record<ProviderKind, string> = {
  openai: "OpenAI",
  anthropic: "Anthropic",
  openai_compatible: "OpenAI-compatible",
  anthropic_compatible: "Anthropic-compatible",
};

/** Hosted services are base URLs for one of the four kinds. */
export const PRESETS: { label: string; kind: ProviderKind; base_url: string }[] = [
  { label: "OpenAI", kind: "openai", base_url: "https://api.openai.com/v1" },
  { label: "Anthropic", kind: "anthropic", base_url: "https://api.anthropic.com" },
  { label: "Groq", kind: "openai_compatible", base_url: "https://api.groq.com/openai/v1" },
  { label: "Together", kind: "openai_compatible", base_url: "https://api.together.xyz/v1" },
  { label: "OpenRouter", kind: "openai_compatible", base_url: "https://openrouter.ai/api/v1" },
  { label: "vLLM / another MLX Manager", kind: "openai_compatible", base_url: "http://127.0.0.1:8000/v1" },
];

/** `Name: value` lines → headers; the first bad line is reported by number. */
export function parseHeaders(text: string): { headers: Record<string, string> } | { error: string } {
  const headers: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return { error: `line ${i + 1}: write it as “Name: value”` };
    const name = line.slice(0, colon).trim();
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) return { error: `line ${i + 1}: “${name}” is not a header name` };
    headers[name] = line.slice(colon + 1).trim();
  }
  return { headers };
}

/** Headers → `Name: value` lines. */
export function formatHeaders(headers: Partial<Record<string, string>> | undefined): string {
  return Object.entries(headers ?? {})
    .map(([k, v]) => `${k}: ${v ?? ""}`)
    .join("\n");
}

/** The rule ids with the one at `index` moved by `delta` (clamped); the same order if it cannot move. */
export function moveRule(rules: RoutingRule[], index: number, delta: number): number[] {
  const ids = rules.map((r) => r.id);
  const to = Math.max(0, Math.min(ids.length - 1, index + delta));
  if (to === index || index < 0 || index >= ids.length) return ids;
  const [id] = ids.splice(index, 1);
  ids.splice(to, 0, id);
  return ids;
}

/** "Test rule" in one sentence. */
export function describeRoute(t: RouteTest): string {
  const target = t.backend === "local" ? "the local engine" : t.backend;
  const head = t.rule_id === null ? `No rule matches: ${target} serves it` : `Rule #${t.rule_id}: ${target} serves it`;
  const model = t.backend_model === t.model ? "" : ` as “${t.backend_model}”`;
  const fallback = t.fallback ? `; fallback ${t.fallback === "local" ? "the local engine" : t.fallback}${t.fallback_model && t.fallback_model !== t.model ? ` as “${t.fallback_model}”` : ""}` : "";
  return `${head}${model}${fallback}.`;
}
