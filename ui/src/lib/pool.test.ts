import { expect, test } from "vitest";
import { dequantizedNote } from "./pool";

test("a model running from a dequantized copy says so, with the memory it costs against the files", () => {
  const note = dequantizedNote({ dequantized_from_bits: 4, memory_bytes: 640_000_000 + 5_000_000, kv_cache_bytes: 5_000_000 }, 100_000_000);
  expect(note?.label).toBe("dequantized from 4-bit (CPU)");
  expect(note?.title).toContain("fast dense kernels");
  expect(note?.title).toContain("~6.4× the files' size");
  expect(note?.title).toContain("--keep-quantized");
  expect(dequantizedNote({ dequantized_from_bits: 8, memory_bytes: 1_200_000_000, kv_cache_bytes: 0 }, 100_000_000)?.title).toContain("~12× the files' size");
  // Size on disk unknown: no made-up factor.
  expect(dequantizedNote({ dequantized_from_bits: 4, memory_bytes: 640, kv_cache_bytes: 0 }, 0)?.title).toContain("several times the files' size");
});

test("packed and unquantized models have no note", () => {
  expect(dequantizedNote({ dequantized_from_bits: null, memory_bytes: 100, kv_cache_bytes: 0 }, 100)).toBeNull();
});
