// What the Model pool says about a loaded model beyond its numbers.
import type { LoadedModel } from "./bindings";

/** A short label and its tooltip. */
export type Note = { label: string; title: string };

/**
 * The note on a model whose quantized weights run from a dense copy made at load (the CPU's
 * fast dense kernels, at several times the memory): why its memory is far above its size on
 * disk (`fileBytes`) and why it is fast. Null for any other model.
 */
export function dequantizedNote(model: Pick<LoadedModel, "dequantized_from_bits" | "memory_bytes" | "kv_cache_bytes">, fileBytes: number): Note | null {
  const bits = model.dequantized_from_bits;
  if (bits == null) return null;
  const ratio = fileBytes > 0 ? (model.memory_bytes - model.kv_cache_bytes) / fileBytes : 0;
  const memory = ratio >= 1 ? `~${ratio >= 10 ? Math.round(ratio) : ratio.toFixed(1)}× the files' size` : "several times the files' size";
  return {
    label: `dequantized from ${bits}-bit (CPU)`,
    title:
      `Its ${bits}-bit weights were dequantized once at load, so it runs the CPU's fast dense kernels ` +
      `(the CPU's quantized ones are many times slower). Its weights take ${memory} in memory. ` +
      "The copy is made only when it fits the memory budget; `mlx-manager serve --keep-quantized` turns it off.",
  };
}
